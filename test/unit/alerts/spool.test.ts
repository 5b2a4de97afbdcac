import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chooseVictims, Spool, type BoundItem, type SpoolFs } from '../../../src/alerts/spool.js';
import type { Alert } from '../../../src/types.js';

const log = pino({ level: 'silent' });
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'connwatch-spool-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function alert(n: number, severity: Alert['severity'] = 'critical'): Alert {
  return { id: `s/n/${n}`, cause: 'DatapathDamage', severity, status: 'firing', node: 'n', site: 's', summary: 'x', evidence: {}, timeline: [], startsAt: n, createdAt: n };
}

describe('Spool', () => {
  it('writes records with mode 0600 and reads them back in order', async () => {
    const spool = new Spool(join(dir, 'spool'), log);
    expect((await spool.open()).records).toEqual([]);
    for (const n of [1, 2, 3]) expect(await spool.write({ seq: spool.allocateSeq(), alert: alert(n), pending: ['pagerduty'] })).toEqual({ ok: true });
    const files = await readdir(join(dir, 'spool'));
    expect(files).toHaveLength(3);
    for (const f of files) expect((await stat(join(dir, 'spool', f))).mode & 0o777).toBe(0o600);

    const again = new Spool(join(dir, 'spool'), log);
    const { records } = await again.open();
    expect(records.map((r) => r.alert.createdAt)).toEqual([1, 2, 3]);
    expect(again.allocateSeq()).toBe(4);
    expect(await again.remove(2)).toEqual({ ok: true });
    expect(await again.remove(2)).toEqual({ ok: true });
    expect((await new Spool(join(dir, 'spool'), log).open()).records.map((r) => r.seq)).toEqual([1, 3]);
  });

  it('drops half-written temp files and sets corrupt records aside on open', async () => {
    const spool = new Spool(dir, log);
    await spool.open();
    await spool.write({ seq: spool.allocateSeq(), alert: alert(1), pending: [] });
    await writeFile(join(dir, '000000000002.json.123.tmp'), '{"format":1,');
    await writeFile(join(dir, '000000000003.json'), '{ torn');
    const { records } = await new Spool(dir, log).open();
    expect(records.map((r) => r.seq)).toEqual([1]);
    expect((await readdir(dir)).sort()).toEqual(['000000000001.json', '000000000003.json.bad']);
  });

  it('reports a full disk as data with an operator hint, and recovers', async () => {
    let full = true;
    const fs: SpoolFs = {
      ...fsp,
      open: (async (...args: Parameters<typeof fsp.open>) => {
        if (full && String(args[0]).endsWith('.tmp')) throw Object.assign(new Error('no space'), { code: 'ENOSPC' });
        return fsp.open(...args);
      }) as typeof fsp.open,
    };
    const spool = new Spool(dir, log, fs);
    await spool.open();
    const result = await spool.write({ seq: spool.allocateSeq(), alert: alert(1), pending: [] });
    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toMatch(/ENOSPC.*delivered from memory.*disk is full/);
    full = false;
    expect(await spool.write({ seq: spool.allocateSeq(), alert: alert(2), pending: [] })).toEqual({ ok: true });
  });

  it('reports a state directory it cannot create', async () => {
    await writeFile(join(dir, 'file'), 'x');
    const { result } = await new Spool(join(dir, 'file', 'spool'), log).open();
    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toMatch(/ENOTDIR/);
  });
});

