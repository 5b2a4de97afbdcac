// The restore's writer: one `ip -force -batch -` for every item, EEXIST as success, a failed line
// reported per item without stopping the rest. In a namespace of the test's own.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addItemsBatch } from '../../src/datapath/batch.js';
import type { RouteItem, RuleItem } from '../../src/types.js';

const ns = `cw-batch-${process.pid}`;
const ip = ['ip', '-n', ns];

const lookupLocal: RuleItem = { kind: 'rule', family: 4, priority: 100, table: 'local', action: 'lookup', protocol: 'unspec' };
const proxy6: RuleItem = { kind: 'rule', family: 6, priority: 9, fwmark: 0x200, fwmask: 0xf00, table: '2004', action: 'lookup', protocol: 'unspec' };
const local2004: RouteItem = { kind: 'route', family: 4, table: '2004', type: 'local', dst: 'default', dev: 'lo', scope: 'host', protocol: 'boot' };
const badGateway: RouteItem = { kind: 'route', family: 4, table: '11', type: 'unicast', dst: 'default', gateway: '10.99.0.1', dev: 'lo', protocol: 'boot' };

describe('addItemsBatch', () => {
  beforeAll(() => {
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', [...ip.slice(1), 'link', 'set', 'lo', 'up']);
  });
  afterAll(() => execFileSync('ip', ['netns', 'del', ns]));

  it('adds each item once, reports EEXIST as "exists" and a failed line by its item', async () => {
    const results = await addItemsBatch(ip, [local2004, badGateway, lookupLocal, lookupLocal, proxy6], { timeoutMs: 3000 });
    expect(results[0]).toEqual({ ok: true, result: 'added' });
    expect(results[1]).toMatchObject({ ok: false, reason: expect.stringContaining('Nexthop has invalid gateway') });
    expect(results[2]).toEqual({ ok: true, result: 'added' });
    expect(results[3]).toEqual({ ok: true, result: 'exists' });
    expect(results[4]).toEqual({ ok: true, result: 'added' });
    const rules = execFileSync('ip', [...ip.slice(1), '-4', 'rule', 'show'], { encoding: 'utf8' });
    expect(rules.match(/^100:\s+from all lookup local\s*$/gm)).toHaveLength(1);
    expect(execFileSync('ip', [...ip.slice(1), '-6', 'rule', 'show', 'priority', '9'], { encoding: 'utf8' })).toContain('fwmark 0x200/0xf00 lookup 2004');
    expect(execFileSync('ip', [...ip.slice(1), 'route', 'show', 'table', '2004'], { encoding: 'utf8' })).toContain('local default dev lo');
  });

  it('reports a missing ip binary for every item instead of throwing', async () => {
    const results = await addItemsBatch(['/nonexistent/ip'], [lookupLocal], { timeoutMs: 1000 });
    expect(results).toEqual([{ ok: false, reason: expect.stringContaining('not found') }]);
  });
});
