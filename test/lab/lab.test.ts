/**
 * The lab itself, pre-1.14 profile (issue 3): traffic, marked traffic carried by pref 9, the
 * Cilium stand-in's API and endpoint churn, loss and blackholes, and the networkd restart that
 * removes exactly the non-kernel rules, the routes on managed links and the operator's rule —
 * and with them 127.0.0.1 — which the stand-in's restart puts back (except the operator's rule).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import dbus from 'dbus-next';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ciliumRequest, startLab } from '../../scripts/lab/index.js';
import { itemKey, readRoutes, readRules } from '../../scripts/lab/iproute.js';
import { missingFrom } from '../../scripts/lab/cni.js';
import { labCapable, markedConnect, ping, removed } from '../../scripts/lab/testing.js';
import { run } from '../../scripts/lab/run.js';
import type { Lab } from '../../scripts/lab/types.js';
import type { RouteItem, RuleItem } from '../../src/types.js';

const capable = labCapable();

async function busNames(lab: Lab): Promise<string> {
  const r = await run(['busctl', `--address=${lab.description.bus.address}`, 'list', '--no-pager', '--acquired']);
  return r.code === 0 ? r.stdout : `busctl failed: ${r.stderr}`;
}

async function nodeState(lab: Lab): Promise<(RuleItem | RouteItem)[]> {
  const ip = (args: string[]) => lab.exec('node', ['ip', ...args]);
  return [...(await readRules(ip)), ...(await readRoutes(ip))];
}

describe.skipIf(!capable)('lab, Cilium < 1.14 profile', () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await startLab({ profile: 'cilium-pre-1.14' });
  });
  afterAll(async () => {
    await lab?.down();
  });

  it('describes two managed links with carrier, one without, the bus, networkd and the CNI state', async () => {
    const d = lab.description;
    expect(d.node.links.filter((l) => l.managed && l.carrier).length).toBeGreaterThanOrEqual(2);
    expect(d.node.links.filter((l) => l.managed && !l.carrier).length).toBe(1);
    expect(d.bus.address).toMatch(/^unix:path=\/proc\/\d+\/root\/run\/dbus\/system_bus_socket$/);
    expect(await busNames(lab)).toContain('org.freedesktop.network1');
    const links = (await lab.exec('node', ['networkctl', 'list', '--no-legend'])).stdout;
    expect(links).toMatch(/eth0\s+ether\s+routable\s+configured/);
    expect(links).toMatch(/eth2\s+ether\s+no-carrier\s+configuring/);
    const prefs = new Set(d.cniState.rules.map((r) => `${r.family}:${r.priority}`));
    for (const p of ['4:9', '4:10', '4:20', '4:100', '4:111', '6:9', '6:10', '6:20', '6:100', '6:111']) expect(prefs).toContain(p);
    expect(d.cniState.rules.every((r) => r.protocol !== 'kernel')).toBe(true);
    expect(d.cniState.routes.map(itemKey)).toContain('route|4|2004|local|default|lo||boot');
    expect(d.foreignRule).toMatchObject({ priority: 500, table: '200', protocol: 'static' });
    expect(d.kernel).toMatchObject({ netem: false, nftables: true, veth: true });
    // pref 0 `lookup local` was moved to 100, as Cilium does.
    expect((await lab.exec('node', ['ip', 'rule', 'show', 'pref', '0'])).stdout.trim()).toBe('');
  });

  it('reaches networkd on the lab bus from this process (the host mount namespace) with dbus-next', async () => {
    const bus = dbus.sessionBus({ busAddress: lab.description.bus.address });
    try {
      const obj = await bus.getProxyObject('org.freedesktop.network1', '/org/freedesktop/network1');
      const manager = obj.getInterface<dbus.ClientInterface & { ListLinks(): Promise<[number, string, string][]> }>('org.freedesktop.network1.Manager');
      const links = await manager.ListLinks();
      expect(links.map((l) => l[1])).toEqual(expect.arrayContaining(['eth0', 'eth1', 'eth2']));
    } finally {
      bus.disconnect();
    }
  });

  it('carries traffic: node↔pod, node↔peer, pod→peer pod (IPv4 and IPv6)', async () => {
    const podA = lab.description.pods.find((p) => p.name === 'pod-a');
    const peerA = lab.description.pods.find((p) => p.name === 'peer-a');
    if (!podA || !peerA) throw new Error('default pods missing');
    expect(await ping(lab, 'node', podA.ip4)).toBe(true);
    expect(await ping(lab, 'node', podA.ip6)).toBe(true);
    expect(await ping(lab, 'node', lab.description.peer.ip4)).toBe(true);
    expect(await ping(lab, 'peer', '10.77.0.1')).toBe(true);
    expect(await ping(lab, 'pod-a', peerA.ip4)).toBe(true);
    expect(await ping(lab, 'pod-a', peerA.ip6)).toBe(true);
    expect(await ping(lab, 'peer-a', podA.ip4)).toBe(true);
    const http = await lab.exec('node', ['bash', '-c', `exec 3<>/dev/tcp/${podA.ip4}/4240; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3`]);
    expect(http.stdout).toContain('"lab":"pod-a"');
  });

  it('marked traffic fails while pref 9 is gone and works when it is back', async () => {
    expect(await markedConnect(lab)).toBe('lab-ok');
    const pref9 = lab.description.cniState.rules.find((r) => r.family === 4 && r.priority === 9);
    expect(pref9).toBeDefined();
    expect((await lab.exec('node', ['ip', 'rule', 'del', 'pref', '9', 'fwmark', '0x200/0xf00', 'lookup', '2004'])).code).toBe(0);
    expect(await markedConnect(lab)).toBeUndefined();
    expect((await lab.exec('node', ['ip', 'rule', 'add', 'pref', '9', 'fwmark', '0x200/0xf00', 'lookup', '2004', 'proto', 'unspec'])).code).toBe(0);
    expect(await markedConnect(lab)).toBe('lab-ok');
  });

  it('serves Cilium-shaped healthz and endpoints, with churn', async () => {
    const sock = lab.description.cilium.socket;
    const health = await ciliumRequest(sock, 'GET', '/v1/healthz');
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toMatchObject({ cilium: { state: 'Ok' }, cluster: { ciliumHealth: { state: 'Ok' } } });
    const list = async () => JSON.parse((await ciliumRequest(sock, 'GET', '/v1/endpoint')).body) as { id: number; status: { state: string; networking: { addressing: { ipv4: string; ipv6: string }[] } } }[];
    const before = await list();
    expect(before.length).toBe(2);
    expect(before[0]?.status.state).toBe('ready');

    const pod = await lab.addPod('pod-c');
    const during = await list();
    expect(during.map((e) => e.status.networking.addressing[0]?.ipv4)).toContain(pod.ip4);
    const rules = (await lab.exec('node', ['ip', 'rule'])).stdout;
    expect(rules).toContain(`from ${pod.ip4} lookup 11`);
    expect(rules).toContain(`to ${pod.ip4} lookup main`);
    expect(await ping(lab, 'node', pod.ip4)).toBe(true);

    await lab.removePod('pod-c');
    expect((await list()).length).toBe(2);
    expect((await lab.exec('node', ['ip', 'rule'])).stdout).not.toContain(pod.ip4);
    expect((await run(['ip', 'netns', 'list'])).stdout).not.toContain(pod.netns);
  });

  it('drops traffic with a blackhole and with random loss, and clears', async () => {
    await lab.blackhole('peer');
    expect(await ping(lab, 'node', lab.description.peer.ip4)).toBe(false);
    await lab.clear();
    expect(await ping(lab, 'node', lab.description.peer.ip4)).toBe(true);
    await lab.loss('pod-b', 50);
    const r = await lab.exec('node', ['ping', '-q', '-c', '60', '-i', '0.01', '-W', '1', '10.78.0.11']);
    const received = Number(/(\d+) received/.exec(r.stdout)?.[1] ?? -1);
    expect(received).toBeGreaterThan(4);
    expect(received).toBeLessThan(56);
    await lab.clear();
    expect(await ping(lab, 'node', '10.78.0.11')).toBe(true);
  });

  it('a networkd restart removes exactly the non-kernel rules, the routes on managed links and the operator rule — and loopback', async () => {
    const d = lab.description;
    const { before, after } = await lab.restartNetworkd();
    const managed = new Set(d.node.links.filter((l) => l.managed).map((l) => l.name));
    const all = [...before.rules, ...before.routes];
    const expected = all
      .filter((i) => (i.kind === 'rule' ? i.protocol !== 'kernel' : i.protocol !== 'kernel' && managed.has(i.dev ?? '')))
      .map(itemKey)
      .sort();
    expect(removed(all, [...after.rules, ...after.routes])).toEqual(expected);
    // What that is, spelled out: every CNI rule, the ENI/proxy/peer routes, and the operator's rule.
    expect(expected).toContain(itemKey(d.foreignRule));
    expect(expected.filter((k) => k.startsWith('rule|')).length).toBe(d.cniState.rules.length + 1);
    expect(expected).toContain('route|4|11|unicast|default|eth1|10.77.1.2|boot');
    expect(after.rules.every((r) => r.protocol === 'kernel')).toBe(true);
    expect(after.routes.map(itemKey)).toContain('route|4|2004|local|default|lo||boot');
    expect(await ping(lab, 'node', '127.0.0.1')).toBe(false);
    expect(await markedConnect(lab)).toBeUndefined();
    // networkd says so itself (SYSTEMD_LOG_LEVEL=debug).
    expect(readFileSync(join(d.logs, 'networkd.log'), 'utf8')).toMatch(/Removing foreign routing policy rule .*priority: 500/);
  });

  it("the stand-in's restart re-installs the CNI state (not the operator's rule) and loopback works again", async () => {
    const d = lab.description;
    await lab.restartCilium();
    const now = await nodeState(lab);
    expect(missingFrom([...d.cniState.rules, ...d.cniState.routes], now)).toEqual([]);
    expect(now.map(itemKey)).not.toContain(itemKey(d.foreignRule));
    expect(await ping(lab, 'node', '127.0.0.1')).toBe(true);
    expect(await markedConnect(lab)).toBe('lab-ok');
    expect(await ping(lab, 'pod-a', '10.79.0.10')).toBe(true);
  });

  it('networkctl reconfigure of one link flushes the rules again and the routes on that link', async () => {
    const d = lab.description;
    await lab.reconfigure('eth1');
    const now = await nodeState(lab);
    const gone = missingFrom([...d.cniState.rules, ...d.cniState.routes], now).map(itemKey);
    expect(gone.filter((k) => k.startsWith('rule|')).length).toBe(d.cniState.rules.length);
    expect(gone).toContain('route|4|11|unicast|default|eth1|10.77.1.2|boot');
    expect(gone).toContain('route|6|11|unicast|default|eth1|fd77:1::2|boot');
    expect(gone).not.toContain('route|6|2005|unicast|default|eth0|fd77::2|boot');
    await lab.restartCilium();
  });

  it('restarting the bus drops networkd from it until networkd restarts', async () => {
    const oldPid = lab.description.bus.pid;
    await lab.restartBus();
    expect(lab.description.bus.pid).not.toBe(oldPid);
    const names = await busNames(lab);
    expect(names).not.toContain('busctl failed');
    expect(names).not.toContain('org.freedesktop.network1');
    await lab.restartNetworkd();
    expect(await busNames(lab)).toContain('org.freedesktop.network1');
    await lab.restartCilium();
  });
});
