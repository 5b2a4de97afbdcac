/**
 * The lab: the reference incident on one machine. `startLab` builds two nodes (network
 * namespaces) with pods, a private mount namespace holding a tmpfs /run with a private system
 * bus and the real systemd-networkd in the node's namespace, the CNI state of a Cilium profile,
 * marked traffic and (optionally) a Cilium stand-in. `downLab` removes all of it, also after a
 * crash, from the state file alone. See docs/lab.md and ../shared/lab/NETWORKD.md.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RouteItem, RuleItem } from '../../src/types.js';
import { cniItems, foreignRule, installProfile, podRoutes, podRules, presentIn, removeItems, installItems, type CniPod } from './cni.js';
import { readRoutes, readRules, ruleArgs, type IpRunner } from './iproute.js';
import { impairTargets, applyImpairment, clearImpairments } from './impair.js';
import { afterRestart, parseCiliumMode } from './cilium-mode.js';
import { RESPONDER_SOURCE, type ResponderControl } from './responder.js';
import { isAlive, mustRun, procRef, run, stopProcess, waitFor, type ProcRef } from './run.js';
import { labDirFor, readState, resolveStateFile, stateFileFor, writeState, type LabState, type PodState, type ResponderRef } from './state.js';
import {
  CILIUM_LAB_HEALTH_SOCKET,
  CILIUM_LAB_SOCKET,
  DEFAULT_REMOTE_NODES,
  HEALTH_POD,
  MAX_REMOTE_NODES,
  LAB_PREFIX,
  LAB_ROOT,
  MARKED,
  NODE_LINKS,
  NODE_POD_NET,
  NO_CARRIER_PEER,
  PEER_POD_NET,
  POD_GW6,
  POD_NAME,
  RESPONDER_PORT,
  networkFiles,
  networkdConf,
  netnsNames,
  newLabName,
  podLink,
  podNetns,
  remoteNodePlan,
} from './topology.js';
import type { CiliumMode, CiliumModeName, ExecResult, Lab, LabClusterNode, LabDescription, LabOptions, LabPod, LabTarget } from './types.js';

export type { CiliumMode, CiliumModeName, HostileKind, Lab, LabClusterNode, LabDescription, LabOptions } from './types.js';
export { parseCiliumMode } from './cilium-mode.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const NETWORKD = '/lib/systemd/systemd-networkd';
/** The bus socket inside the lab's mount namespace. */
const BUS_SOCKET = '/run/dbus/system_bus_socket';
/** The node's pods; the peer's pods come from the remote-node plan (peer-a, peer-b, …). */
const NODE_PODS = ['pod-a', 'pod-b'];

// ─── namespaces and commands ────────────────────────────────────────────────────────────────

/** `ip -n <ns> …` from the host mount namespace. */
function ipIn(netns: string): IpRunner {
  return (args) => run(['ip', '-n', netns, ...args]);
}

async function ipBatch(netns: string, lines: string[], family?: 4 | 6): Promise<void> {
  const fam = family ? [`-${family}`] : [];
  await mustRun(['ip', '-n', netns, ...fam, '-batch', '-'], { input: lines.join('\n') + '\n' });
}

async function sysctl(netns: string, settings: string[]): Promise<void> {
  await mustRun(['nsenter', `--net=/run/netns/${netns}`, '--', 'sysctl', '-qw', ...settings]);
}

function netnsOf(state: LabState, target: LabTarget): string {
  if (target === 'node') return state.netns.node;
  if (target === 'peer') return state.netns.peer;
  const pod = state.pods.find((p) => p.name === target);
  if (!pod) throw new Error(`lab: no target "${target}" (use node, peer or a pod: ${state.pods.map((p) => p.name).join(', ')})`);
  return pod.netns;
}

/** nsenter argv that puts a command in the lab's mount namespace and the target's network namespace. */
function enterArgv(state: LabState, target: LabTarget, argv: string[], cwd?: string): string[] {
  const keeper = state.procs.keeper;
  if (!keeper || !isAlive(keeper)) throw new Error(`lab ${state.name}: its mount namespace is gone (hint: \`npm run lab -- down ${state.name}\` and start again)`);
  return ['nsenter', `--mount=/proc/${keeper.pid}/ns/mnt`, `--net=/run/netns/${netnsOf(state, target)}`, `--wd=${cwd ?? process.cwd()}`, '--', ...argv];
}

