/**
 * From Kubernetes objects to the core's small views: a Node, a cilium Pod, a ConnwatchNode, the
 * operators' ConfigMap. Only what the core reads is kept, so 10,000 Nodes cost little heap.
 */
import type { ConfigMap, Node, Pod } from 'kubernetes-types/core/v1.js';
import { defineResource, type KubeObject } from '../kube/resources.js';
import { CHANNEL, type ActionEnablement, type ChannelSpec, type ChannelStatus } from '../types.js';
import { CONDITION_TYPE, type ChannelView, type CiliumPodView, type Controls, type NodeView } from './model.js';

/** A ConnwatchNode as the API server returns it. */
export interface ConnwatchNode extends KubeObject {
  spec?: ChannelSpec;
  status?: ChannelStatus;
}

/** connwatch.io/v1alpha1 connwatchnodes (namespaced, one per node, named after it). */
export const CONNWATCH_NODES = defineResource<ConnwatchNode>({ group: CHANNEL.group, version: CHANNEL.version, plural: CHANNEL.plural, kind: CHANNEL.kind, namespaced: true });

const ZONE_LABEL = 'topology.kubernetes.io/zone';

export function nodeView(node: Node): NodeView {
  const conditions = node.status?.conditions ?? [];
  const ready = conditions.find((c) => c.type === 'Ready')?.status;
  const ours = conditions.find((c) => c.type === CONDITION_TYPE)?.status;
  const annotations: Record<string, string> = {};
  for (const [key, value] of Object.entries(node.metadata?.annotations ?? {})) if (key.startsWith('connwatch.io/')) annotations[key] = value;
  return {
    name: node.metadata?.name ?? '',
    zone: node.metadata?.labels?.[ZONE_LABEL] ?? '',
    ready: ready === 'True' || ready === 'False' ? ready : 'Unknown',
    unschedulable: node.spec?.unschedulable === true,
    taints: (node.spec?.taints ?? []).map((t) => t.key),
    annotations,
    ...(ours === 'True' || ours === 'False' || ours === 'Unknown' ? { condition: ours } : {}),
  };
}

export function ciliumPodView(pod: Pod): CiliumPodView | undefined {
  const node = pod.spec?.nodeName;
  if (!node) return undefined;
  const statuses = pod.status?.containerStatuses ?? [];
  let lastRestart: number | undefined;
  for (const s of statuses) {
    const finished = Date.parse(s.lastState?.terminated?.finishedAt ?? '');
    if (Number.isFinite(finished) && (lastRestart === undefined || finished > lastRestart)) lastRestart = finished;
  }
  const ready = pod.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
  const revision = pod.metadata?.labels?.['controller-revision-hash'];
  return {
    node,
    name: pod.metadata?.name ?? '',
    uid: pod.metadata?.uid ?? '',
    ready,
    deleting: pod.metadata?.deletionTimestamp !== undefined,
    ...(revision ? { revision } : {}),
    ...(lastRestart !== undefined ? { lastContainerRestartAt: lastRestart } : {}),
    crashLoop: statuses.some((s) => s.state?.waiting?.reason === 'CrashLoopBackOff'),
  };
}

export function channelView(object: ConnwatchNode): ChannelView {
  return { node: object.metadata?.name ?? '', spec: object.spec ?? {}, ...(object.status ? { status: object.status } : {}) };
}

const TRUE = new Set(['true', 'yes', 'on', '1']);
const FALSE = new Set(['false', 'no', 'off', '0', '']);

/** One switch: absent or false-like is off, true-like on, anything else on (a typo never turns a switch off). */
export function parseSwitch(value: string | undefined): boolean {
  if (value === undefined) return false;
  const word = value.trim().toLowerCase();
  return TRUE.has(word) || !FALSE.has(word);
}

/** The controls: config OR'ed with the operators' ConfigMap (data.killSwitch, data.halt, data.rampReset). */
export function controlsOf(
  config: { killSwitch: boolean; halt: boolean; restartCilium: ActionEnablement; quarantine: ActionEnablement },
  configMap: ConfigMap | undefined,
  name: string,
): Controls {
  const data = configMap?.data ?? {};
  const sw = (fromConfig: boolean, value: string | undefined) =>
    fromConfig ? { active: true, source: 'config' } : parseSwitch(value) ? { active: true, source: `configmap ${name}` } : { active: false, source: 'none' };
  return {
    killSwitch: sw(config.killSwitch, data.killSwitch),
    halt: sw(config.halt, data.halt),
    ...(data.rampReset !== undefined ? { rampReset: data.rampReset } : {}),
    actions: { restartCilium: config.restartCilium, quarantine: config.quarantine },
  };
}
