/**
 * The baseline on disk: one JSON file in the state directory, written atomically (temp file,
 * fsync, rename, fsync of the directory) so that a crash leaves the old or the new baseline,
 * never half of one. Loading is strict; a file that does not parse is moved aside, not trusted.
 */
import { open, readFile, rename, mkdir, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import type { DatapathItem } from '../types.js';
import type { Member } from './baseline.js';
import { itemKey } from './items.js';

const family = z.union([z.literal(4), z.literal(6)]);

const ruleSchema = z.strictObject({
  kind: z.literal('rule'),
  family,
  priority: z.number().int().min(0),
  src: z.string().optional(),
  dst: z.string().optional(),
  fwmark: z.number().int().min(0).optional(),
  fwmask: z.number().int().min(0).optional(),
  iif: z.string().optional(),
  oif: z.string().optional(),
  table: z.string().optional(),
  action: z.enum(['lookup', 'blackhole', 'unreachable', 'prohibit', 'goto', 'nop']),
  protocol: z.string(),
});

const routeSchema = z.strictObject({
  kind: z.literal('route'),
  family,
  table: z.string(),
  type: z.string(),
  dst: z.string(),
  dev: z.string().optional(),
  gateway: z.string().optional(),
  scope: z.string().optional(),
  protocol: z.string(),
  metric: z.number().int().min(0).optional(),
  prefsrc: z.string().optional(),
});

/** A datapath item as stored (and as operators may write in tests). */
export const itemSchema = z.discriminatedUnion('kind', [ruleSchema, routeSchema]);

const memberSchema = z.strictObject({
  item: itemSchema,
  profile: z.string(),
  severity: z.enum(['critical', 'degraded']),
  matcher: z.string(),
  pod: z.string().optional(),
  learnedAt: z.number(),
});

const fileSchema = z.strictObject({
  version: z.literal(1),
  savedAt: z.number(),
  members: z.array(memberSchema),
});

/** What loading found. */
export type LoadResult =
  | { ok: true; members: Member[]; savedAt?: number; fresh: boolean }
  | { ok: false; reason: string; hint: string; movedTo?: string };

/** Reads and writes the baseline file. */
export class BaselineStore {
  readonly path: string;

  constructor(stateDir: string, fileName = 'baseline.json') {
    this.path = join(stateDir, fileName);
  }

  /** Loads the saved baseline; a missing file is a fresh start, a corrupt one is moved aside. */
  async load(wallNow: number): Promise<LoadResult> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { ok: true, members: [], fresh: true };
      return { ok: false, reason: `cannot read ${this.path}: ${(err as Error).message}`, hint: 'check the state directory permissions' };
    }
    const parsed = parseBaselineFile(text);
    if (parsed.ok) return { ok: true, members: parsed.members, savedAt: parsed.savedAt, fresh: false };
    const movedTo = `${this.path}.corrupt-${wallNow}`;
    try {
      await rename(this.path, movedTo);
    } catch {
      return { ok: false, reason: `${this.path}: ${parsed.reason}`, hint: 'move the file away by hand; connwatch will learn anew' };
    }
    return {
      ok: false,
      reason: `${this.path}: ${parsed.reason}`,
      hint: `moved to ${movedTo}; connwatch learns anew and reports only invariant damage until then`,
      movedTo,
    };
  }

  /** Saves the members atomically. Failure is data: the in-memory baseline stays authoritative. */
  async save(members: readonly Member[], wallNow: number): Promise<{ ok: true } | { ok: false; reason: string; hint: string }> {
    const body = `${JSON.stringify(serializeBaseline(members, wallNow), null, 1)}\n`;
    const temp = `${this.path}.tmp-${process.pid}`;
    try {
      await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
      const file = await open(temp, 'w', 0o600);
      try {
        await file.writeFile(body, 'utf8');
        await file.sync();
      } finally {
        await file.close();
      }
      await rename(temp, this.path);
      await syncDirectory(dirname(this.path));
      return { ok: true };
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      return { ok: false, reason: `cannot write ${this.path}: ${(err as Error).message}`, hint: 'check free space and permissions of the state directory' };
    }
  }
}

async function syncDirectory(path: string): Promise<void> {
  const directory = await open(path, 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}

/** The file's JSON form. */
export function serializeBaseline(members: readonly Member[], wallNow: number): z.infer<typeof fileSchema> {
  return {
    version: 1,
    savedAt: wallNow,
    members: members.map((member) => ({
      item: member.item,
      profile: member.profile,
      severity: member.severity,
      matcher: member.matcher,
      ...(member.pod !== undefined ? { pod: member.pod } : {}),
      learnedAt: member.learnedAt,
    })),
  };
}

/** Parses the file's text strictly; keys are recomputed, never trusted from disk. */
export function parseBaselineFile(text: string): { ok: true; members: Member[]; savedAt: number } | { ok: false; reason: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { ok: false, reason: `not JSON (${(err as Error).message})` };
  }
  const parsed = fileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, reason: `not a baseline file: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid'}` };
  }
  const members = parsed.data.members.map((entry): Member => {
    const item = stripUndefined(entry.item) as DatapathItem;
    const member: Member = { key: itemKey(item), item, profile: entry.profile, severity: entry.severity, matcher: entry.matcher, learnedAt: entry.learnedAt };
    if (entry.pod !== undefined) member.pod = entry.pod;
    return member;
  });
  return { ok: true, members, savedAt: parsed.data.savedAt };
}

function stripUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, field]) => field !== undefined)) as T;
}
