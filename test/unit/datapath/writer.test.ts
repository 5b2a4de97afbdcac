import { describe, expect, it } from 'vitest';
import type { IpRun } from '../../../src/datapath/ip.js';
import { addItem, applyPlan, planRestore, routeAddArgv, ruleAddArgv } from '../../../src/datapath/writer.js';
import type { DatapathItem, RouteItem, RuleItem } from '../../../src/types.js';

const proxyRule: RuleItem = { kind: 'rule', family: 4, priority: 9, fwmark: 0x200, fwmask: 0xf00, table: '2004', action: 'lookup', protocol: 'unspec' };
const localRule: RuleItem = { kind: 'rule', family: 6, priority: 100, table: 'local', action: 'lookup', protocol: 'kernel' };
const podRule: RuleItem = { kind: 'rule', family: 4, priority: 111, src: '10.0.1.5/32', table: '11', action: 'lookup', protocol: 'boot' };
const onlink: RouteItem = { kind: 'route', family: 4, table: '11', type: 'unicast', dst: '192.168.10.1/32', dev: 'eth0', scope: 'link', protocol: 'kernel' };
const gateway: RouteItem = { kind: 'route', family: 4, table: '11', type: 'unicast', dst: 'default', gateway: '192.168.10.1', dev: 'eth0', scope: 'global', protocol: 'kernel' };
const podCidr: RouteItem = { kind: 'route', family: 4, table: 'main', type: 'unicast', dst: '10.0.1.0/24', gateway: '10.0.1.1', dev: 'cilium_host', scope: 'global', protocol: 'kernel', prefsrc: '10.0.1.1' };
const v6local: RouteItem = { kind: 'route', family: 6, table: '2004', type: 'local', dst: 'default', dev: 'lo', scope: 'global', protocol: 'boot', metric: 1024 };

describe('argv', () => {
  it('writes rules with explicit priority, numeric table and numeric protocol', () => {
    expect(ruleAddArgv(proxyRule)).toEqual(['-4', 'rule', 'add', 'priority', '9', 'from', 'all', 'fwmark', '0x200/0xf00', 'table', '2004', 'protocol', '0']);
    expect(ruleAddArgv(localRule)).toEqual(['-6', 'rule', 'add', 'priority', '100', 'from', 'all', 'table', '255', 'protocol', '2']);
    expect(ruleAddArgv(podRule)).toEqual(['-4', 'rule', 'add', 'priority', '111', 'from', '10.0.1.5/32', 'table', '11', 'protocol', '3']);
    expect(ruleAddArgv({ kind: 'rule', family: 4, priority: 200, iif: 'eth0', action: 'blackhole', protocol: 'static' })).toEqual([
      '-4', 'rule', 'add', 'priority', '200', 'from', 'all', 'iif', 'eth0', 'blackhole', 'protocol', '4',
    ]);
  });

  it('writes routes with type, table, protocol, scope, metric and source', () => {
    expect(routeAddArgv(podCidr)).toEqual(['-4', 'route', 'add', 'unicast', '10.0.1.0/24', 'via', '10.0.1.1', 'dev', 'cilium_host', 'table', '254', 'proto', '2', 'scope', 'global', 'src', '10.0.1.1']);
    expect(routeAddArgv(v6local)).toEqual(['-6', 'route', 'add', 'local', 'default', 'dev', 'lo', 'table', '2004', 'proto', '3', 'scope', 'global', 'metric', '1024']);
  });

  it('refuses what it cannot write exactly', () => {
    expect(() => ruleAddArgv({ ...proxyRule, table: 'cilium' })).toThrow(/has no number/);
    expect(() => ruleAddArgv({ ...proxyRule, action: 'goto' })).toThrow(/goto/);
  });
});

describe('addItem', () => {
  const answering = (run: IpRun) => async () => run;

  it('reports added, and EEXIST as exists (success)', async () => {
    expect(await addItem(answering({ ok: true, stdout: '', stderr: '' }), proxyRule)).toMatchObject({ ok: true, result: 'added' });
    const exists = await addItem(answering({ ok: false, reason: 'x', hint: 'y', stderr: 'RTNETLINK answers: File exists\n', code: 2 }), proxyRule);
    expect(exists).toMatchObject({ ok: true, result: 'exists', argv: ruleAddArgv(proxyRule) });
  });

  it('reports any other failure as data with the hint', async () => {
    const denied = await addItem(answering({ ok: false, reason: 'ip failed: Operation not permitted', hint: 'connwatch needs CAP_NET_ADMIN', stderr: 'RTNETLINK answers: Operation not permitted', code: 2 }), gateway);
    expect(denied).toMatchObject({ ok: false, hint: 'connwatch needs CAP_NET_ADMIN' });
  });

  it('only ever runs "add"', async () => {
    const calls: string[][] = [];
    for (const item of [proxyRule, localRule, podRule, onlink, gateway, podCidr, v6local]) {
      await addItem(async (args) => (calls.push(args), { ok: true, stdout: '', stderr: '' }), item);
    }
    expect(calls.every((args) => args[2] === 'add' && !args.includes('del') && !args.includes('replace') && !args.includes('flush'))).toBe(true);
  });
});

describe('planRestore', () => {
  const addresses = [
    { family: 4 as const, dev: 'eth0', address: '192.168.10.2/24' },
    { family: 4 as const, dev: 'cilium_host', address: '10.0.1.1/32' },
  ];

  it('orders on-link routes, then gateway routes, then rules by priority', () => {
    const missing: DatapathItem[] = [localRule, gateway, podRule, proxyRule, onlink, podCidr];
    expect(planRestore(missing, addresses)).toEqual({ ordered: [onlink, gateway, podCidr, proxyRule, localRule, podRule], held: [] });
  });

  it('holds a route whose source address is not on the host yet', () => {
    const plan = planRestore([podCidr, proxyRule], addresses.slice(0, 1));
    expect(plan.ordered).toEqual([proxyRule]);
    expect(plan.held).toEqual([{ item: podCidr, waitsFor: 'address 10.0.1.1 on this host' }]);
  });
});

describe('applyPlan', () => {
  it('adds in order, carries on past a failure, stops on abort', async () => {
    const calls: string[] = [];
    const run = async (args: string[]) => {
      calls.push(args.slice(0, 5).join(' '));
      return args.includes('2004') ? { ok: false as const, reason: 'no', hint: 'h', stderr: 'Error: boom' } : { ok: true as const, stdout: '', stderr: '' };
    };
    const applied = await applyPlan(run, { ordered: [onlink, proxyRule, podRule], held: [] });
    expect(applied.map((entry) => entry.result.ok)).toEqual([true, false, true]);
    expect(calls).toHaveLength(3);
    const controller = new AbortController();
    controller.abort();
    expect(await applyPlan(run, { ordered: [onlink], held: [] }, controller.signal)).toEqual([]);
  });
});
