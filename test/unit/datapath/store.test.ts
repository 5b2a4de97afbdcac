import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Member } from '../../../src/datapath/baseline.js';
import { itemKey } from '../../../src/datapath/items.js';
import { BaselineStore, parseBaselineFile } from '../../../src/datapath/store.js';
import type { DatapathItem } from '../../../src/types.js';

const dirs: string[] = [];
function stateDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cw-baseline-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => dirs.splice(0).forEach((dir) => rmSync(dir, { recursive: true, force: true })));

function member(item: DatapathItem, pod?: string): Member {
  return { key: itemKey(item), item, profile: 'cilium', severity: 'critical', matcher: 'm', learnedAt: 1_780_000_000_000, ...(pod ? { pod } : {}) };
}

const members = [
  member({ kind: 'rule', family: 4, priority: 100, table: 'local', action: 'lookup', protocol: 'unspec' }),
  member({ kind: 'rule', family: 6, priority: 111, src: 'fd78::5/128', table: '11', action: 'lookup', protocol: 'kernel' }, 'fd78::5'),
  member({ kind: 'route', family: 4, table: '2005', type: 'unicast', dst: 'default', gateway: '10.77.0.2', dev: 'eth0', protocol: 'boot' }),
  member({ kind: 'route', family: 6, table: '2004', type: 'local', dst: 'default', dev: 'lo', scope: 'global', protocol: 'boot', metric: 1024 }),
];

describe('BaselineStore', () => {
  it('starts fresh without a file', async () => {
    expect(await new BaselineStore(stateDir()).load(1)).toEqual({ ok: true, members: [], fresh: true });
  });

  it('saves atomically and loads back the same members (keys recomputed)', async () => {
    const dir = stateDir();
    const store = new BaselineStore(dir);
    expect(await store.save(members, 42)).toEqual({ ok: true });
    expect(readdirSync(dir)).toEqual(['baseline.json']); // no temp file left behind
    const loaded = await store.load(43);
    expect(loaded).toEqual({ ok: true, members, savedAt: 42, fresh: false });
  });

  it('creates the state directory when missing', async () => {
    const dir = join(stateDir(), 'nested', 'state');
    const store = new BaselineStore(dir);
    expect(await store.save(members, 1)).toEqual({ ok: true });
    expect((await store.load(2)).ok).toBe(true);
  });

  it.each([
    ['half a file', '{"version":1,"savedAt":1,"mem'],
    ['another version', '{"version":2,"savedAt":1,"members":[]}'],
    ['an item with an unknown attribute', JSON.stringify({ version: 1, savedAt: 1, members: [{ ...members[0], key: 'forged' }] })],
  ])('moves %s aside and says so', async (_what, text) => {
    const dir = stateDir();
    writeFileSync(join(dir, 'baseline.json'), text);
    const loaded = await new BaselineStore(dir).load(99);
    expect(loaded).toMatchObject({ ok: false, movedTo: join(dir, 'baseline.json.corrupt-99'), hint: expect.stringContaining('learns anew') });
    expect(readFileSync(join(dir, 'baseline.json.corrupt-99'), 'utf8')).toBe(text);
  });

  it('reports a write failure as data', async () => {
    const dir = stateDir();
    writeFileSync(join(dir, 'file'), '');
    const store = new BaselineStore(join(dir, 'file')); // a file where the directory should be
    expect(await store.save(members, 1)).toMatchObject({ ok: false, hint: expect.stringContaining('state directory') });
  });

  it('never trusts keys from disk', () => {
    const text = JSON.stringify({ version: 1, savedAt: 1, members: [{ item: members[0]!.item, profile: 'cilium', severity: 'critical', matcher: 'm', learnedAt: 1 }] });
    const parsed = parseBaselineFile(text);
    expect(parsed).toMatchObject({ ok: true, members: [{ key: itemKey(members[0]!.item) }] });
  });
});
