/**
 * Loss and blackholes with nftables (this kernel has no netem): a table in the sender's
 * namespace drops packets to the target's addresses, at random (`numgen random`) or all.
 * Target "node" impairs the peer's path to the node; any other target impairs the node's path
 * to it. The table vanishes with its namespace, so `down` needs nothing extra.
 */
import { mustRun, run } from './run.js';
import type { LabState } from './state.js';
import { NODE_LINKS, NODE_POD_NET, PEER_POD_NET } from './topology.js';
import type { LabTarget } from './types.js';

const TABLE = 'connwatch_lab_impair';

export interface ImpairTargets {
  /** Where the drop rules live. */
  netns: string;
  ip4: string[];
  ip6: string[];
}

export type Impairment = { kind: 'loss'; percent: number } | { kind: 'blackhole' };

function bare(cidr: string): string {
  return cidr.replace(/\/\d+$/, '');
}

export function impairTargets(state: LabState, target: LabTarget): ImpairTargets {
  const withPeer = NODE_LINKS.filter((l) => l.peerEnd);
  if (target === 'node') {
    return { netns: state.netns.peer, ip4: withPeer.map((l) => bare(l.ip4 ?? '')), ip6: withPeer.map((l) => bare(l.ip6 ?? '')) };
  }
  if (target === 'pods') {
    // The node's path to every pod address, node pods and peer pods, both families.
    return { netns: state.netns.node, ip4: [NODE_POD_NET.cidr4, PEER_POD_NET.cidr4], ip6: [NODE_POD_NET.cidr6, PEER_POD_NET.cidr6] };
  }
  if (target === 'peer') {
    return { netns: state.netns.node, ip4: withPeer.map((l) => bare(l.peerEnd?.ip4 ?? '')), ip6: withPeer.map((l) => bare(l.peerEnd?.ip6 ?? '')) };
  }
  const pod = state.pods.find((p) => p.name === target);
  if (!pod) throw new Error(`lab: no target "${target}" for loss/blackhole (node, peer, pods or a pod)`);
  return { netns: state.netns.node, ip4: [pod.ip4], ip6: [pod.ip6] };
}

function verdict(imp: Impairment): string {
  return imp.kind === 'blackhole' ? 'drop' : `numgen random mod 100 < ${Math.round(imp.percent)} drop`;
}

/** Adds drop rules for the target's addresses (output and forward) in the sender's namespace. */
export async function applyImpairment(_state: LabState, t: ImpairTargets, imp: Impairment): Promise<void> {
  const v = verdict(imp);
  const lines = [
    `table inet ${TABLE} {`,
    '  chain lab_out { type filter hook output priority filter; policy accept; }',
    '  chain lab_forward { type filter hook forward priority filter; policy accept; }',
    '}',
  ];
  for (const chain of ['lab_out', 'lab_forward']) {
    lines.push(`add rule inet ${TABLE} ${chain} ip daddr { ${t.ip4.join(', ')} } ${v}`);
    lines.push(`add rule inet ${TABLE} ${chain} ip6 daddr { ${t.ip6.join(', ')} } ${v}`);
  }
  await mustRun(['nsenter', `--net=/run/netns/${t.netns}`, '--', 'nft', '-f', '-'], { input: lines.join('\n') + '\n' });
}

/** Removes every impairment in the lab's node and peer namespaces. */
export async function clearImpairments(state: LabState): Promise<void> {
  for (const ns of [state.netns.node, state.netns.peer]) {
    await run(['nsenter', `--net=/run/netns/${ns}`, '--', 'nft', 'delete', 'table', 'inet', TABLE]);
  }
}

/** The table of the stand-in's `not-forwarding` mode, in the node namespace (apart from the impairments, so `clear()` leaves it). */
export const NOT_FORWARDING_TABLE = 'connwatch_lab_cilium';

/**
 * A Cilium that no longer forwards: the node drops its traffic to and from the pod CIDRs (node
 * pods and peer pods, both families) — what it sends, receives and routes. For `nft -f -` in the
 * node namespace; deletes the table first, so it can be applied again.
 */
export function notForwardingRuleset(): string {
  const v4 = `{ ${NODE_POD_NET.cidr4}, ${PEER_POD_NET.cidr4} }`;
  const v6 = `{ ${NODE_POD_NET.cidr6}, ${PEER_POD_NET.cidr6} }`;
  return [
    `table inet ${NOT_FORWARDING_TABLE} {}`,
    `delete table inet ${NOT_FORWARDING_TABLE}`,
    `table inet ${NOT_FORWARDING_TABLE} {`,
    '  chain lab_out { type filter hook output priority filter; policy accept;',
    `    ip daddr ${v4} drop`,
    `    ip6 daddr ${v6} drop`,
    '  }',
    '  chain lab_in { type filter hook input priority filter; policy accept;',
    `    ip saddr ${v4} drop`,
    `    ip6 saddr ${v6} drop`,
    '  }',
    '  chain lab_forward { type filter hook forward priority filter; policy accept;',
    `    ip saddr ${v4} drop`,
    `    ip daddr ${v4} drop`,
    `    ip6 saddr ${v6} drop`,
    `    ip6 daddr ${v6} drop`,
    '  }',
    '}',
    '',
  ].join('\n');
}