function labEnv(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  // Never let a command in the lab find the host's system bus.
  return { ...process.env, ...extra, DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${BUS_SOCKET}` };
}

/** Starts a process detached from us (it outlives the CLI), output to a log file. */
function spawnDetached(argv: string[], logFile: string, opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): ChildProcess {
  const fd = openSync(logFile, 'a');
  try {
    const [cmd, ...args] = argv;
    const child = spawn(cmd ?? 'false', args, { detached: true, stdio: ['ignore', fd, fd], env: opts.env ?? process.env, cwd: opts.cwd ?? REPO_ROOT });
    child.on('error', () => undefined);
    child.unref();
    return child;
  } finally {
    closeSync(fd);
  }
}

async function waitStarted(child: ChildProcess, what: string, logFile: string): Promise<ProcRef> {
  const ref = await waitFor(() => procRef(child.pid), `${what} to start`, 5_000).catch(() => undefined);
  if (!ref) throw new Error(`lab: ${what} did not start: ${tail(logFile)}`);
  return ref;
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-5).join(' | ');
  } catch {
    return '(no log)';
  }
}

// ─── building ───────────────────────────────────────────────────────────────────────────────

async function preflight(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('lab: needs root (network namespaces, mounts) (hint: run as root)');
  for (const bin of ['ip', 'nsenter', 'unshare', 'dbus-daemon', 'nft', 'sysctl']) {
    const r = await run(['sh', '-c', `command -v ${bin}`]);
    if (r.code !== 0) throw new Error(`lab: \`${bin}\` not found (hint: bash scripts/deps.sh installs iproute2, util-linux, dbus, nftables, procps)`);
  }
  if (!existsSync(NETWORKD)) throw new Error(`lab: ${NETWORKD} not found (hint: the lab needs Debian's systemd package)`);
}

