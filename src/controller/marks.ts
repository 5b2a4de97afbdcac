/**
 * connwatch's marks on a Node: the NoSchedule taint, the PodNetworkUnavailable condition, an
 * optional cordon, and the connwatch.io/ annotations that record which of them connwatch added.
 * Applying is idempotent (a new leader re-applies what is missing); removing touches only what
 * the annotations say connwatch added — never an operator's cordon, never another taint.
 */
import type { Node, NodeCondition, Taint } from 'kubernetes-types/core/v1.js';
import type { KubeClient } from '../kube/client.js';
import { RESOURCES } from '../kube/resources.js';
import { ANNOTATIONS, CONDITION_TYPE, QUARANTINE_TAINT } from './model.js';

type Client = Pick<KubeClient, 'get' | 'patch' | 'patchStatus'>;

/** The result of a mark operation: what changed, or why it failed. */
export type MarkResult = { ok: true; changed: string[] } | { ok: false; reason: string };

const CONFLICT_RETRIES = 4;

function iso(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

/** Writes the condition only when its status, reason or message changes; lastTransitionTime moves only when the status does. */
async function setCondition(client: Client, node: Node, status: 'True' | 'False', reason: string, message: string, now: number): Promise<MarkResult> {
  const name = node.metadata!.name!;
  const existing = node.status?.conditions?.find((c) => c.type === CONDITION_TYPE);
  if (!existing && status === 'False') return { ok: true, changed: [] };
  if (existing && existing.status === status && existing.reason === reason && existing.message === message) return { ok: true, changed: [] };
  const condition: NodeCondition = {
    type: CONDITION_TYPE,
    status,
    reason,
    message,
    lastHeartbeatTime: iso(now),
    lastTransitionTime: existing && existing.status === status && existing.lastTransitionTime ? existing.lastTransitionTime : iso(now),
  };
  const written = await client.patchStatus(RESOURCES.nodes, { name }, { status: { conditions: [condition] } }, 'strategic');
  if (!written.ok) return { ok: false, reason: `condition ${CONDITION_TYPE}=${status} on ${name}: ${written.reason}` };
  return { ok: true, changed: [`condition ${CONDITION_TYPE}=${status}`] };
}

/** Read-modify-write of a Node's metadata/spec with its resourceVersion, retried on 409. */
async function updateNode(client: Client, name: string, change: (node: Node) => { patch: Record<string, unknown>; changed: string[] } | undefined): Promise<{ ok: true; node: Node; changed: string[] } | { ok: false; reason: string }> {
  for (let attempt = 0; ; attempt++) {
    const got = await client.get(RESOURCES.nodes, { name });
    if (!got.ok) return { ok: false, reason: `read node ${name}: ${got.reason}` };
    const wanted = change(got.value);
    if (!wanted) return { ok: true, node: got.value, changed: [] };
    const { patch, changed } = wanted;
    const body = { ...patch, metadata: { ...((patch.metadata as object | undefined) ?? {}), resourceVersion: got.value.metadata?.resourceVersion } };
    const written = await client.patch(RESOURCES.nodes, { name }, body, 'merge');
    if (written.ok) return { ok: true, node: written.value, changed };
    if (written.code !== 'conflict' || attempt >= CONFLICT_RETRIES) return { ok: false, reason: `write node ${name}: ${written.reason}` };
  }
}

/** Quarantines a node: taint, cordon (when asked and it was schedulable), annotations, then the condition. */
export async function applyQuarantine(client: Client, name: string, opts: { grantId: string; cordon: boolean; reason: string; message: string; now: number }): Promise<MarkResult> {
  const updated = await updateNode(client, name, (node) => {
    const taints = node.spec?.taints ?? [];
    const annotations = node.metadata?.annotations ?? {};
    const changed: string[] = [];
    const patch: { metadata: { annotations: Record<string, string> }; spec: { taints?: Taint[]; unschedulable?: boolean } } = { metadata: { annotations: {} }, spec: {} };
    if (annotations[ANNOTATIONS.quarantine] !== opts.grantId) {
      patch.metadata.annotations[ANNOTATIONS.quarantine] = opts.grantId;
      changed.push(`annotation ${ANNOTATIONS.quarantine}`);
    }
    if (!taints.some((t) => t.key === QUARANTINE_TAINT)) {
      patch.spec.taints = [...taints, { key: QUARANTINE_TAINT, value: 'true', effect: 'NoSchedule', timeAdded: iso(opts.now) }];
      changed.push(`taint ${QUARANTINE_TAINT}:NoSchedule`);
    }
    if (opts.cordon && node.spec?.unschedulable !== true) {
      patch.spec.unschedulable = true;
      patch.metadata.annotations[ANNOTATIONS.cordoned] = 'true';
      changed.push('cordon');
    }
    return changed.length > 0 ? { patch, changed } : undefined;
  });
  if (!updated.ok) return updated;
  const condition = await setCondition(client, updated.node, 'True', conditionReason(opts.reason), opts.message, opts.now);
  if (!condition.ok) return condition;
  return { ok: true, changed: [...updated.changed, ...condition.changed] };
}

/** Removes exactly connwatch's marks (and, for a release, records it so the controller stays off the node for a while). */
export async function removeMarks(client: Client, name: string, opts: { why: string; now: number; released?: boolean }): Promise<MarkResult> {
  const updated = await updateNode(client, name, (node) => {
    const taints = node.spec?.taints ?? [];
    const annotations = node.metadata?.annotations ?? {};
    const changed: string[] = [];
    const patchAnnotations: Record<string, string | null> = {};
    const spec: { taints?: Taint[]; unschedulable?: boolean } = {};
    if (taints.some((t) => t.key === QUARANTINE_TAINT)) {
      spec.taints = taints.filter((t) => t.key !== QUARANTINE_TAINT);
      changed.push(`taint ${QUARANTINE_TAINT} removed`);
    }
    if (annotations[ANNOTATIONS.cordoned] === 'true' && node.spec?.unschedulable === true) {
      spec.unschedulable = false;
      changed.push('uncordoned (connwatch had cordoned it)');
    }
    for (const key of [ANNOTATIONS.quarantine, ANNOTATIONS.cordoned, ANNOTATIONS.drain, ANNOTATIONS.drained]) {
      if (annotations[key] !== undefined) {
        patchAnnotations[key] = null;
        changed.push(`annotation ${key} removed`);
      }
    }
    if (opts.released) patchAnnotations[ANNOTATIONS.released] = iso(opts.now);
    if (changed.length === 0 && !opts.released) return undefined;
    return { patch: { metadata: { annotations: patchAnnotations }, spec }, changed };
  });
  if (!updated.ok) return updated;
  const condition = await setCondition(client, updated.node, 'False', 'PodNetworkRecovered', `connwatch: ${opts.why}`, opts.now);
  if (!condition.ok) return condition;
  return { ok: true, changed: [...updated.changed, ...condition.changed] };
}

/** A condition reason is CamelCase. */
function conditionReason(reason: string): string {
  const cleaned = reason.replace(/[^A-Za-z0-9]/g, '');
  return cleaned ? cleaned[0]!.toUpperCase() + cleaned.slice(1) : 'PodNetworkUnavailable';
}
