// Issue 18: the systemd1 path against a real PID 1 (Debian's systemd 252 under systemd-nspawn),
// not the stand-in: `systemctl restart systemd-networkd` → exactly one NetworkdRestarted
// (systemd1's Unit and Service copies and network1's new owner merged), three → three; the
// container's dbus restarted → the watchers reconnect and hear the next restart; an upgrade run
// (apt-daily-upgrade.service) → UpgradeStarted/UpgradeFinished, heard by the agent running as
// its unit inside, named in its page and its verdict's evidence. One boot for the whole file.
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BREAK_ON_UPGRADE_FLAG, startSystemdLab, systemdLabUnavailable, type SystemdLab } from '../../scripts/lab/systemd/index.js';
import { agentConfig, agentLogs, agentMetric, agentStatus, eventually, startReceiver, writeAgentConfig } from '../../scripts/lab/systemd/testing.js';
import { signalsConfig } from '../../src/signals/config.js';
import { createSignals, type SignalHub } from '../../src/signals/index.js';
import type { SignalEvent } from '../../src/types.js';
import { EventRecorder, testContext, until } from '../unit/signals/context.js';

const unavailable = systemdLabUnavailable();
const MERGE_WINDOW_MS = 3000;

describe.skipIf(unavailable !== undefined)(`the systemd1 signals from a real PID 1${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  let lab: SystemdLab;
  let hub: SignalHub | undefined;
  let rec: EventRecorder;

  beforeAll(async () => {
    // The same build npm test made (one bundle, files moved in one by one), never tsc's multi-module layout over it.
    spawnSync('npm', ['run', '-s', 'build'], { stdio: 'ignore' });
    lab = await startSystemdLab({ connwatch: true, log: (line) => console.log(line) });
    console.log(`systemd lab ${lab.description.name}: ${JSON.stringify(lab.description.timings)}`);
    // Watchers on the host, on the container's bus (as the agent's signals box would be on the host's).
    const ctx = testContext();
    rec = new EventRecorder();
    hub = createSignals(ctx, signalsConfig.parse({ dbus: { busAddress: lab.description.busAddress, reconnect: { initialMs: 50, maxMs: 500 } }, netlink: { enabled: false }, mergeWindowMs: MERGE_WINDOW_MS }), { env: {} });
    await hub.start(rec.emit);
    await until(() => hub!.status().ok && hub!.status().detail.includes('systemd1 subscribed'), () => `signals healthy (${hub!.status().detail})`, 20_000);
  }, 600_000);

  const stops: (() => void)[] = [];
  let pageSeen: unknown;
  afterAll(async () => {
    for (const stop of stops) stop();
    await hub?.stop();
    await lab?.down();
  }, 60_000);

  const restarts = (from = 0): Extract<SignalEvent, { kind: 'NetworkdRestarted' }>[] => rec.events.slice(from).filter((e): e is Extract<SignalEvent, { kind: 'NetworkdRestarted' }> => e.kind === 'NetworkdRestarted');
  const settle = () => new Promise((r) => setTimeout(r, MERGE_WINDOW_MS + 500));

  it('systemctl restart systemd-networkd → exactly one NetworkdRestarted, heard by systemd1 and network1', async () => {
    const from = rec.events.length;
    const before = (await lab.exec(['systemctl', 'show', '-P', 'InvocationID', 'systemd-networkd.service'])).stdout.trim();
    const started = Date.now();
    await lab.systemctl('restart', 'systemd-networkd.service');
    await rec.waitFor((e) => e.kind === 'NetworkdRestarted', 'NetworkdRestarted', 10_000, from);
    console.log(`systemctl restart systemd-networkd → NetworkdRestarted: ${Date.now() - started} ms (including systemctl's own start inside the container)`);
    await settle();
    const after = (await lab.exec(['systemctl', 'show', '-P', 'InvocationID', 'systemd-networkd.service'])).stdout.trim();
    expect(after).not.toBe(before);
    expect(restarts(from)).toHaveLength(1);
    const merged = hub!.snapshot().lastNetworkdRestart!;
    expect([...merged.origins].sort()).toEqual(['network1', 'systemd1']);
    expect(merged.invocationId).toBe(after);
  }, 30_000);

  it('three restarts → three events, each with its own InvocationID', async () => {
    const from = rec.events.length;
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      await lab.systemctl('restart', 'systemd-networkd.service');
      ids.push((await lab.exec(['systemctl', 'show', '-P', 'InvocationID', 'systemd-networkd.service'])).stdout.trim());
      await new Promise((r) => setTimeout(r, 1_000));
    }
    await settle();
    const seen = restarts(from);
    expect(seen).toHaveLength(3);
    expect(new Set(ids).size).toBe(3);
    // Each restart is one event, known by the run's InvocationID (PID 1 252 hands it out while the
    // unit is still "inactive": the watcher reports it once the unit runs).
    await until(() => hub!.snapshot().lastNetworkdRestart?.invocationId === ids[2], 'the last restart known by its id', 5_000);
    expect(seen.filter((e) => e.invocationId !== undefined).every((e) => ids.includes(e.invocationId!))).toBe(true);
  }, 60_000);

  it('an upgrade run → UpgradeStarted, its networkd restart, UpgradeFinished(done); the agent running as its unit hears it and pages during it', async () => {
    const receiver = startReceiver(lab);
    stops.push(receiver.stop);
    writeAgentConfig(lab, agentConfig({ restartCilium: 'off', webhook: receiver.url }));
    await lab.systemctl('start', 'connwatch.service');
    await eventually(async () => (await agentStatus(lab)).signals?.ok === true, 'the agent hearing the bus', 20_000);
    spawnSync('sh', ['-c', `: > '${lab.path(BREAK_ON_UPGRADE_FLAG)}'`]);
    const from = rec.events.length;
    const since = new Date();
    // Blocks until the oneshot is done, as apt-daily-upgrade.timer's start would.
    await lab.systemctl('start', 'apt-daily-upgrade.service');
    const finished = (await rec.waitFor((e) => e.kind === 'UpgradeFinished', 'UpgradeFinished', 10_000, from)) as Extract<SignalEvent, { kind: 'UpgradeFinished' }>;
    const kinds = rec.events.slice(from).map((e) => e.kind);
    expect(kinds.indexOf('UpgradeStarted')).toBeGreaterThanOrEqual(0);
    expect(kinds.indexOf('UpgradeStarted')).toBeLessThan(kinds.indexOf('NetworkdRestarted'));
    expect(kinds.indexOf('NetworkdRestarted')).toBeLessThan(kinds.indexOf('UpgradeFinished'));
    expect(finished).toMatchObject({ unit: 'apt-daily-upgrade.service', result: 'done' });

    // The agent inside heard the same run …
    const logs = await eventually(async () => {
      const l = await agentLogs(lab, since);
      return l.some((x) => x.msg === 'signal: upgrade run finished') ? l : undefined;
    }, 'the agent to log the upgrade run', 10_000);
    expect(logs.some((x) => x.msg === 'signal: upgrade run started' && x.unit === 'apt-daily-upgrade.service')).toBe(true);
    // … and pages the broken pod network while the run is still going: its preceding signal is the
    // networkd restart the run made (the detector names the last signal of note before the verdict).
    const page = await eventually(() => receiver.bodies.find((b) => b.alert?.cause === 'ReadyButNoPodNetwork'), 'the ReadyButNoPodNetwork page at the webhook', 30_000);
    pageSeen = page;
    const started = rec.events.slice(from).find((e) => e.kind === 'UpgradeStarted')!;
    expect(page.alert.createdAt).toBeGreaterThanOrEqual(started.wallAt);
    expect(page.alert.summary).toMatch(/networkd/);
    expect(page.alert.evidence.signal.what).toMatch(/networkd/);
    const status = await agentStatus(lab);
    // The networkd restart the upgrade made is in the incident's timeline.
    expect(JSON.stringify(status.incident ?? {})).toMatch(/networkd/);
  }, 90_000);

  // The detector keeps the open upgrade run as context: the page names it (its evidence and summary).
  it('the page names the upgrade run as its likely cause', () => {
    expect(JSON.stringify(pageSeen)).toContain('apt-daily-upgrade.service');
  });

  it("the container's dbus restarted → the watchers and the agent reconnect and hear the next restart", async () => {
    const agentBefore = await agentMetric(lab, 'connwatch_networkd_restarts_total');
    const from = rec.events.length;
    const busRestartedAt = new Date(Date.now() - 1_000);
    await lab.systemctl('restart', 'dbus.service');
    await rec.waitFor((e) => e.kind === 'BusConnection' && !e.connected, 'the bus lost', 10_000, from);
    await rec.waitFor((e) => e.kind === 'BusConnection' && e.connected, 'the bus back', 20_000, from);
    await until(() => hub!.status().detail.includes('systemd1 subscribed'), () => `subscribed again (${hub!.status().detail})`, 20_000);
    // The agent inside reconnects on its own backoff: a restart before it is back is only "networkd
    // started before connwatch read its start time" to it (activity, not a counted restart).
    await eventually(async () => ((await agentLogs(lab, busRestartedAt)).some((l) => l.msg === 'signals: connected to the system bus') ? true : undefined), 'the agent back on the bus', 30_000);
    await new Promise((r) => setTimeout(r, 1_000));
    const next = rec.events.length;
    await lab.systemctl('restart', 'systemd-networkd.service');
    const heard = (await rec.waitFor((e) => e.kind === 'NetworkdRestarted', 'NetworkdRestarted after the bus restart', 10_000, next)) as Extract<SignalEvent, { kind: 'NetworkdRestarted' }>;
    expect(heard.origins).toContain(heard.invocationId ? 'systemd1' : 'network1');
    await settle();
    expect(restarts(next)).toHaveLength(1);
    // The agent inside (its own reconnecting connection) counts it too.
    await eventually(async () => (await agentMetric(lab, 'connwatch_networkd_restarts_total')) >= agentBefore + 1, 'the agent to count the restart after the bus restart', 20_000).catch(async (err: unknown) => {
      // What the agent and its unit did across the bus restart, so a failure can be read.
      const unit = (await lab.exec(['systemctl', 'show', '-p', 'MainPID,NRestarts,ActiveState,SubState', 'connwatch.service'])).stdout.replace(/\n/g, ' ');
      const logs = (await agentLogs(lab)).slice(-25).map((l) => `  ${String(l.msg).slice(0, 200)}`);
      process.stderr.write(`agent before: ${agentBefore}; unit: ${unit}\nagent log (last 25):\n${logs.join('\n')}\n`);
      throw err;
    });
  }, 90_000);
});