describe('chooseVictims', () => {
  const item = (seq: number, severity: Alert['severity'], bytes = 100, createdAt = seq, undelivered = true, active = false): BoundItem => ({ seq, severity, bytes, createdAt, undelivered, active });
  /** What losing an item costs, as issue 11 orders it: resolved < delivered-active < undelivered-active. */
  const keep = (i: BoundItem) => (i.active ? 2 : 0) + (i.undelivered ? 1 : 0);

  it('drops the oldest low-severity items first', () => {
    const items = [item(1, 'critical'), item(2, 'info'), item(3, 'warning'), item(4, 'info'), item(5, 'critical')];
    expect(chooseVictims(items, { maxBytes: 300, maxAgeMs: 1e9 }, 10).map((v) => v.seq)).toEqual([2, 4]);
    expect(chooseVictims(items, { maxBytes: 100, maxAgeMs: 1e9 }, 10).map((v) => v.seq)).toEqual([2, 4, 3, 1]);
  });

  it('drops undelivered items past the age, but not the newest critical', () => {
    const items = [item(1, 'critical', 10, 0, true, true), item(2, 'warning', 10, 0, false), item(3, 'critical', 10, 0, true, true)];
    expect(chooseVictims(items, { maxBytes: 1e9, maxAgeMs: 100 }, 1000)).toEqual([{ seq: 1, severity: 'critical', reason: 'age' }]);
  });

  it('drops resolves, then delivered active alerts, before any undelivered active alert, whatever the severities (issue 11)', () => {
    // The newest critical is a resolve here: it does not shield itself from being dropped first.
    const items = [
      item(1, 'info', 100, 1, true, true), // an active page nobody has yet
      item(2, 'warning', 100, 2, true, true), // another
      item(3, 'critical', 100, 3, true, false), // a resolve still to deliver
      item(4, 'critical', 100, 4, false, true), // an active alert every sink has
      item(5, 'critical', 100, 5, false, true), // the newest critical: never dropped
      item(6, 'info', 100, 6, true, true),
      item(7, 'critical', 100, 7, true, false), // the newest critical of all, but a resolve
    ];
    expect(chooseVictims(items, { maxBytes: 400, maxAgeMs: 1e9 }, 10).map((v) => v.seq)).toEqual([3, 7, 4]);
    // Only when nothing cheaper is left do undelivered active alerts go, lowest severity and oldest first.
    expect(chooseVictims(items, { maxBytes: 200, maxAgeMs: 1e9 }, 10).map((v) => v.seq)).toEqual([3, 7, 4, 1, 6]);
  });

  it('never drops the newest critical and always ends within bounds otherwise (property)', () => {
    const severity = fc.constantFrom<Alert['severity']>('info', 'warning', 'critical');
    fc.assert(
      fc.property(
        fc.array(fc.record({ severity, bytes: fc.integer({ min: 1, max: 1000 }), age: fc.integer({ min: 0, max: 2000 }), undelivered: fc.boolean(), active: fc.boolean() }), { maxLength: 40 }),
        fc.integer({ min: 1, max: 5000 }),
        (specs, maxBytes) => {
          const items = specs.map((s, i) => item(i + 1, s.severity, s.bytes, 2000 - s.age, s.undelivered, s.active));
          const victims = chooseVictims(items, { maxBytes, maxAgeMs: 1000 }, 2000);
          const newestCritical = items.filter((i) => i.severity === 'critical' && i.active).at(-1);
          if (newestCritical) expect(victims.map((v) => v.seq)).not.toContain(newestCritical.seq);
          const kept = items.filter((i) => !victims.some((v) => v.seq === i.seq));
          const keptBytes = kept.reduce((s, i) => s + i.bytes, 0);
          expect(keptBytes <= maxBytes || (kept.length === 1 && kept[0] === newestCritical)).toBe(true);
          // Nothing costlier to lose goes for size while a cheaper one stays (issue 11), and within
          // one kind nothing of higher severity goes while a lower one stays.
          const sizeVictims = victims.filter((v) => v.reason === 'size').map((v) => items.find((i) => i.seq === v.seq)!);
          const rank = { info: 0, warning: 1, critical: 2 };
          for (const v of sizeVictims) {
            for (const k of kept) {
              if (k === newestCritical) continue;
              expect(keep(k)).toBeGreaterThanOrEqual(keep(v));
              if (keep(k) === keep(v)) expect(rank[k.severity]).toBeGreaterThanOrEqual(rank[v.severity]);
            }
          }
        },
      ),
    );
  });
});
