import { describe, expect, it } from 'vitest';
import type { ConfigMap } from 'kubernetes-types/core/v1.js';
import type { KubeResult } from '../../../src/kube/errors.js';
import { RESOURCES } from '../../../src/kube/resources.js';
import { startWatchLoop, type WatchLoopEvent } from '../../../src/kube/watch-loop.js';
import type { WatchEvent, WatchEnd } from '../../../src/kube/client.js';

type Step = { list: KubeResult<{ items: ConfigMap[]; resourceVersion: string; pages: number }> } | { watch: { events: WatchEvent<ConfigMap>[]; end: KubeResult<WatchEnd> } };

function scripted(steps: Step[]) {
  const requests: string[] = [];
  const client = {
    listAll: async () => {
      const step = steps.shift();
      if (!step || !('list' in step)) return new Promise<never>(() => undefined);
      requests.push('list');
      return step.list;
    },
    watch: async (_r: unknown, selector: { resourceVersion?: string }, onEvent: (e: WatchEvent<ConfigMap>) => Promise<void> | void, signal?: AbortSignal) => {
      const step = steps.shift();
      requests.push(`watch@${selector.resourceVersion}`);
      if (!step || !('watch' in step)) {
        return new Promise<KubeResult<WatchEnd>>((resolve) => signal?.addEventListener('abort', () => resolve({ ok: false, code: 'aborted', reason: 'stop', hint: '' })));
      }
      for (const event of step.watch.events) await onEvent(event);
      return step.watch.end;
    },
  };
  return { client, requests };
}

const cm = (name: string, rv: string): ConfigMap => ({ metadata: { name, namespace: 'ns', resourceVersion: rv } });

describe('watchLoop', () => {
  it('lists, watches from the list, resumes from the last event or bookmark, re-lists on 410 after a jittered wait, backs off on failures', async () => {
    const { client, requests } = scripted([
      { list: { ok: true, value: { items: [cm('a', '5')], resourceVersion: '10', pages: 1 } } },
      { watch: { events: [{ type: 'MODIFIED', object: cm('a', '11'), resourceVersion: '11' }, { type: 'BOOKMARK', resourceVersion: '15' }], end: { ok: false, code: 'reset', reason: 'dropped', hint: '' } } },
      { watch: { events: [{ type: 'ADDED', object: cm('b', '16'), resourceVersion: '16' }], end: { ok: true, value: { events: 1, garbage: 0 } } } },
      { watch: { events: [], end: { ok: false, code: 'gone', reason: 'too old', hint: '', status: 410 } } },
      { list: { ok: false, code: 'server-error', reason: '500', hint: '', status: 500 } },
      { list: { ok: true, value: { items: [cm('b', '16')], resourceVersion: '30', pages: 2 } } },
    ]);
    const waits: number[] = [];
    const seen: WatchLoopEvent<ConfigMap>[] = [];
    const loop = startWatchLoop(client as never, RESOURCES.configmaps, {
      namespace: 'ns',
      relistJitterMs: 30_000,
      backoff: { initialMs: 1_000, maxMs: 30_000 },
      random: () => 0.5,
      sleep: async (ms, signal) => {
        signal?.throwIfAborted();
        waits.push(Math.round(ms));
      },
    }, (event) => {
      seen.push(event);
    });
    await waitFor(() => requests.length >= 7);
    await loop.stop();
    expect(requests).toEqual(['list', 'watch@10', 'watch@15', 'watch@16', 'list', 'list', 'watch@30']);
    // reset → backoff 1 s (±20% → 1000 at random 0.5); gone → 15 s of the 30 s jitter; list failure → backoff.
    expect(waits).toEqual([1_000, 15_000, 1_000]);
    expect(seen.map((e) => e.type)).toEqual(['synced', 'modified', 'added', 'synced']);
    expect(seen[3]).toMatchObject({ type: 'synced', relist: true, resourceVersion: '30' });
    expect(loop.status()).toMatchObject({ phase: 'stopped', gone: 1, lists: 2, resourceVersion: '30' });
  });

  it('a consumer that throws does not end the loop', async () => {
    const { client, requests } = scripted([
      { list: { ok: true, value: { items: [], resourceVersion: '1', pages: 1 } } },
      { watch: { events: [{ type: 'ADDED', object: cm('a', '2'), resourceVersion: '2' }], end: { ok: false, code: 'reset', reason: 'x', hint: '' } } },
    ]);
    const loop = startWatchLoop(client as never, RESOURCES.configmaps, { sleep: async () => undefined }, () => {
      throw new Error('consumer bug');
    });
    await waitFor(() => requests.length >= 3);
    await loop.stop();
    expect(requests).toEqual(['list', 'watch@1', 'watch@2']);
  });
});

async function waitFor(cond: () => boolean, ms = 5_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 1));
  }
}
