import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { ActionKind, ActionOutcome, GateDecision, Verdict, VerdictKind } from '../types.js';

/** One line of the action journal. An intent line precedes execution; an outcome line follows it. */
export interface JournalEntry {
  seq: number;
  wallAt: number;
  phase: 'intent' | 'outcome';
  action: ActionKind;
  decision: GateDecision;
  summary: string;
  evidence?: unknown;
  outcome?: ActionOutcome;
  durationMs?: number;
}

/** Where journal writes go; a failed write is reported, never thrown into the caller's action. */
export interface JournalWriter {
  append(entry: Omit<JournalEntry, 'seq'> & { seq?: number }): { seq: number; error?: string };
  /** The newest entries, newest last, without their evidence (from memory; survives a failed disk). */
  recent(limit?: number): JournalEntry[];
}

const JOURNAL_FILE = 'actions.jsonl';
/** Entries kept in memory: their evidence (timelines, missing items; ~20 KB a restore) stays on disk only. */
const RECENT_KEPT = 50;

/**
 * Size at which the journal rotates. A restore entry is ~20 KB, so even right after a rotation the
 * two files hold some 200 restarts — hours of a networkd flapping once a minute, well past the
 * hour that carry-over looks back — while the journal never takes much more than twice this.
 */
export const JOURNAL_MAX_BYTES = 4 * 1024 * 1024;

/**
 * The append-only action journal in the state directory: every action and every "would have",
 * with its evidence and outcome, one JSON object per line, fsync'd. At `maxBytes` the file moves to
 * `actions.jsonl.1` (replacing the older one) and a new file starts, so a flapping node cannot fill
 * the disk; readers see both files, so an intent and its outcome may straddle a rotation.
 */
export class FileJournal implements JournalWriter {
  readonly path: string;
  readonly #maxBytes: number;
  readonly #recent: JournalEntry[] = [];
  #nextSeq: number;

  /** `maxBytes`: the rotation size, JOURNAL_MAX_BYTES unless given (tests). */
  constructor(stateDir: string, opts: { maxBytes?: number } = {}) {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    this.path = join(stateDir, JOURNAL_FILE);
    this.#maxBytes = opts.maxBytes ?? JOURNAL_MAX_BYTES;
    this.#nextSeq = lastSeq(this.path) + 1;
  }

  append(entry: Omit<JournalEntry, 'seq'> & { seq?: number }): { seq: number; error?: string } {
    const seq = entry.seq ?? this.#nextSeq++;
    const full: JournalEntry = { ...entry, seq };
    this.#remember(full);
    try {
      this.#rotateIfFull();
      const fd = openSync(this.path, 'a', 0o600);
      try {
        writeSync(fd, JSON.stringify(full) + '\n');
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      return { seq };
    } catch (err) {
      return { seq, error: `cannot write the action journal ${this.path}: ${(err as Error).message}` };
    }
  }

  /** A verdict change with its evidence, on its own line (`phase: "verdict"`); readers of actions skip it. */
  recordVerdict(verdict: Verdict, previous: VerdictKind): { error?: string } {
    const line = { seq: this.#nextSeq++, wallAt: Date.now(), phase: 'verdict', verdict, previous };
    try {
      this.#rotateIfFull();
      const fd = openSync(this.path, 'a', 0o600);
      try {
        writeSync(fd, JSON.stringify(line) + '\n');
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      return {};
    } catch (err) {
      return { error: `cannot write the action journal ${this.path}: ${(err as Error).message}` };
    }
  }

  recent(limit = RECENT_KEPT): JournalEntry[] {
    return this.#recent.slice(-limit);
  }

  /** Intents with no outcome: actions a previous run started and did not finish (crash, kill). */
  interrupted(): JournalEntry[] {
    const open = new Map<number, JournalEntry>();
    for (const entry of readEntries(this.path)) {
      if (entry.phase === 'intent' && entry.decision === 'executed') open.set(entry.seq, entry);
      else if (entry.phase === 'outcome') open.delete(entry.seq);
    }
    return [...open.values()];
  }

  #remember(entry: JournalEntry): void {
    // Kept whole, 200 restore entries held ~5 MB of evidence nothing reads back: the soak's growth.
    const { evidence: _evidence, ...light } = entry;
    this.#recent.push(light);
    if (this.#recent.length > RECENT_KEPT) this.#recent.shift();
  }

  #rotateIfFull(): void {
    let size = 0;
    try {
      size = statSync(this.path).size;
    } catch {
      return;
    }
    // A failed rename (read-only directory) throws into append's catch: reported, never fatal.
    if (size >= this.#maxBytes) renameSync(this.path, rotatedPath(this.path));
  }
}

/**
 * Reads the journal at `path`, its rotated predecessor (`path.1`) first, oldest entry first;
 * lines that are not valid JSON (a torn last write) are skipped.
 */
export function readEntries(path: string): JournalEntry[] {
  return [...readFile(rotatedPath(path)), ...readFile(path)];
}

function rotatedPath(path: string): string {
  return `${path}.1`;
}

function readFile(path: string): JournalEntry[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  const entries: JournalEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      const entry = JSON.parse(line) as JournalEntry | { phase: 'verdict' };
      // Verdict lines (recordVerdict) are not actions.
      if (entry.phase !== 'verdict') entries.push(entry as JournalEntry);
    } catch {
      // A line torn by a crash mid-write: everything before it is intact.
    }
  }
  return entries;
}

function lastSeq(path: string): number {
  let max = 0;
  for (const entry of readEntries(path)) max = Math.max(max, entry.seq);
  return max;
}
