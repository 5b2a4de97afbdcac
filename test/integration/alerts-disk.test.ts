/**
 * A real full and a real read-only disk under the spool (a tiny tmpfs this test mounts and
 * unmounts): the failure is reported and alerts are still delivered from memory (issue 7).
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SpoolingAlerter } from '../../src/alerts/alerter.js';
import { startReceiver, type Receiver } from '../support/receivers.js';
import { fastConfig, metricValue, sampleAlert, testContext } from '../unit/alerts/helpers.js';

function canMount(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root';
  try {
    execFileSync('mount', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'no mount(8)';
  }
}
const why = canMount();
if (why) console.warn(`skipping real-disk spool tests: ${why}`);

describe.skipIf(why !== undefined)('spool on a full or read-only disk', () => {
  const dispatcher = new Agent();
  let mnt: string;
  let mounted = false;
  let pd: Receiver;

  beforeAll(async () => {
    mnt = await mkdtemp(join(tmpdir(), 'connwatch-disk-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'connwatch-alerts-test', mnt]);
    mounted = true;
    pd = await startReceiver('pagerduty');
  });
  afterAll(async () => {
    await pd?.close();
    await dispatcher.close();
    if (mounted) execFileSync('umount', [mnt]);
    if (mnt) await rmdir(mnt).catch(() => rm(mnt, { recursive: true, force: true }));
  });

  it('reports ENOSPC, delivers from memory, and spools again once space is back', async () => {
    const ctx = testContext();
    const config = fastConfig({ pagerduty: { routingKey: 'rk', url: pd.url, jitterMs: 0, perMinute: 6000, burst: 10 } });
    const alerter = new SpoolingAlerter({ ctx, config, stateDir: mnt, dispatcher, identity: { node: 'node-a', site: 'lab' } });
    try {
      await alerter.start();
      // Fill the filesystem to the last block.
      await writeFile(join(mnt, 'filler'), Buffer.alloc(64 * 1024)).catch(() => undefined);
      alerter.raise(sampleAlert('node-a'));
      expect(await alerter.settled()).toBe(true);
      expect(pd.accepted()).toHaveLength(1);
      expect(await metricValue(ctx, 'connwatch_alert_spool_writable')).toBe(0);
      expect(ctx.lines.some((l) => l.msg === 'alert spool not writable' && /ENOSPC.*disk is full/.test(String(l.reason)))).toBe(true);

      await rm(join(mnt, 'filler'));
      alerter.raise(sampleAlert('node-b', { id: 'lab/node-b/ReadyButNoPodNetwork' }));
      expect(await alerter.settled()).toBe(true);
      expect(await metricValue(ctx, 'connwatch_alert_spool_writable')).toBe(1);
      expect((await readdir(join(mnt, 'alert-spool'))).filter((f) => f.endsWith('.json')).length).toBeGreaterThanOrEqual(1);
    } finally {
      await alerter.stop();
    }
  });

  it('reports a read-only state directory and still delivers', async () => {
    execFileSync('mount', ['-o', 'remount,ro', mnt]);
    const ctx = testContext();
    const config = fastConfig({ pagerduty: { routingKey: 'rk', url: pd.url, jitterMs: 0, perMinute: 6000, burst: 10 } });
    const alerter = new SpoolingAlerter({ ctx, config, stateDir: join(mnt, 'fresh'), dispatcher, identity: { node: 'node-c', site: 'lab' } });
    try {
      await alerter.start();
      const before = pd.accepted().length;
      alerter.raise(sampleAlert('node-c', { id: 'lab/node-c/ReadyButNoPodNetwork' }));
      expect(await alerter.settled()).toBe(true);
      expect(pd.accepted()).toHaveLength(before + 1);
      expect(ctx.lines.filter((l) => l.msg === 'alert spool not writable').map((l) => l.reason)).toContainEqual(expect.stringMatching(/EROFS.*read-write/));
      expect(ctx.statuses.get('alerts')).toMatchObject({ spool: { ok: false } });
    } finally {
      await alerter.stop();
      execFileSync('mount', ['-o', 'remount,rw', mnt]);
    }
  });
});
