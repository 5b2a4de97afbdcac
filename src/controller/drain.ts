/**
 * Draining a quarantined node through the Eviction API: every pod on it except DaemonSet pods,
 * mirror pods, finished pods and connwatch's own. A PodDisruptionBudget's refusal (429) waits
 * and asks again; the kill switch and an un-quarantine stop it between evictions.
 */
import type { Pod } from 'kubernetes-types/core/v1.js';
import type { Logger } from 'pino';
import type { Sleep } from '../common/sleep.js';
import type { KubeClient } from '../kube/client.js';
import { RESOURCES } from '../kube/resources.js';

export interface DrainOptions {
  client: Pick<KubeClient, 'listAll' | 'evict'>;
  node: string;
  /** Pods here are connwatch's own (they tolerate the taint and stay). */
  ownNamespace: string;
  retryMs: number;
  sleep: Sleep;
  signal: AbortSignal;
  /** Checked before every eviction: a reason to stop (kill switch), or undefined. */
  stopWhy: () => string | undefined;
  log: Logger;
}

/** How a drain ended. */
export type DrainResult = { done: true; evicted: number; refusals: number } | { done: false; why: string; evicted: number; refusals: number };

export function evictable(pod: Pod, ownNamespace: string): boolean {
  if (pod.metadata?.deletionTimestamp) return false;
  if (pod.metadata?.namespace === ownNamespace) return false;
  if (pod.metadata?.annotations?.['kubernetes.io/config.mirror'] !== undefined) return false;
  if (pod.metadata?.ownerReferences?.some((o) => o.kind === 'DaemonSet')) return false;
  const phase = pod.status?.phase;
  return phase !== 'Succeeded' && phase !== 'Failed';
}

export async function drainNode(o: DrainOptions): Promise<DrainResult> {
  let evicted = 0;
  let refusals = 0;
  for (;;) {
    if (o.signal.aborted) return { done: false, why: 'stopped', evicted, refusals };
    const listed = await o.client.listAll(RESOURCES.pods, { fieldSelector: `spec.nodeName=${o.node}` }, { signal: o.signal });
    if (!listed.ok) {
      o.log.warn({ node: o.node, err: listed.reason }, 'drain: cannot list the node\'s pods; retrying');
    } else {
      const pods = listed.value.items.filter((p) => evictable(p, o.ownNamespace));
      if (pods.length === 0) return { done: true, evicted, refusals };
      let refused = 0;
      let failed = 0;
      for (const pod of pods) {
        const why = o.stopWhy();
        if (why) return { done: false, why, evicted, refusals };
        if (o.signal.aborted) return { done: false, why: 'stopped', evicted, refusals };
        const result = await o.client.evict({ namespace: pod.metadata!.namespace!, name: pod.metadata!.name! }, undefined, { signal: o.signal });
        if (result.ok || result.code === 'not-found') evicted += 1;
        else if (result.status === 429) {
          refused += 1;
          o.log.info({ node: o.node, pod: `${pod.metadata!.namespace}/${pod.metadata!.name}` }, 'drain: a PodDisruptionBudget refused the eviction; waiting');
        } else {
          failed += 1;
          o.log.warn({ node: o.node, pod: pod.metadata!.name, err: result.reason }, 'drain: eviction failed');
        }
      }
      refusals += refused;
      if (refused === 0 && failed === 0) continue;
    }
    try {
      await o.sleep(o.retryMs, o.signal);
    } catch {
      return { done: false, why: 'stopped', evicted, refusals };
    }
  }
}
