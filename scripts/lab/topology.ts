/**
 * The lab's fixed plan: names, links and addresses. Addresses repeat between labs — each lab has
 * its own network namespaces — so only names carry the lab's unique prefix.
 */
import type { LabProfile } from './types.js';

/** Where every lab keeps its state files and host-side sockets. */
export const LAB_ROOT = '/run/connwatch-lab';
/** Every lab name starts with this, so `down` without a name finds them all. */
export const LAB_PREFIX = 'cwlab-';

/** A link of the node under test. */
export interface NodeLinkPlan {
  name: string;
  managed: boolean;
  carrier: boolean;
  ip4?: string;
  ip6?: string;
  /** The peer node's end of the veth, when the link goes to the peer. */
  peerEnd?: { name: string; ip4: string; ip6: string };
}

export const NODE_LINKS: NodeLinkPlan[] = [
  { name: 'eth0', managed: true, carrier: true, ip4: '10.77.0.1/24', ip6: 'fd77::1/64', peerEnd: { name: 'eth0', ip4: '10.77.0.2/24', ip6: 'fd77::2/64' } },
  { name: 'eth1', managed: true, carrier: true, ip4: '10.77.1.1/24', ip6: 'fd77:1::1/64', peerEnd: { name: 'eth1', ip4: '10.77.1.2/24', ip6: 'fd77:1::2/64' } },
  // A spare NIC with DHCP and no carrier: networkd keeps it `configuring` forever.
  { name: 'eth2', managed: true, carrier: false },
];
/** The down end of eth2's veth, left in the node namespace. */
export const NO_CARRIER_PEER = 'eth2-nc';

export const PEER_IP4 = '10.77.0.2';
export const PEER_IP6 = 'fd77::2';
export const ENI_GATEWAY4 = '10.77.1.2';
export const ENI_GATEWAY6 = 'fd77:1::2';
/** The per-ENI routing table (Cilium: 10 + interface number) and its link. */
export const ENI_TABLE = '11';
export const ENI_LINK = 'eth1';
export const PRIMARY_LINK = 'eth0';

/** Pod CIDRs: node pods 10.78.0.x / fd78::x, peer pods 10.79.0.x / fd79::x. */
export const NODE_POD_NET = { v4: '10.78.0', v6: 'fd78::', cidr4: '10.78.0.0/24', cidr6: 'fd78::/64' };
export const PEER_POD_NET = { v4: '10.79.0', v6: 'fd79::', cidr4: '10.79.0.0/24', cidr6: 'fd79::/64' };
/** Link-local gateway the pods use for IPv6 (set on each lxc host end). */
export const POD_GW6 = 'fe80::1';

/** Marked traffic: TCP to this address and port is marked 0x200 and delivered locally via pref 9 / table 2004. */
export const MARKED = { addr: '10.200.0.1', net: '10.200.0.0/24', port: 4001, mark: 0x200, link: 'mark0', linkPeer: 'mark0-sink' };
/** The lab responders' HTTP port (cilium-health's port). */
export const RESPONDER_PORT = 4240;

/** The operator's rule that is not the CNI's. */
export const FOREIGN_RULE = { priority: 500, table: '200', protocol: 'static' } as const;

export function netnsNames(name: string): { node: string; peer: string } {
  return { node: `${name}-node`, peer: `${name}-peer` };
}

export function podNetns(labName: string, pod: string): string {
  return `${labName}-${pod}`;
}

/** Host end of a pod's veth (≤ 15 characters). */
export function podLink(pod: string): string {
  return `lxc-${pod}`;
}

export const POD_NAME = /^[a-z][a-z0-9-]{0,10}$/;

/** The .network files networkd reads in the lab (no explicit Broadcast=, so it re-adds the IPv4 address on restart). */
export function networkFiles(): Record<string, string> {
  const files: Record<string, string> = {};
  for (const link of NODE_LINKS) {
    const lines = ['[Match]', `Name=${link.name}`, '', '[Network]', `LinkLocalAddressing=${link.carrier ? 'ipv6' : 'no'}`, 'IPv6AcceptRA=no'];
    if (!link.carrier) lines.push('DHCP=ipv4');
    if (link.ip4) lines.push('', '[Address]', `Address=${link.ip4}`);
    if (link.ip6) lines.push('', '[Address]', `Address=${link.ip6}`, 'DuplicateAddressDetection=none');
    files[`10-lab-${link.name}.network`] = lines.join('\n') + '\n';
  }
  return files;
}

/** networkd.conf for a profile; undefined keeps the host's (compile-time defaults: manage foreign = yes). */
export function networkdConf(profile: LabProfile): string | undefined {
  if (profile !== 'cilium-1.14') return undefined;
  return ['[Network]', 'ManageForeignRoutingPolicyRules=no', 'ManageForeignRoutes=no', ''].join('\n');
}

/** A random, unique lab name. */
export function newLabName(): string {
  return LAB_PREFIX + Math.random().toString(36).slice(2, 8);
}

/** The node pod whose address is this node's cilium-health endpoint in the stand-in's node list. */
export const HEALTH_POD = 'pod-a';
/** Remote "nodes" the stand-in lists by default (each one a pod on the peer namespace). */
export const DEFAULT_REMOTE_NODES = 4;
export const MAX_REMOTE_NODES = 20;

/** Remote node i (1-based): node name `peer`, `peer-2`, … and its pod `peer-a`, `peer-b`, …. */
export function remoteNodePlan(count: number): { name: string; pod: string }[] {
  return Array.from({ length: count }, (_, i) => ({ name: i === 0 ? 'peer' : `peer-${i + 1}`, pod: `peer-${String.fromCharCode(97 + i)}` }));
}

/** The stand-in's two sockets inside the lab's mount namespace (Cilium's standard paths). */
export const CILIUM_LAB_SOCKET = '/var/run/cilium/cilium.sock';
export const CILIUM_LAB_HEALTH_SOCKET = '/var/run/cilium/health.sock';
