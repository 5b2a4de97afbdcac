/**
 * The agent's side of the channel (docs/channel.md): the ConnwatchNode resource, and the status
 * patch that replaces the agent's half whole. The agent writes only `status`, through the status
 * subresource, with a merge patch: it needs no resourceVersion (the status is the agent's alone),
 * so the controller's spec writes never make it conflict.
 */
import { CHANNEL, type ChannelSpec, type ChannelStatus } from '../../types.js';
import { defineResource, type KubeObject } from '../resources.js';

/** A ConnwatchNode as the API server returns it. */
export interface ConnwatchNode extends KubeObject {
  spec?: ChannelSpec;
  status?: ChannelStatus;
}

/** connwatch.io/v1alpha1 connwatchnodes, namespaced, named after the node. */
export const CONNWATCH_NODES = defineResource<ConnwatchNode>({ group: CHANNEL.group, version: CHANNEL.version, plural: CHANNEL.plural, kind: CHANNEL.kind, namespaced: true });

/** Bounds on what the status carries, so an incident with 500 missing items stays a small object. */
export const STATUS_LIMITS = { reasons: 5, items: 10, chars: 200 } as const;

/** Cuts a string to the status' size limit. */
export function bounded(text: string, chars: number = STATUS_LIMITS.chars): string {
  return text.length > chars ? `${text.slice(0, chars - 1)}…` : text;
}

/** A list cut to `max` entries; the last says how many more there were. */
export function boundedList(items: readonly string[], max: number = STATUS_LIMITS.items): string[] {
  const cut = items.slice(0, items.length > max ? max - 1 : max).map((item) => bounded(item));
  if (items.length > max) cut.push(`… and ${items.length - cut.length} more`);
  return cut;
}

/** Optional keys of the status (and of its nested objects) a merge patch must null when absent, or the old value would stay. */
const OPTIONAL_TOP: readonly (keyof ChannelStatus)[] = ['lastRestore', 'request', 'verified'];

/** The merge patch that makes the object's status exactly `status`. */
export function statusPatch(status: ChannelStatus): { status: Record<string, unknown> } {
  const body: Record<string, unknown> = { ...status };
  for (const key of OPTIONAL_TOP) if (body[key] === undefined) body[key] = null;
  body.verdict = { ...status.verdict, basis: status.verdict.basis ?? null };
  body.evidence = { ...status.evidence, signal: status.evidence.signal ?? null };
  return { status: body };
}