const NO_DAD = ['net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0'];
const NODE_SYSCTLS = [...NO_DAD, 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0'];

async function createNodes(state: LabState): Promise<void> {
  const { node, peer } = state.netns;
  await mustRun(['ip', 'netns', 'add', node]);
  await mustRun(['ip', 'netns', 'add', peer]);
  // Before any link exists: no DAD (tentative addresses would fail the first packets) and routing on.
  await sysctl(node, NODE_SYSCTLS);
  await sysctl(peer, NODE_SYSCTLS);
  const lines = ['link set lo up'];
  for (const l of NODE_LINKS) {
    lines.push(l.peerEnd ? `link add ${l.name} type veth peer name ${l.peerEnd.name} netns ${peer}` : `link add ${l.name} type veth peer name ${NO_CARRIER_PEER}`);
    lines.push(`link set ${l.name} up`);
  }
  // Marked traffic: an unmanaged link whose route leads nowhere, and a local address whose local-table
  // route is removed — so only pref 9 / table 2004 delivers marked packets to it.
  lines.push(`link add ${MARKED.link} type veth peer name ${MARKED.linkPeer}`, `link set ${MARKED.link} up`, `link set ${MARKED.linkPeer} up`);
  lines.push(`addr add ${MARKED.addr}/32 dev lo scope host`, `route add ${MARKED.net} dev ${MARKED.link}`, `route del local ${MARKED.addr} dev lo table local`);
  await ipBatch(node, lines);
  // Without pref 9 a marked packet goes out the dead-end link: fail its ARP in ~100 ms (connect gets
  // EHOSTUNREACH) instead of three seconds.
  const neigh = `net.ipv4.neigh.${MARKED.link}`;
  await sysctl(node, [`${neigh}.mcast_solicit=1`, `${neigh}.ucast_solicit=0`, `${neigh}.app_solicit=0`, `${neigh}.retrans_time_ms=100`]);

  const peerLines = ['link set lo up'];
  for (const l of NODE_LINKS) {
    if (!l.peerEnd) continue;
    peerLines.push(`link set ${l.peerEnd.name} up`, `addr add ${l.peerEnd.ip4} dev ${l.peerEnd.name}`, `addr add ${l.peerEnd.ip6} dev ${l.peerEnd.name} nodad`);
  }
  peerLines.push(`route add ${NODE_POD_NET.cidr4} via 10.77.0.1 dev eth0`, `route add ${NODE_POD_NET.cidr6} via fd77::1 dev eth0`, `route add prohibit ${MARKED.net}`);
  await ipBatch(peer, peerLines);
}

/** The keeper: `sleep` in a private mount namespace (inside the node's netns, with its own sysfs) that holds the lab's /run. */
const KEEPER_SCRIPT = String.raw`
set -eu
keep=$1; labdir=$2; name=$3
mkdir -p "$keep"
mount --rbind /run "$keep"
mount -t tmpfs -o mode=0755 connwatch-lab-run /run
mkdir -p /run/netns /run/dbus /run/systemd/netif /run/udev/data /run/cilium "/run/connwatch-lab/$name"
mount --rbind "$keep/netns" /run/netns
mount --bind "$keep/connwatch-lab/$name" "/run/connwatch-lab/$name"
mount --bind "$keep/connwatch-lab/$name/cilium" /run/cilium
umount -l "$keep"
rmdir "$keep"
chown systemd-network:systemd-network /run/systemd/netif
for d in /etc/systemd/network /usr/lib/systemd/network /usr/local/lib/systemd/network /etc/systemd/networkd.conf.d /usr/lib/systemd/networkd.conf.d; do
  [ -d "$d" ] && mount -t tmpfs -o mode=0755 connwatch-lab-netcfg "$d"
done
cp "$labdir"/network/*.network /etc/systemd/network/
[ -f "$labdir/networkd.conf" ] && mount --bind "$labdir/networkd.conf" /etc/systemd/networkd.conf
echo ready
exec sleep infinity
`;

async function startKeeper(state: LabState): Promise<void> {
  const netDir = join(state.dir, 'network');
  mkdirSync(netDir, { recursive: true });
  for (const [file, text] of Object.entries(networkFiles())) writeFileSync(join(netDir, file), text);
  const conf = networkdConf(state.profile);
  if (conf) writeFileSync(join(state.dir, 'networkd.conf'), conf);
  state.keepDir = `/tmp/${state.name}-keep`;
  writeState(state);
  const log = join(state.dir, 'keeper.log');
  const child = spawnDetached(
    ['ip', 'netns', 'exec', state.netns.node, 'unshare', '--mount', '--propagation', 'private', 'bash', '-c', KEEPER_SCRIPT, 'keeper', state.keepDir, state.dir, state.name],
    log,
  );
  state.procs.keeper = await waitStarted(child, 'the mount-namespace keeper', log);
  writeState(state);
  await waitFor(() => readFileSync(log, 'utf8').includes('ready') || (!isAlive(state.procs.keeper) && 'dead'), 'the lab mount namespace', 10_000).then((v) => {
    if (v === 'dead') throw new Error(`lab: building the mount namespace failed: ${tail(log)}`);
  });
  state.mntIno = statSync(`/proc/${state.procs.keeper.pid}/ns/mnt`).ino;
  state.keepDir = undefined;
  writeState(state);
}

/** The lab's /run as seen from the host. */
function labRun(state: LabState, path: string): string {
  return `/proc/${state.procs.keeper?.pid ?? 0}/root/run/${path}`;
}

/** What systemd-udevd would have left: a database entry per link, so networkd treats udev as present. */
async function writeUdevDb(state: LabState, netns: string = state.netns.node): Promise<void> {
  const links = JSON.parse(await mustRun(['ip', '-n', netns, '-j', 'link', 'show'])) as { ifindex: number }[];
  const usec = BigInt(Date.now()) * 1000n;
  for (const l of links) {
    const file = labRun(state, `udev/data/n${l.ifindex}`);
    if (!existsSync(file)) writeFileSync(file, `I:${usec}\n`);
  }
}

async function startBus(state: LabState): Promise<void> {
  const log = join(state.dir, 'dbus.log');
  rmSync(labRun(state, 'dbus/system_bus_socket'), { force: true });
  const child = spawnDetached(enterArgv(state, 'node', ['dbus-daemon', '--system', '--nofork', '--nopidfile'], '/'), log);
  state.procs.dbus = await waitStarted(child, 'dbus-daemon', log);
  writeState(state);
  await waitFor(() => existsSync(labRun(state, 'dbus/system_bus_socket')) || (!isAlive(state.procs.dbus) && 'dead'), 'the lab bus socket').then((v) => {
    if (v === 'dead') throw new Error(`lab: dbus-daemon exited: ${tail(log)}`);
  });
}

async function startNetworkd(state: LabState): Promise<void> {
  const log = join(state.dir, 'networkd.log');
  rmSync(labRun(state, 'systemd/netif/links'), { recursive: true, force: true });
  const child = spawnDetached(enterArgv(state, 'node', [NETWORKD], '/'), log, { env: labEnv({ SYSTEMD_LOG_LEVEL: 'debug' }) });
  state.procs.networkd = await waitStarted(child, 'systemd-networkd', log);
  writeState(state);
  await waitConfigured(state);
}

async function ifindexes(netns: string): Promise<Map<string, number>> {
  const links = JSON.parse(await mustRun(['ip', '-n', netns, '-j', 'link', 'show'])) as { ifindex: number; ifname: string }[];
  return new Map(links.map((l) => [l.ifname, l.ifindex]));
}

function adminState(state: LabState, ifindex: number): string | undefined {
  try {
    return /^ADMIN_STATE=(\S+)/m.exec(readFileSync(labRun(state, `systemd/netif/links/${ifindex}`), 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

function stateFileMtime(state: LabState, ifindex: number): number {
  try {
    return statSync(labRun(state, `systemd/netif/links/${ifindex}`)).mtimeMs;
  } catch {
    return 0;
  }
}

/**
 * Waits until every managed link with carrier is `configured` (the one without carrier never is);
 * with `since`, only a state file networkd rewrote after that point counts (a reconfigure).
 */
async function waitConfigured(
  state: LabState,
  links = NODE_LINKS.filter((l) => l.managed && l.carrier).map((l) => l.name),
  since?: Map<string, number>,
): Promise<void> {
  const idx = await ifindexes(state.netns.node);
  await waitFor(
    () => {
      if (!isAlive(state.procs.networkd)) throw new Error(`lab: systemd-networkd exited: ${tail(join(state.dir, 'networkd.log'))}`);
      return links.every((l) => {
        const i = idx.get(l) ?? -1;
        return adminState(state, i) === 'configured' && stateFileMtime(state, i) > (since?.get(l) ?? -1);
      });
    },
    `networkd to configure ${links.join(', ')}`,
    15_000,
  );
}

function nextPodIndex(state: LabState, node: 'node' | 'peer'): number {
  const used = new Set(state.pods.filter((p) => p.node === node).map((p) => p.index));
  let i = 10;
  while (used.has(i)) i++;
  return i;
}

/** The pod's namespace and veth: what the kubelet and the CNI plugin do, before the agent's rules. */
async function plumbPod(state: LabState, name: string, node: 'node' | 'peer'): Promise<PodState> {
  if (!POD_NAME.test(name)) throw new Error(`lab: pod name "${name}" must match ${POD_NAME} (it names a veth)`);
  if (state.pods.some((p) => p.name === name)) throw new Error(`lab: pod "${name}" exists already`);
  const index = nextPodIndex(state, node);
  const net = node === 'node' ? NODE_POD_NET : PEER_POD_NET;
  const pod: PodState = { name, node, netns: podNetns(state.name, name), ip4: `${net.v4}.${index}`, ip6: `${net.v6}${index}`, index };
  state.pods.push(pod);
  writeState(state);
  const hostNs = node === 'node' ? state.netns.node : state.netns.peer;
  const link = podLink(name);
  await mustRun(['ip', 'netns', 'add', pod.netns]);
  await sysctl(pod.netns, NO_DAD);
  await ipBatch(hostNs, [`link add ${link} type veth peer name eth0 netns ${pod.netns}`, `link set ${link} up`, `addr add ${POD_GW6}/64 dev ${link} nodad`]);
  await sysctl(hostNs, [`net.ipv4.conf.${link}.proxy_arp=1`]);
  await ipBatch(pod.netns, ['link set lo up', 'link set eth0 up', `addr add ${pod.ip4}/32 dev eth0`, `addr add ${pod.ip6}/128 dev eth0 nodad`, 'route add default dev eth0 scope link', `route add default via ${POD_GW6} dev eth0`]);
  if (node === 'peer') await ipBatch(hostNs, [`route add ${pod.ip4}/32 dev ${link} scope link`, `route add ${pod.ip6}/128 dev ${link}`]);
  else if (state.procs.keeper) await writeUdevDb(state);
  return pod;
}

/** The responders' control file (delay and jitter per target), re-read by each responder when it changes. */
function responderControlFile(state: LabState): string {
  return join(state.dir, 'responders.json');
}

function readResponderControl(state: LabState): ResponderControl {
  try {
    return JSON.parse(readFileSync(responderControlFile(state), 'utf8')) as ResponderControl;
  } catch {
    return {};
  }
}

function writeResponderControl(state: LabState, control: ResponderControl): void {
  const file = responderControlFile(state);
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(control) + '\n');
  renameSync(tmp, file);
}

/** The TCP greeter port the target's responder also serves (the node's marked-traffic target). */
function greeterPort(target: LabTarget): number | undefined {
  return target === 'node' ? MARKED.port : undefined;
}

async function startResponder(state: LabState, target: LabTarget, tcpPort = greeterPort(target)): Promise<void> {
  const log = join(state.dir, `responder-${target}.log`);
  const argv = ['nsenter', `--net=/run/netns/${netnsOf(state, target)}`, '--', process.execPath, '-e', RESPONDER_SOURCE, target, String(RESPONDER_PORT)];
  if (tcpPort !== undefined) argv.push(String(tcpPort));
  const since = existsSync(log) ? readFileSync(log, 'utf8').length : 0;
  const child = spawnDetached(argv, log, { env: { ...process.env, LAB_RESPONDER_CONTROL: responderControlFile(state) } });
  const ref: ResponderRef = { ...(await waitStarted(child, `the responder in ${target}`, log)), target };
  state.procs.responders.push(ref);
  writeState(state);
  await waitFor(() => readFileSync(log, 'utf8').slice(since).includes('ready') || (!isAlive(ref) && 'dead'), `the responder in ${target}`).then((v) => {
    if (v === 'dead') throw new Error(`lab: responder in ${target} exited: ${tail(log)}`);
  });
}

/** nftables: mark TCP to the marked address where it re-routes (a `type route hook output` chain). */
async function installMarking(state: LabState): Promise<void> {
  const ruleset = [
    'table ip connwatch_lab_mark {',
    '  chain out {',
    '    type route hook output priority mangle; policy accept;',
    `    ip daddr ${MARKED.addr} tcp dport ${MARKED.port} meta mark set 0x${MARKED.mark.toString(16)}`,
    '  }',
    '}',
  ].join('\n');
  await mustRun(['nsenter', `--net=/run/netns/${state.netns.node}`, '--', 'nft', '-f', '-'], { input: ruleset + '\n' });
}

async function probeKernel(state: LabState): Promise<void> {
  const node = state.netns.node;
  const netem = await run(['nsenter', `--net=/run/netns/${node}`, '--', 'tc', 'qdisc', 'add', 'dev', MARKED.linkPeer, 'root', 'netem', 'delay', '1ms']);
  if (netem.code === 0) await run(['nsenter', `--net=/run/netns/${node}`, '--', 'tc', 'qdisc', 'del', 'dev', MARKED.linkPeer, 'root']);
  const dummy = await run(['ip', '-n', node, 'link', 'add', 'cwprobe0', 'type', 'dummy']);
  if (dummy.code === 0) await run(['ip', '-n', node, 'link', 'del', 'cwprobe0']);
  const nft = await run(['nsenter', `--net=/run/netns/${node}`, '--', 'nft', 'list', 'tables']);
  state.kernel = { netem: netem.code === 0, dummy: dummy.code === 0, nftables: nft.code === 0, veth: true };
}

async function refreshCniState(state: LabState): Promise<void> {
  const ip = ipIn(state.netns.node);
  const expected = cniItems(state.profile, nodePods(state));
  state.cniState = { rules: presentIn(expected.rules, await readRules(ip)), routes: presentIn(expected.routes, await readRoutes(ip)) };
  writeState(state);
}

function nodePods(state: LabState): CniPod[] {
  return state.pods.filter((p) => p.node === 'node');
}

// ─── the Cilium stand-in ────────────────────────────────────────────────────────────────────

function ciliumSocket(state: LabState): string {
  return join(state.dir, 'cilium', 'cilium.sock');
}

function ciliumHealthSocket(state: LabState): string {
  return join(state.dir, 'cilium', 'health.sock');
}

/** One request to the stand-in over its unix socket (either of them); `body` is sent as JSON when given. */
export function ciliumRequest(
  socketPath: string,
  method: string,
  path: string,
  timeoutMs = 10_000,
  opts: { body?: unknown; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolveReq, reject) => {
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const headers = { ...opts.headers, ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) } : {}) };
    const req = request({ socketPath, method, path, timeout: timeoutMs, headers }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolveReq({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`lab: ${method} ${path} on ${socketPath} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

async function startCilium(state: LabState): Promise<void> {
  const log = join(state.dir, 'cilium.log');
  rmSync(ciliumSocket(state), { force: true });
  const argv = ['nsenter', `--net=/run/netns/${state.netns.node}`, '--', process.execPath, '--import', 'tsx', join(REPO_ROOT, 'scripts/lab/cilium-standin.ts'), state.stateFile];
  const child = spawnDetached(argv, log, { cwd: REPO_ROOT });
  state.procs.cilium = await waitStarted(child, 'the Cilium stand-in', log);
  writeState(state);
  await waitFor(
    async () => {
      if (!isAlive(state.procs.cilium)) throw new Error(`lab: the Cilium stand-in exited: ${tail(log)}`);
      if (!existsSync(ciliumHealthSocket(state))) return false;
      const r = await ciliumRequest(ciliumSocket(state), 'GET', '/lab/mode', 1_000).catch(() => undefined);
      return r?.status === 200;
    },
    'the Cilium stand-in to answer',
    20_000,
    50,
  );
}

async function ciliumControl(state: LabState, method: string, path: string, body?: unknown): Promise<string> {
  const r = await ciliumRequest(ciliumSocket(state), method, path, 30_000, body === undefined ? {} : { body });
  if (r.status >= 300) throw new Error(`lab: stand-in ${method} ${path} → ${r.status} ${r.body}`);
  return r.body;
}

// ─── the public API ─────────────────────────────────────────────────────────────────────────

/** Builds a lab and returns it running. On failure everything built so far is removed. */
export async function startLab(opts: LabOptions): Promise<Lab> {
  await preflight();
  const name = opts.name ?? newLabName();
  if (!/^[a-z][a-z0-9-]{0,23}$/.test(name)) throw new Error(`lab: name "${name}" must match /^[a-z][a-z0-9-]{0,23}$/`);
  if (existsSync(stateFileFor(name))) throw new Error(`lab: "${name}" exists (hint: npm run lab -- down ${name})`);
  const remoteNodes = opts.remoteNodes ?? DEFAULT_REMOTE_NODES;
  if (!Number.isInteger(remoteNodes) || remoteNodes < 1 || remoteNodes > MAX_REMOTE_NODES) throw new Error(`lab: remoteNodes must be an integer 1..${MAX_REMOTE_NODES}, got ${remoteNodes}`);
  const ciliumMode = parseCiliumMode(opts.ciliumMode ?? 'ok');
  const state: LabState = {
    version: 1,
    name,
    profile: opts.profile,
    dir: labDirFor(name),
    stateFile: stateFileFor(name),
    repoRoot: REPO_ROOT,
    netns: netnsNames(name),
    pods: [],
    procs: { responders: [], spawned: [] },
    cniState: { rules: [], routes: [] },
    kernel: { netem: false, dummy: false, nftables: true, veth: true },
    createdAt: new Date().toISOString(),
    remoteNodes: remoteNodePlan(remoteNodes),
    ciliumMode,
  };
  mkdirSync(join(state.dir, 'cilium'), { recursive: true });
  writeState(state);
  try {
    await createNodes(state);
    await startKeeper(state);
    await writeUdevDb(state);
    await startBus(state);
    await startNetworkd(state);
    // Each pod's plumbing is independent (its index is taken before the first await): build them at once.
    await Promise.all([...NODE_PODS.map((p) => plumbPod(state, p, 'node')), ...(state.remoteNodes ?? []).map((r) => plumbPod(state, r.pod, 'peer'))]);
    // What the Cilium agent did at its start: its rules and routes, then the operator's own rule.
    await installProfile(ipIn(state.netns.node), state.profile, nodePods(state));
    state.foreignRule = foreignRule();
    await mustRun(['ip', '-n', state.netns.node, '-4', ...ruleArgs(state.foreignRule, 'add')]);
    await installMarking(state);
    // The responders and the stand-in start at once (each is a Node process: start-up is most of `up`).
    await Promise.all([
      startResponder(state, 'node'),
      startResponder(state, 'peer'),
      ...state.pods.map((p) => startResponder(state, p.name)),
      probeKernel(state),
      opts.cilium !== false ? startCilium(state) : undefined,
    ]);
    await refreshCniState(state);
    writeState(state);
  } catch (err) {
    await downLab(state.stateFile).catch(() => undefined);
    throw err;
  }
  return new RunningLab(state);
}

/** Re-attaches to a lab started by another process (the CLI). */
export function attachLab(nameOrStateFile: string): Lab {
  const state = readState(resolveStateFile(nameOrStateFile));
  if (!state) throw new Error(`lab: no state for "${nameOrStateFile}" (hint: npm run lab -- status)`);
  return new RunningLab(state);
}

/** Names of every lab with a state file. */
export function listLabs(): string[] {
  try {
    return readdirSync(LAB_ROOT)
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -'.json'.length));
  } catch {
    return [];
  }
}

class RunningLab implements Lab {
  constructor(private state: LabState) {}

  get description(): LabDescription {
    return describe(this.state);
  }

  async exec(target: LabTarget, argv: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<ExecResult> {
    return run(enterArgv(this.state, target, argv), { env: labEnv(opts.env), timeoutMs: opts.timeoutMs ?? 30_000 });
  }

  spawn(target: LabTarget, argv: string[], opts: SpawnOptions = {}): ChildProcess {
    const cwd = typeof opts.cwd === 'string' ? opts.cwd : opts.cwd ? fileURLToPath(opts.cwd) : undefined;
    const [cmd, ...args] = enterArgv(this.state, target, argv, cwd);
    const child = spawn(cmd ?? 'nsenter', args, { ...opts, env: labEnv(opts.env) });
    const ref = procRef(child.pid);
    if (ref) {
      this.state.procs.spawned.push(ref);
      writeState(this.state);
    }
    return child;
  }

  async restartNetworkd(): Promise<{ before: { rules: RuleItem[]; routes: RouteItem[] }; after: { rules: RuleItem[]; routes: RouteItem[] } }> {
    const ip = ipIn(this.state.netns.node);
    const before = { rules: await readRules(ip), routes: await readRoutes(ip) };
    await stopProcess(this.state.procs.networkd, 'SIGTERM');
    await startNetworkd(this.state);
    const after = { rules: await readRules(ip), routes: await readRoutes(ip) };
    return { before, after };
  }

  async reconfigure(link?: string): Promise<void> {
    const links = link ? [link] : NODE_LINKS.filter((l) => l.managed).map((l) => l.name);
    const withCarrier = links.filter((l) => NODE_LINKS.find((n) => n.name === l)?.carrier !== false);
    const idx = await ifindexes(this.state.netns.node);
    const since = new Map(withCarrier.map((l) => [l, stateFileMtime(this.state, idx.get(l) ?? -1)]));
    const r = await this.exec('node', ['networkctl', 'reconfigure', ...links]);
    if (r.code !== 0) throw new Error(`lab: networkctl reconfigure ${links.join(' ')} failed: ${r.stderr.trim()}`);
    await waitConfigured(this.state, withCarrier, since);
  }

  async restartBus(): Promise<void> {
    await stopProcess(this.state.procs.dbus, 'SIGTERM');
    await startBus(this.state);
    writeState(this.state);
  }

  async loss(target: LabTarget, percent: number): Promise<void> {
    if (!(percent >= 0 && percent <= 100)) throw new Error(`lab: loss percent must be 0..100, got ${percent}`);
    await applyImpairment(this.state, impairTargets(this.state, target), { kind: 'loss', percent });
  }

  async blackhole(target: LabTarget | 'pods'): Promise<void> {
    await applyImpairment(this.state, impairTargets(this.state, target), { kind: 'blackhole' });
  }

  async clear(): Promise<void> {
    await clearImpairments(this.state);
  }

  async addPod(name: string, node: 'node' | 'peer' = 'node'): Promise<LabPod> {
    const pod = await plumbPod(this.state, name, node);
    if (node === 'node') {
      if (isAlive(this.state.procs.cilium)) await ciliumControl(this.state, 'PUT', `/lab/endpoints/${name}`);
      else await installItems(ipIn(this.state.netns.node), { rules: podRules(this.state.profile, pod), routes: podRoutes(this.state.profile, pod) });
    }
    await startResponder(this.state, name);
    await refreshCniState(this.state);
    return publicPod(pod);
  }

  async removePod(name: string): Promise<void> {
    const pod = this.state.pods.find((p) => p.name === name);
    if (!pod) return;
    if (pod.node === 'node') {
      if (isAlive(this.state.procs.cilium)) await ciliumControl(this.state, 'DELETE', `/lab/endpoints/${name}`);
      else await removeItems(ipIn(this.state.netns.node), { rules: podRules(this.state.profile, pod), routes: podRoutes(this.state.profile, pod) });
    }
    await killInNetns([pod.netns], undefined);
    await run(['ip', 'netns', 'del', pod.netns]);
    await run(['ip', '-n', pod.node === 'node' ? this.state.netns.node : this.state.netns.peer, 'link', 'del', podLink(name)]);
    this.state.pods = this.state.pods.filter((p) => p.name !== name);
    this.state.procs.responders = this.state.procs.responders.filter(isAlive);
    await refreshCniState(this.state);
  }

  async restartCilium(opts: { process?: boolean } = {}): Promise<void> {
    if (opts.process && this.state.procs.cilium) {
      // The pod deleted and recreated: a new process, which starts from the mode in the state file.
      await stopProcess(this.state.procs.cilium, 'SIGKILL');
      await startCilium(this.state);
    }
    if (isAlive(this.state.procs.cilium)) {
      const r = JSON.parse(await ciliumControl(this.state, 'POST', '/lab/restart')) as { mode: CiliumMode };
      this.state.ciliumMode = r.mode;
    } else {
      await installProfile(ipIn(this.state.netns.node), this.state.profile, nodePods(this.state));
      this.state.ciliumMode = afterRestart(parseCiliumMode(this.state.ciliumMode ?? 'ok'));
    }
    writeState(this.state);
  }

  async ciliumMode(mode: CiliumMode | CiliumModeName): Promise<CiliumMode> {
    const next = parseCiliumMode(mode);
    if (!isAlive(this.state.procs.cilium)) throw new Error(`lab ${this.state.name}: the Cilium stand-in is not running (hint: start the lab without --no-cilium)`);
    // Recorded first, so a stand-in process restarted at any point comes back in this mode.
    const before = this.state.ciliumMode;
    this.state.ciliumMode = next;
    writeState(this.state);
    try {
      return JSON.parse(await ciliumControl(this.state, 'PUT', '/lab/mode', next)) as CiliumMode;
    } catch (err) {
      this.state.ciliumMode = before;
      writeState(this.state);
      throw err;
    }
  }

  async delay(target: LabTarget | 'all', ms: number, jitterMs = 0): Promise<void> {
    if (!(Number.isFinite(ms) && ms >= 0 && ms <= 60_000)) throw new Error(`lab: delay must be 0..60000 ms, got ${ms}`);
    if (!(Number.isFinite(jitterMs) && jitterMs >= 0 && jitterMs <= 60_000)) throw new Error(`lab: jitter must be 0..60000 ms, got ${jitterMs}`);
    const setting = { delayMs: ms, jitterMs };
    const control = readResponderControl(this.state);
    if (target === 'all') {
      writeResponderControl(this.state, ms === 0 && jitterMs === 0 ? {} : { all: setting });
      return;
    }
    netnsOf(this.state, target); // throws for an unknown target
    const targets = { ...control.targets };
    if (ms === 0 && jitterMs === 0 && !control.all) delete targets[target];
    else targets[target] = setting;
    writeResponderControl(this.state, { ...(control.all ? { all: control.all } : {}), targets });
  }

  async stopResponder(target: LabTarget): Promise<void> {
    netnsOf(this.state, target);
    const mine = this.state.procs.responders.filter((r) => r.target === target);
    await Promise.all(mine.map((r) => stopProcess(r, 'SIGTERM', 1_000)));
    this.state.procs.responders = this.state.procs.responders.filter((r) => r.target !== target && isAlive(r));
    writeState(this.state);
  }

  async startResponder(target: LabTarget): Promise<void> {
    netnsOf(this.state, target);
    if (this.state.procs.responders.some((r) => r.target === target && isAlive(r))) return;
    await startResponder(this.state, target);
  }

  async hog(workers: number): Promise<number[]> {
    if (!Number.isInteger(workers) || workers < 0 || workers > 64) throw new Error(`lab: hog workers must be an integer 0..64, got ${workers}`);
    const hogs = (this.state.procs.hogs ?? []).filter(isAlive);
    while (hogs.length > workers) await stopProcess(hogs.pop(), 'SIGKILL');
    const log = join(this.state.dir, 'hog.log');
    while (hogs.length < workers) {
      const child = spawnDetached(['nsenter', `--net=/run/netns/${this.state.netns.node}`, '--', 'sh', '-c', 'while :; do :; done'], log);
      hogs.push(await waitStarted(child, 'a CPU hog', log));
      this.state.procs.hogs = hogs;
      writeState(this.state);
    }
    this.state.procs.hogs = hogs;
    writeState(this.state);
    return hogs.map((h) => h.pid);
  }

  async down(): Promise<void> {
    await downLab(this.state.stateFile);
  }
}

function publicPod(p: PodState): LabPod {
  return { name: p.name, node: p.node, netns: p.netns, ip4: p.ip4, ip6: p.ip6 };
}

/** The stand-in's node list as the lab planned it: this node (health endpoint pod-a), then each remote node. */
function clusterNodes(state: LabState): LabClusterNode[] {
  const out: LabClusterNode[] = [];
  const add = (name: string, node: 'node' | 'peer', podName: string) => {
    const pod = state.pods.find((p) => p.name === podName);
    if (!pod) return;
    const link = NODE_LINKS[0];
    const ip4 = (node === 'node' ? link?.ip4 : link?.peerEnd?.ip4) ?? '';
    const ip6 = (node === 'node' ? link?.ip6 : link?.peerEnd?.ip6) ?? '';
    out.push({ name, node, ip4: ip4.replace(/\/\d+$/, ''), ip6: ip6.replace(/\/\d+$/, ''), healthPod: podName, healthIp4: pod.ip4, healthIp6: pod.ip6 });
  };
  add('node', 'node', HEALTH_POD);
  for (const r of state.remoteNodes ?? [{ name: 'peer', pod: 'peer-a' }]) add(r.name, 'peer', r.pod);
  return out;
}

function describe(state: LabState): LabDescription {
  const keeperPid = state.procs.keeper?.pid ?? 0;
  return {
    name: state.name,
    profile: state.profile,
    node: {
      netns: state.netns.node,
      links: NODE_LINKS.map((l) => ({
        name: l.name,
        managed: l.managed,
        carrier: l.carrier,
        ...(l.ip4 ? { ip4: l.ip4 } : {}),
        ...(l.ip6 ? { ip6: l.ip6 } : {}),
      })),
    },
    peer: { netns: state.netns.peer, ip4: '10.77.0.2', ip6: 'fd77::2' },
    pods: state.pods.map(publicPod),
    bus: { address: `unix:path=/proc/${keeperPid}/root${BUS_SOCKET}`, pid: state.procs.dbus?.pid ?? 0 },
    networkd: { pid: state.procs.networkd?.pid ?? 0 },
    cilium: {
      socket: ciliumSocket(state),
      labSocket: CILIUM_LAB_SOCKET,
      healthSocket: ciliumHealthSocket(state),
      labHealthSocket: CILIUM_LAB_HEALTH_SOCKET,
      ...(state.procs.cilium ? { pid: state.procs.cilium.pid } : {}),
      self: 'node',
      nodes: clusterNodes(state),
      mode: state.ciliumMode ?? { mode: 'ok' },
    },
    mountNsPid: keeperPid,
    cniState: state.cniState,
    foreignRule: state.foreignRule ?? foreignRule(),
    kernel: state.kernel,
    stateFile: state.stateFile,
    marked: { addr: MARKED.addr, port: MARKED.port, mark: MARKED.mark },
    logs: state.dir,
  };
}

// ─── down ───────────────────────────────────────────────────────────────────────────────────

function nsInode(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

/** SIGKILLs every process whose network namespace is one of these (or whose mount namespace is the lab's). */
async function killInNetns(netnsList: string[], mntIno: number | undefined): Promise<void> {
  const netInos = new Set(netnsList.map((n) => nsInode(`/run/netns/${n}`)).filter((i): i is number => i !== undefined));
  const victims: ProcRef[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const net = nsInode(`/proc/${pid}/ns/net`);
    const mnt = nsInode(`/proc/${pid}/ns/mnt`);
    if ((net !== undefined && netInos.has(net)) || (mntIno !== undefined && mnt === mntIno)) {
      const ref = procRef(pid);
      if (ref) victims.push(ref);
    }
  }
  await Promise.all(victims.map((v) => stopProcess(v, 'SIGKILL')));
}

async function netnsWithPrefix(prefix: string): Promise<string[]> {
  const r = await run(['ip', '-j', 'netns', 'list']);
  const list = r.code === 0 && r.stdout.trim() ? (JSON.parse(r.stdout) as { name: string }[]) : [];
  return list.map((n) => n.name).filter((n) => n.startsWith(prefix));
}

/**
 * Removes a lab: its processes (by PID, then anything left in its namespaces), its network
 * namespaces (nftables tables go with them), its state and logs. The mount namespace dies with
 * its last process. Idempotent; works from the state file alone, or from the name after a crash.
 * Without an argument, removes every lab this tool created.
 */
export async function downLab(nameOrStateFile?: string): Promise<void> {
  if (nameOrStateFile === undefined) {
    for (const name of listLabs()) await downLab(name);
    const stray = new Set((await netnsWithPrefix(LAB_PREFIX)).map((n) => n.split('-').slice(0, 2).join('-')));
    for (const name of stray) await downLab(name);
    return;
  }
  const stateFile = resolveStateFile(nameOrStateFile);
  const state = readState(stateFile);
  const name = state?.name ?? nameOrStateFile.replace(/^.*\//, '').replace(/\.json$/, '');
  const p = state?.procs;
  const refs = [...(p?.hogs ?? []), ...(p?.spawned ?? []), ...(p?.responders ?? []), p?.cilium, p?.networkd, p?.dbus];
  await Promise.all(refs.map((r) => stopProcess(r, 'SIGTERM', 1_000)));
  const netnsList = state ? [state.netns.node, state.netns.peer, ...state.pods.map((x) => x.netns)] : [];
  for (const n of await netnsWithPrefix(`${name}-`)) if (!netnsList.includes(n)) netnsList.push(n);
  // The lab's mount namespace is known by inode only while its keeper holds it: once it is gone
  // the kernel reuses the number (every `ip netns exec` makes a new mount namespace), and matching
  // on it would kill other people's processes.
  const mntIno = isAlive(p?.keeper) ? state?.mntIno : undefined;
  await killInNetns(netnsList, mntIno);
  await stopProcess(p?.keeper, 'SIGKILL');
  await killInNetns(netnsList, undefined);
  for (const n of netnsList) await run(['ip', 'netns', 'del', n]);
  const keep = state?.keepDir ?? `/tmp/${name}-keep`;
  if (existsSync(keep)) await run(['rmdir', keep]);
  rmSync(labDirFor(name), { recursive: true, force: true });
  rmSync(stateFile, { force: true });
}
