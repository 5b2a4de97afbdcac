// Issue 11: the action journal grew ~20 KB per networkd restart, and after a rotation start-up no
// longer saw the rotated file (interrupted actions, carried-over declined restores).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileJournal, JOURNAL_MAX_BYTES, readEntries, type JournalEntry } from '../../../src/remediation/journal.js';

const CAP = 4_000;
const padding = 'x'.repeat(400);

function declined(wallAt: number, table: string): Omit<JournalEntry, 'seq'> {
  const item = { kind: 'rule', family: 4, priority: 100, action: 'lookup', table, protocol: 'unspec' };
  return { wallAt, phase: 'intent', action: 'restore', decision: 'killed', summary: 'restore 1 item', evidence: { missing: [{ item }] } };
}

function filler(journal: FileJournal, count: number, wallAt = 1): void {
  for (let i = 0; i < count; i++) journal.append({ wallAt, phase: 'intent', action: 'restore', decision: 'shadowed', summary: padding });
}

function sizeOf(path: string): number {
  return existsSync(path) ? statSync(path).size : 0;
}

describe('action journal rotation', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cw-journal-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('has a stated default cap', () => {
    expect(JOURNAL_MAX_BYTES).toBe(4 * 1024 * 1024);
  });

  it('rotates to .1 on the first write after the file reached the cap', () => {
    const journal = new FileJournal(dir, { maxBytes: CAP });
    const rotated = `${journal.path}.1`;
    while (sizeOf(journal.path) < CAP) {
      filler(journal, 1);
      expect(existsSync(rotated)).toBe(false);
    }
    const full = readFileSync(journal.path, 'utf8');
    const { seq } = journal.append({ wallAt: 2, phase: 'intent', action: 'restore', decision: 'shadowed', summary: 'after' });
    expect(readFileSync(rotated, 'utf8')).toBe(full);
    expect(readEntries(journal.path).at(-1)).toMatchObject({ seq, summary: 'after' });
    expect(readFileSync(journal.path, 'utf8').trim().split('\n')).toHaveLength(1);
  });

  it('still finds an intent interrupted before a rotation, and not one whose outcome landed after it', () => {
    const journal = new FileJournal(dir, { maxBytes: CAP });
    const crashed = journal.append({ wallAt: 1, phase: 'intent', action: 'restartCilium', decision: 'executed', summary: 'restart' });
    const straddling = journal.append({ wallAt: 1, phase: 'intent', action: 'restore', decision: 'executed', summary: 'restore' });
    filler(journal, 12);
    expect(existsSync(`${journal.path}.1`)).toBe(true);
    journal.append({ seq: straddling.seq, wallAt: 2, phase: 'outcome', action: 'restore', decision: 'executed', summary: 'restore', outcome: { ok: true } });
    expect(readFileSync(journal.path, 'utf8')).not.toContain('"restartCilium"');

    const restarted = new FileJournal(dir, { maxBytes: CAP });
    expect(restarted.interrupted()).toMatchObject([{ seq: crashed.seq, action: 'restartCilium' }]);
  });

  it('keeps declined restores of the carry-over window readable across a rotation, and seq continues', () => {
    const hourAgo = 1_000_000;
    const journal = new FileJournal(dir, { maxBytes: CAP });
    journal.append(declined(hourAgo - 1, 'old'));
    journal.append(declined(hourAgo + 1, 'local'));
    filler(journal, 12, hourAgo + 2);
    expect(readFileSync(journal.path, 'utf8')).not.toContain('"local"');

    // What start-up reads for carry-over (agent.ts: readEntries(journal.path)).
    const recent = readEntries(journal.path).filter((e) => e.action === 'restore' && e.phase === 'intent' && e.decision !== 'executed' && e.wallAt >= hourAgo);
    const tables = recent.flatMap((e) => (e.evidence as { missing?: { item: { table: string } }[] } | undefined)?.missing ?? []).map((m) => m.item.table);
    expect(tables).toEqual(['local']);
    const seqs = readEntries(journal.path).map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new FileJournal(dir).append({ wallAt: 3, phase: 'intent', action: 'restore', decision: 'shadowed', summary: 'next' }).seq).toBe(Math.max(...seqs) + 1);
  });

  it('stays bounded over many writes: at most the cap twice, plus one entry', () => {
    const journal = new FileJournal(dir, { maxBytes: CAP });
    filler(journal, 1);
    const entry = sizeOf(journal.path) + 10; // seq grows a few digits
    for (let i = 1; i < 500; i++) {
      filler(journal, 1);
      expect(sizeOf(journal.path) + sizeOf(`${journal.path}.1`)).toBeLessThanOrEqual(2 * (CAP + entry));
    }
    expect(readEntries(journal.path).at(-1)?.seq).toBe(500);
  });

  it('a rotation that cannot happen fails the write, never the caller', () => {
    const journal = new FileJournal(dir, { maxBytes: CAP });
    // A non-empty directory where the rotated file goes: the rename fails for root too.
    mkdirSync(`${journal.path}.1`);
    writeFileSync(join(`${journal.path}.1`, 'keep'), '');
    while (sizeOf(journal.path) < CAP) expect(journal.append({ wallAt: 1, phase: 'intent', action: 'restore', decision: 'shadowed', summary: padding }).error).toBeUndefined();
    const written = journal.append({ wallAt: 1, phase: 'intent', action: 'restore', decision: 'executed', summary: 'blocked' });
    expect(written.error).toContain('cannot write the action journal');
    expect(journal.recent().at(-1)).toMatchObject({ seq: written.seq, summary: 'blocked' });
  });
});
