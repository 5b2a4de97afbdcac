/**
 * The demo (README's first command): the reference incident reproduced in the lab with the real
 * systemd-networkd, and connwatch handling it. Acts 1 and 2 — pre-1.14 Cilium (rules flushed,
 * `lookup local` included) and Cilium ≥ 1.14 (gateway routes dropped silently by the kernel) — each
 * printed as a timeline measured from the moment networkd is restarted. Acts 3 and 4 (kube-acts.ts)
 * climb the ladder in Kubernetes: a Cilium restart by the fleet controller, then quarantine and
 * drain. Leaves nothing behind, also on failure or Ctrl-C (cleanup.ts). DEMO_ACTS=1,3 runs some acts.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startLab } from '../lab/index.js';
import type { LabProfile } from '../lab/types.js';
import { cleanupOnSignals, interrupted, onCleanup } from './cleanup.js';
import { followJsonLines, probeOutages, type JsonLine } from './follow.js';
import { runKubeActs } from './kube-acts.js';

const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'dist/cli.js');
const PD_PORT = 8090;
const AM_PORT = 9093;

interface Act {
  profile: LabProfile;
  title: string;
  story: string;
}

const ACTS: Act[] = [
  {
    profile: 'cilium-pre-1.14',
    title: 'Act 1 — Cilium < 1.14: networkd flushes the CNI\'s ip rules, `lookup local` included',
    story: 'The unattended upgrade restarts systemd-networkd; it deletes every foreign rule. Without pref 100 `lookup local` the node cannot reach even 127.0.0.1.',
  },
  {
    profile: 'cilium-1.14',
    title: 'Act 2 — Cilium ≥ 1.14: rules survive, but the kernel silently drops gateway routes',
    story: 'networkd re-adds its IPv4 address; the kernel drops every route through it. `ip monitor` prints no "Deleted" line for them.',
  },
];

const fmt = (ms: number): string => (Math.abs(ms) < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`);

async function runAct(act: Act): Promise<boolean> {
  console.log(`\n${act.title}\n${act.story}\n`);
  const dir = mkdtempSync(join(tmpdir(), 'cw-demo-'));
  const children: ChildProcess[] = [];
  // The undo is registered before the lab exists: a Ctrl-C while it is being built waits for it and takes it down.
  const starting = startLab({ profile: act.profile });
  const release = onCleanup(act.title, async () => {
    for (const child of children.reverse()) child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    await (await starting.catch(() => undefined))?.down();
    rmSync(dir, { recursive: true, force: true });
  });
  const lab = await starting.catch(async (err: unknown) => {
    await release();
    throw err;
  });
  try {
    const d = lab.description;
    const peer = d.peer.ip4;
    const amYml = join(dir, 'alertmanager.yml');
    writeFileSync(
      amYml,
      ['route:', '  receiver: demo', '  group_by: [cluster, cause]', '  group_wait: 500ms', '  group_interval: 1s', 'receivers:', '  - name: demo', '    webhook_configs:', `      - url: http://${peer}:${PD_PORT}/alertmanager`, '        send_resolved: true', ''].join('\n'),
    );
    const am = lab.spawn('peer', ['/usr/bin/prometheus-alertmanager', `--config.file=${amYml}`, `--storage.path=${join(dir, 'am')}`, `--web.listen-address=${peer}:${AM_PORT}`, '--cluster.listen-address=', '--log.level=warn'], { stdio: 'ignore' });
    const pd = lab.spawn('peer', [process.execPath, '--import', 'tsx', join(ROOT, 'scripts/demo/pagerduty-receiver.ts'), peer, String(PD_PORT)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(am, pd);
    const pages = followJsonLines(pd.stdout!);

    const config = join(dir, 'connwatch.yaml');
    writeFileSync(
      config,
      [
        'mode: baremetal',
        'node: lab-node',
        'site: demo',
        `stateDir: ${join(dir, 'state')}`,
        'cilium:',
        `  socketPath: ${d.cilium.labSocket}`,
        'datapath:',
        '  learn: { quietMs: 0 }',
        'restore:',
        '  verifyStableMs: 2000',
        'alerts:',
        '  alertmanager:',
        `    urls: ["http://${peer}:${AM_PORT}"]`,
        '    jitterMs: 0',
        '  pagerduty:',
        '    routingKey: demo-routing-key',
        `    url: http://${peer}:${PD_PORT}/v2/enqueue`,
        '    jitterMs: 0',
        '  retry: { minDelayMs: 100, maxDelayMs: 500, cooldownMs: 500 }',
        '  network: { proxy: direct }',
        '',
      ].join('\n'),
    );
    const agent = lab.spawn('node', [process.execPath, CLI, 'run', '--config', config], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(agent);
    const logs = followJsonLines(agent.stdout!);
    await logs.waitFor((l) => l.msg === 'baseline changed', 15_000, 'connwatch to learn the CNI baseline');
    await logs.waitFor((l) => l.msg === 'signals listening', 15_000, 'connwatch to listen on the bus and netlink');
    const learned = logs.lines.find((l) => l.msg === 'baseline changed') as JsonLine & { added: string[] };
    console.log(`  connwatch learned the CNI baseline: ${learned.added.length} rules and routes (Cilium healthy, networkd quiet).`);

    const localPod = d.pods.find((p) => p.node === 'node')!;
    const remotePod = d.pods.find((p) => p.node === 'peer')!;
    const names: Record<string, string> = {
      [`${localPod.ip4}:4240`]: `pod ${localPod.name} on this node`,
      [`${remotePod.ip4}:4240`]: `pod ${remotePod.name} on the peer node`,
      [`${d.marked.addr}:${d.marked.port}`]: 'marked traffic (fwmark 0x200 → table 2004)',
      '127.0.0.1:9820': 'loopback 127.0.0.1',
      [`${peer}:4240`]: 'peer node',
    };
    const targets = Object.keys(names);
    const prober = lab.spawn('node', [process.execPath, '--import', 'tsx', join(ROOT, 'scripts/tools/probe-stream.ts'), '10', '150', ...targets], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(prober);
    const probes = followJsonLines(prober.stdout!);
    await probes.waitFor(() => targets.every((t) => probes.lines.some((p) => p.target === t && p.ok)), 10_000, 'traffic to flow before the incident');

    const t0 = Date.now();
    const { before, after } = await lab.restartNetworkd();
    const removed = [...before.rules, ...before.routes].length - [...after.rules, ...after.routes].length;
    console.log(`  +0 ms        systemd-networkd restarted (SIGTERM + start, as systemctl restart does); ${removed} CNI items gone when it was up again`);

    const verified = await logs.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('restore: verified'), 20_000, 'the restore to be verified').catch((err: Error) => {
      console.log(`  !! ${err.message}`);
      return undefined;
    });
    await pages.waitFor((p) => p.action === 'resolve', 15_000, 'the page to resolve').catch(() => undefined);
    // Alertmanager notifies after group_wait; an alert resolved before that is never notified at all.
    await new Promise((r) => setTimeout(r, 1_500));
    if (pages.lines.some((p) => p.source === 'alertmanager')) await pages.waitFor((p) => p.source === 'alertmanager' && p.status === 'resolved', 10_000, 'Alertmanager to notify the resolve').catch(() => undefined);
    prober.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));

    const since = (l: JsonLine) => Date.parse(String(l.time)) - t0;
    const events: { at: number; what: string }[] = [];
    const first = (pred: (l: JsonLine) => boolean) => logs.lines.find((l) => pred(l) && Date.parse(String(l.time)) >= t0);
    const heard = first((l) => l.msg === 'signal: systemd-networkd restarted');
    if (heard) events.push({ at: since(heard), what: `connwatch heard the restart (${(heard.origins as string[]).join(' + ')})` });
    const damage = first((l) => typeof l.msg === 'string' && l.msg.startsWith('datapath damage'));
    if (damage) {
      const missing = damage.missing as { item: string; severity: string }[];
      events.push({ at: since(damage), what: `${damage.msg}${damage.coincidedWithNetworkd ? ', coinciding with networkd activity' : ''}` });
      for (const m of missing.slice(0, 6)) events.push({ at: since(damage), what: `    missing [${m.severity}] ${m.item}` });
      if (missing.length > 6) events.push({ at: since(damage), what: `    … and ${missing.length - 6} more` });
    }
    for (const l of logs.lines) {
      if (Date.parse(String(l.time)) < t0 || typeof l.msg !== 'string') continue;
      if (l.msg === 'restore attempt finished') {
        const items = l.items as string[];
        events.push({ at: since(l), what: `connwatch re-installed ${items.length} item(s) through the action gate (journalled)${items.length <= 3 ? `: ${items.join('; ')}` : ''}` });
      }
      else if (l.msg.startsWith('restore: restore incomplete')) events.push({ at: since(l), what: `restore attempt incomplete, will retry: ${l.msg.slice('restore: restore incomplete: '.length, 200)}` });
      else if (l.msg.startsWith('restore: held until')) events.push({ at: since(l), what: l.msg.slice('restore: '.length, 220) });
    }
    const whole = first((l) => l.msg === 'datapath: every baseline item present');
    if (whole) events.push({ at: since(whole), what: 'every CNI item back (re-read)' });
    if (verified) events.push({ at: since(verified), what: String(verified.msg).slice('restore: '.length) });
    for (const page of pages.lines) {
      if (page.source === 'pagerduty') {
        const triggered = pages.lines.some((p) => p.source === 'pagerduty' && p.action === 'trigger' && p.dedupKey === page.dedupKey);
        const note = page.action === 'trigger' ? ` — "${String(page.summary)}"` : triggered ? '' : ' (its trigger never left: repaired before the page could go out, and a trigger older than its resolve is never sent)';
        events.push({ at: Number(page.t) - t0, what: `PagerDuty stand-in: ${page.action} ${page.dedupKey}${note}` });
      }
      else events.push({ at: Number(page.t) - t0, what: `Alertmanager notified (${String(page.status)}): ${(page.alerts as string[]).join(', ')}` });
    }
    const outages = probeOutages(probes.lines as { t: number; target: string; ok: boolean }[], t0);
    for (const [target, outage] of Object.entries(outages)) {
      if (outage) events.push({ at: outage.end - t0, what: `traffic back: ${names[target] ?? target} (down for ${fmt(outage.end - outage.start)})` });
    }
    if (process.env.DEMO_VERBOSE) for (const l of logs.lines) if (Date.parse(String(l.time)) >= t0) events.push({ at: since(l), what: `[log] ${String(l.msg)} ${JSON.stringify({ ...l, msg: undefined, time: undefined, level: undefined, pid: undefined, hostname: undefined })}`.slice(0, 400) });
    events.sort((a, b) => a.at - b.at);
    for (const e of events) console.log(`  +${fmt(e.at).padEnd(11)} ${e.what}`);
    for (const [target, outage] of Object.entries(outages)) if (!outage) console.log(`               ${names[target] ?? target}: never interrupted`);

    const foreign = await lab.exec('node', ['ip', 'rule', 'show', 'priority', String(d.foreignRule.priority)]);
    console.log(`  operator's rule pref ${d.foreignRule.priority} lookup ${d.foreignRule.table} (not the CNI's): ${foreign.stdout.trim() ? 'present' : 'still gone — connwatch only restores the CNI baseline'}`);
    return Boolean(verified);
  } finally {
    await release();
  }
}

cleanupOnSignals();
const demoStart = Date.now();
const perAct: string[] = [];
let ok = true;
// DEMO_ACTS=1,3 runs some acts only (when working on them); default 1,2,3,4.
const only = process.env.DEMO_ACTS?.split(',').map((a) => a.trim());
const wanted = (n: number) => !only || only.includes(String(n));
for (const [i, act] of ACTS.entries()) {
  if (!wanted(i + 1) || interrupted()) continue;
  const t = Date.now();
  ok = (await runAct(act)) && ok;
  perAct.push(`act ${i + 1} ${fmt(Date.now() - t)}`);
}
if ((wanted(3) || wanted(4)) && !interrupted()) {
  const t = Date.now();
  const kube = await runKubeActs({ act3: wanted(3), act4: wanted(4) });
  ok = kube.ok && ok;
  perAct.push(`acts 3+4 ${fmt(Date.now() - t)} (stage ${fmt(kube.times.stage)}${kube.times.act3 !== undefined ? `, act 3 ${fmt(kube.times.act3)}` : ''}${kube.times.act4 !== undefined ? `, act 4 ${fmt(kube.times.act4)}` : ''}, tear-down ${fmt(kube.times.teardown)})`);
}
// Interrupted: the signal handler is cleaning up and exits when done.
if (interrupted()) await new Promise(() => undefined);
console.log(
  ok
    ? '\nEvery act handled: restored in milliseconds where a restore can fix it, a Cilium restart where it cannot, quarantine and drain where nothing on the node can — and nothing left behind.'
    : '\nThe demo did not see every act through: see the output above. Nothing is left behind.',
);
console.log(`Time: ${fmt(Date.now() - demoStart)} in all — ${perAct.join('; ')}.`);
process.exitCode = ok ? 0 : 1;
