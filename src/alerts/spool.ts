import * as fsp from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import type { Alert } from '../types.js';

/** One spooled alert version and the sinks that still have to acknowledge it. */
export interface SpoolRecord {
  seq: number;
  alert: Alert;
  /** Sink names that have not acknowledged (or permanently refused) this item yet. */
  pending: string[];
  /** Sink names that accepted it (absent in older files: every sink not pending). */
  acked?: string[];
  /** For a resolve: the sinks that accepted the version it replaced (absent = unknown). */
  sentBefore?: string[];
}

/** The file operations the spool uses; injected so tests can make the disk full or read-only. */
export type SpoolFs = Pick<typeof fsp, 'mkdir' | 'readdir' | 'readFile' | 'open' | 'rename' | 'unlink'>;

/** Failure is data: the spool reports, the alerter keeps delivering from memory. */
export type SpoolResult = { ok: true } | { ok: false; reason: string };

const FORMAT = 1;
const NAME = /^(\d{12})\.json$/;

/**
 * A directory of one JSON file per alert version, written atomically (temp file, fsync,
 * rename, fsync of the directory) with mode 0600, so a kill -9 at any point leaves either the
 * old or the new file and never half of one.
 */
export class Spool {
  #nextSeq = 1;
  readonly #bytes = new Map<number, number>();

  constructor(
    readonly dir: string,
    private readonly log: Logger,
    private readonly fs: SpoolFs = fsp,
  ) {}

  /** Creates the directory and reads back every record, oldest first; unreadable files are set aside. */
  async open(): Promise<{ result: SpoolResult; records: SpoolRecord[] }> {
    try {
      await this.#mkdirs(this.dir);
      const names = (await this.fs.readdir(this.dir)).sort();
      const records: SpoolRecord[] = [];
      for (const name of names) {
        if (name.endsWith('.tmp')) await this.fs.unlink(join(this.dir, name)).catch(() => undefined);
        const record = await this.#read(name);
        if (record) records.push(record);
      }
      this.#nextSeq = records.reduce((max, r) => Math.max(max, r.seq + 1), 1);
      return { result: { ok: true }, records };
    } catch (err) {
      return { result: { ok: false, reason: fsReason('open', this.dir, err) }, records: [] };
    }
  }

  /** The sequence number for the next new record (write order = replay order). */
  allocateSeq(): number {
    return this.#nextSeq++;
  }

  /** Bytes a record takes on disk, as last written. */
  bytesOf(seq: number): number {
    return this.#bytes.get(seq) ?? 0;
  }

  /** Writes (or replaces) a record durably. */
  async write(record: SpoolRecord): Promise<SpoolResult> {
    const text = JSON.stringify({ format: FORMAT, ...record });
    this.#bytes.set(record.seq, Buffer.byteLength(text));
    const file = join(this.dir, fileName(record.seq));
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      const handle = await this.fs.open(tmp, 'w', 0o600);
      try {
        await handle.writeFile(text);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await this.fs.rename(tmp, file);
      await this.#syncDir();
      return { ok: true };
    } catch (err) {
      await this.fs.unlink(tmp).catch(() => undefined);
      return { ok: false, reason: fsReason('write', file, err) };
    }
  }

  /** Removes a record durably; a record already gone is fine. */
  async remove(seq: number): Promise<SpoolResult> {
    this.#bytes.delete(seq);
    const file = join(this.dir, fileName(seq));
    try {
      await this.fs.unlink(file);
      await this.#syncDir();
      return { ok: true };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { ok: true };
      return { ok: false, reason: fsReason('remove', file, err) };
    }
  }

