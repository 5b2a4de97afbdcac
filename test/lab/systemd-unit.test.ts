// Issue 18: connwatch's own hardened unit under a real PID-1 systemd (Debian's 252 under
// systemd-nspawn): installed by scripts/install.sh, started with Type=notify as its own user,
// the bare-metal Cilium restart over D-Bus (RestartUnit job matched by its path, the new
// InvocationID, the detector's verification, the stagger and the per-host rate limit), and the
// watchdog killing and restarting a hung (SIGSTOPped) agent. One boot for the whole file.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSystemdLab, systemdLabUnavailable, BROKEN_FLAG, type SystemdLab } from '../../scripts/lab/systemd/index.js';
import { actionJournal, agentConfig, agentLogs, agentStatus, eventually, unitProperty, writeAgentConfig } from '../../scripts/lab/systemd/testing.js';
import { staggerDelayMs } from '../../src/remediation/local-restart.js';

const unavailable = systemdLabUnavailable();
const STAGGER_SECONDS = 3;
const MIN_INTERVAL_SECONDS = 20;

describe.skipIf(unavailable !== undefined)(`connwatch.service under PID-1 systemd${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  let lab: SystemdLab;

  beforeAll(async () => {
    // The container gets connwatch as install.sh installs it from this checkout's build.
    // The same build npm test made (one bundle, files moved in one by one), never tsc's multi-module layout over it.
    spawnSync('npm', ['run', '-s', 'build'], { stdio: 'ignore' });
    lab = await startSystemdLab({ connwatch: true, log: (line) => console.log(line) });
    console.log(`systemd lab ${lab.description.name}: ${JSON.stringify(lab.description.timings)}`);
    writeAgentConfig(lab, agentConfig({ restartCilium: 'on', staggerSeconds: STAGGER_SECONDS, minIntervalSeconds: MIN_INTERVAL_SECONDS }));
  }, 600_000);

  afterAll(async () => {
    await lab?.down();
  }, 60_000);

  it('passes systemd-analyze verify there, with a low exposure score', async () => {
    const verify = await lab.exec(['systemd-analyze', 'verify', '/etc/systemd/system/connwatch.service', '/etc/systemd/system/connwatch-liveness.service', '/etc/systemd/system/connwatch-liveness.timer']);
    expect(verify.stderr.trim()).toBe('');
    expect(verify.code).toBe(0);
    const security = await lab.exec(['systemd-analyze', 'security', '--no-pager', 'connwatch.service']);
    const score = Number(/Overall exposure level for connwatch\.service: ([\d.]+)/.exec(security.stdout)?.[1]);
    console.log(`systemd-analyze security connwatch.service: ${score}`);
    expect(score).toBeLessThanOrEqual(2.5);
  });

  it('is started by PID 1 with Type=notify: active only once READY=1 came, as the connwatch user with CAP_NET_ADMIN only', async () => {
    const started = Date.now();
    await lab.systemctl('start', 'connwatch.service');
    console.log(`systemctl start connwatch (until READY=1): ${Date.now() - started} ms`);
    expect(await unitProperty(lab, 'connwatch.service', 'Type')).toBe('notify');
    expect(await unitProperty(lab, 'connwatch.service', 'NotifyAccess')).toBe('all');
    expect(await unitProperty(lab, 'connwatch.service', 'ActiveState')).toBe('active');
    expect(await unitProperty(lab, 'connwatch.service', 'StatusText')).toBe('connwatch running');
    expect(await unitProperty(lab, 'connwatch.service', 'WatchdogUSec')).toBe('30s');
    // The agent logged "connwatch running" (every box started) before PID 1 called it started.
    const logs = await agentLogs(lab);
    expect(logs.some((l) => l.msg === 'connwatch running')).toBe(true);
    const pid = (await lab.mainPid('connwatch.service'))!;
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    expect(/^CapEff:\s*(\S+)$/m.exec(status)?.[1]).toBe('0000000000001000');
    expect(/^NoNewPrivs:\s*(\d)$/m.exec(status)?.[1]).toBe('1');
    const uid = /^Uid:\s*(\d+)/m.exec(status)?.[1];
    expect((await lab.exec(['getent', 'passwd', uid!])).stdout).toMatch(/^connwatch:/);
    const s = await eventually(async () => {
      const st = await agentStatus(lab);
      return st.capabilities?.netAdmin?.ok === true && st.signals?.ok === true ? st : undefined;
    }, 'the agent to report its capabilities and signals');
    expect(s.mode).toBe('baremetal');
  }, 60_000);

  it('restarts Cilium over D-Bus when the pod network breaks: staggered, job matched by path, new InvocationID, verified by the detector', async () => {
    const before = await unitProperty(lab, 'cilium.service', 'InvocationID');
    const since = new Date();
    writeFileSyncInside(lab, BROKEN_FLAG);
    const restarted = await eventually(() => actionJournal(lab).find((e) => e.action === 'restartCilium' && e.phase === 'outcome'), 'the restartCilium outcome in the action journal', 30_000);
    expect(restarted.outcome.ok).toBe(true);
    const detail = restarted.outcome.detail;
    const after = await unitProperty(lab, 'cilium.service', 'InvocationID');
    expect(detail).toMatchObject({ unit: 'cilium.service', result: 'done', invocationBefore: before, invocationAfter: after });
    expect(after).not.toBe(before);
    expect(detail.job).toMatch(/^\/org\/freedesktop\/systemd1\/job\/\d+$/);
    // The job the agent matched is the one PID 1 ran for cilium.service.
    const journal = (await lab.exec(['journalctl', '-u', 'cilium.service', '-o', 'cat', '--no-pager', '--since', `@${Math.floor(since.getTime() / 1000)}`])).stdout;
    expect(journal).toMatch(/Stopping cilium\.service/);
    const verified = await eventually(async () => (await agentLogs(lab, since)).find((l) => typeof l.msg === 'string' && l.msg.startsWith('local restart: cilium.service restart fixed the node')), 'the detector to verify the restart', 30_000);
    expect(verified.verification.ok).toBe(true);
    expect((await agentStatus(lab)).localRestart).toMatchObject({ lastVerification: { ok: true }, lastAttemptAt: expect.any(String), last: { decision: "executed", ok: true } });
    // Staggered: the restart waited this host's share of the window after the request.
    const logs = await agentLogs(lab, since);
    const scheduled = logs.find((l) => l.msg === 'local restart: cilium.service restart scheduled')!;
    expect(scheduled.staggerMs).toBe(staggerDelayMs('cwsd-node', STAGGER_SECONDS));
    const asked = logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('asking the controller for restartCilium'))!;
    const intent = actionJournal(lab).find((e) => e.action === 'restartCilium' && e.phase === 'intent' && e.decision === 'executed')!;
    expect(intent.wallAt - Date.parse(asked.time)).toBeGreaterThanOrEqual(scheduled.staggerMs - 20);
    console.log(`bare-metal Cilium restart: request → RestartUnit ${intent.wallAt - Date.parse(asked.time)} ms (stagger ${scheduled.staggerMs} ms), RestartUnit → job done + new InvocationID ${detail.ms} ms, pod network break → verified ${Date.parse(verified.time) - since.getTime()} ms`);
  }, 90_000);

  it('rate-limits restarts per host: a second break inside the window waits for it, journalled as held', async () => {
    const executed = () => actionJournal(lab).filter((e) => e.action === 'restartCilium' && e.phase === 'intent' && e.decision === 'executed');
    const first = executed()[0]!;
    writeFileSyncInside(lab, BROKEN_FLAG);
    const held = await eventually(() => actionJournal(lab).find((e) => e.action === 'restartCilium' && e.decision === 'held'), 'the held restart', 30_000);
    expect(held.summary).toMatch(/rate limited: the last restart on this host was \d+ s ago \(localRestart.minIntervalSeconds 20\)/);
    const outcome = await eventually(() => actionJournal(lab).filter((e) => e.action === 'restartCilium' && e.phase === 'outcome')[1], 'the second restart', 60_000);
    expect(outcome.outcome.ok).toBe(true);
    // The limit counts from the start of the first attempt to the start of the next.
    expect(executed()[1]!.wallAt - first.wallAt).toBeGreaterThanOrEqual(MIN_INTERVAL_SECONDS * 1000);
    await eventually(async () => (await agentStatus(lab)).verdict?.kind === 'Healthy' || (await agentStatus(lab)).incident?.verdict?.kind === 'Healthy' || (await agentStatus(lab)).localRestart?.lastVerification?.ok === true, 'healthy again', 30_000);
  }, 120_000);

  it('its watchdog kills and restarts a hung agent (SIGSTOP)', async () => {
    // A shorter watchdog for the test (a runtime drop-in); the installed one says 30 s.
    await lab.exec(['sh', '-c', 'mkdir -p /run/systemd/system/connwatch.service.d && printf "[Service]\\nWatchdogSec=4s\\n" > /run/systemd/system/connwatch.service.d/test-watchdog.conf']);
    await lab.systemctl('daemon-reload');
    await lab.systemctl('restart', 'connwatch.service');
    const pid = (await lab.mainPid('connwatch.service'))!;
    const innerBefore = await unitProperty(lab, 'connwatch.service', 'MainPID');
    const restartsBefore = Number(await unitProperty(lab, 'connwatch.service', 'NRestarts'));
    // Fed while it turns: alive well past the watchdog period.
    await new Promise((r) => setTimeout(r, 6_000));
    expect(await unitProperty(lab, 'connwatch.service', 'MainPID')).toBe(innerBefore);
    const stoppedAt = Date.now();
    process.kill(pid, 'SIGSTOP');
    await eventually(async () => Number(await unitProperty(lab, 'connwatch.service', 'NRestarts')) === restartsBefore + 1 && (await unitProperty(lab, 'connwatch.service', 'ActiveState')) === 'active', 'PID 1 to restart the hung agent', 30_000);
    console.log(`watchdog: SIGSTOP → restarted and active again in ${Date.now() - stoppedAt} ms (WatchdogSec=4s, RestartSec=2s)`);
    expect(await unitProperty(lab, 'connwatch.service', 'MainPID')).not.toBe(innerBefore);
    const journal = (await lab.exec(['journalctl', '-u', 'connwatch.service', '-o', 'cat', '--no-pager'])).stdout;
    expect(journal).toMatch(/Watchdog timeout/);
    expect(journal).toMatch(/Failed with result 'watchdog'/);
  }, 60_000);
});

/** Creates a file inside the container (as root there). */
function writeFileSyncInside(lab: SystemdLab, path: string): void {
  spawnSync('sh', ['-c', `mkdir -p "$(dirname '${lab.path(path)}')" && : > '${lab.path(path)}'`]);
}
