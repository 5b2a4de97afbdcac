/**
 * The agent's half of the channel as the controller tests write it (they test the controller, so
 * the admin client plays the agents), and the nodes' cilium pods as the DaemonSet makes them.
 */
import type { Pod } from 'kubernetes-types/core/v1.js';
import { createCiliumPod } from '../../scripts/lab/kube-glue.js';
import { CONNWATCH_NODES } from '../../src/controller/objects.js';
import type { KubeClient } from '../../src/kube/client.js';
import type { ChannelStatus, Rung } from '../../src/types.js';

/** A healthy agent's status, with `extra` laid over it. */
export function status(extra: Partial<ChannelStatus> = {}): ChannelStatus {
  const now = new Date().toISOString();
  return { state: 'Healthy', verdict: { kind: 'Healthy', reasons: [], since: now }, evidence: { failingProbes: [], missing: [] }, apiServer: 'reachable', kubeletReady: 'True', heartbeatAt: now, agentVersion: 'test', ...extra };
}

/** An agent whose node has no pod network, asking for `rung` (or for nothing yet). */
export function broken(rung: Rung | undefined): ChannelStatus {
  const now = new Date().toISOString();
  return status({
    state: 'Broken',
    verdict: { kind: 'ReadyButNoPodNetwork', reasons: ['pod paths fail, no CNI item missing'], since: now },
    evidence: { failingProbes: ['peer node-x'], missing: [] },
    ...(rung ? { request: { rung, reason: 'the restore did not fix it', since: now, verdict: 'ReadyButNoPodNetwork' } } : {}),
  });
}

/** Writes a node's status as the agent does: its half whole, what it no longer says removed (null in a merge patch). */
export async function agentWrites(client: Pick<KubeClient, 'patchStatus'>, namespace: string, node: string, s: ChannelStatus): Promise<void> {
  const written = await client.patchStatus(CONNWATCH_NODES, { namespace, name: node }, { status: { request: null, verified: null, lastRestore: null, ...s } }, 'merge');
  if (!written.ok) throw new Error(written.reason);
}

let podSeq = 0;

/** A node's next cilium pod, Ready (numbered across the test file). */
export function newCiliumPod(client: Pick<KubeClient, 'create' | 'patchStatus'>, node: string): Promise<Pod> {
  return createCiliumPod(client, node, ++podSeq);
}