  async #read(name: string): Promise<SpoolRecord | undefined> {
    const match = NAME.exec(name);
    if (!match) return undefined;
    const file = join(this.dir, name);
    try {
      const text = await this.fs.readFile(file, 'utf8');
      const parsed = JSON.parse(text) as Partial<SpoolRecord> & { format?: number };
      if (parsed.format !== FORMAT || !parsed.alert || !Array.isArray(parsed.pending) || parsed.seq !== Number(match[1])) {
        throw new Error(`not a format-${FORMAT} spool record`);
      }
      this.#bytes.set(parsed.seq, Buffer.byteLength(text));
      return {
        seq: parsed.seq,
        alert: parsed.alert,
        pending: parsed.pending,
        ...(Array.isArray(parsed.acked) ? { acked: parsed.acked } : {}),
        ...(Array.isArray(parsed.sentBefore) ? { sentBefore: parsed.sentBefore } : {}),
      };
    } catch (err) {
      this.log.error({ file, err: String(err) }, 'unreadable alert spool file set aside as .bad; inspect it and delete it');
      await this.fs.rename(file, `${file}.bad`).catch(() => undefined);
      return undefined;
    }
  }

  // Not mkdir({recursive}): Node reports its own stat's ENOENT there and hides EROFS/EACCES.
  async #mkdirs(dir: string): Promise<void> {
    try {
      await this.fs.mkdir(dir, { mode: 0o700 });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return;
      if (code !== 'ENOENT' || dirname(dir) === dir) throw err;
      await this.#mkdirs(dirname(dir));
      await this.#mkdirs(dir);
    }
  }

  async #syncDir(): Promise<void> {
    const handle = await this.fs.open(this.dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
}

function fileName(seq: number): string {
  return `${String(seq).padStart(12, '0')}.json`;
}

function fsReason(op: string, path: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code ?? String(err);
  const hint =
    code === 'ENOSPC' || code === 'EDQUOT'
      ? 'the disk is full; free space in the state directory'
      : code === 'EROFS' || code === 'EACCES' || code === 'EPERM'
        ? 'the state directory is not writable; mount it read-write for connwatch'
        : 'check the state directory';
  return `cannot ${op} ${path}: ${code}; alerts are delivered from memory meanwhile; ${hint}`;
}

// ─── bounds ────────────────────────────────────────────────────────────────────────────────

/** What the bound needs to know of a spooled item. */
export interface BoundItem {
  seq: number;
  severity: Alert['severity'];
  createdAt: number;
  bytes: number;
  /** Whether some sink still has to acknowledge it (only those age out). */
  undelivered: boolean;
  /** Whether it is the version of an alert still firing (not resolved, not superseded). */
  active: boolean;
}

export interface SpoolLimits {
  maxBytes: number;
  maxAgeMs: number;
}

/** An item chosen to be dropped, and why. */
export interface Victim {
  seq: number;
  severity: Alert['severity'];
  reason: 'size' | 'age';
}

const RANK: Record<Alert['severity'], number> = { info: 0, warning: 1, critical: 2 };

/**
 * What losing an item costs, lowest first (issue 11): a resolve (the condition is over; at worst a
 * receiver closes the incident late) before the record of an active alert every sink already has
 * (re-posts and the later resolve need it), before an active alert some sink has not heard yet
 * (the page itself). Within a class, delivered before undelivered.
 */
function keepRank(item: BoundItem): number {
  return (item.active ? 2 : 0) + (item.undelivered ? 1 : 0);
}

/**
 * Which items to drop to respect the bounds: undelivered items past the age first; then, by
 * size, the cheapest to lose (keepRank: resolved before delivered-active before
 * undelivered-active), lowest severity and oldest first within each. The newest critical alert
 * still firing is never chosen (a resolve is not shielded by it: that would drop active alerts first).
 */
export function chooseVictims(items: readonly BoundItem[], limits: SpoolLimits, now: number): Victim[] {
  const newestCritical = items
    .filter((i) => i.severity === 'critical' && i.active)
    .reduce<BoundItem | undefined>((best, i) => (!best || i.seq > best.seq ? i : best), undefined);
  const candidates = items.filter((i) => i !== newestCritical);
  const victims: Victim[] = [];
  const gone = new Set<number>();
  for (const item of candidates) {
    if (item.undelivered && item.createdAt < now - limits.maxAgeMs) {
      victims.push({ seq: item.seq, severity: item.severity, reason: 'age' });
      gone.add(item.seq);
    }
  }
  let total = items.reduce((sum, i) => sum + (gone.has(i.seq) ? 0 : i.bytes), 0);
  const bySeverityThenAge = candidates
    .filter((i) => !gone.has(i.seq))
    .sort((a, b) => keepRank(a) - keepRank(b) || RANK[a.severity] - RANK[b.severity] || a.seq - b.seq);
  for (const item of bySeverityThenAge) {
    if (total <= limits.maxBytes) break;
    victims.push({ seq: item.seq, severity: item.severity, reason: 'size' });
    total -= item.bytes;
  }
  return victims;
}
