/**
 * Where peer targets come from: Cilium's own node list (each node's health endpoint, no API
 * server needed), a static list, or nothing — then probe verdicts cannot tell. The controller may
 * later assign peers through the same `PeerSet`.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { formatHostPort } from '../common/hostport.js';
import type { CiliumApi, PeerSourceKind } from '../types.js';
import type { ProbesConfig } from './config.js';

/** A pod-network endpoint to probe, and the node it is on when known. */
export interface PeerTarget {
  target: string;
  node?: string;
}

/** The targets of one peer source. */
export interface PeerSet {
  source: PeerSourceKind;
  local?: PeerTarget;
  remote: PeerTarget[];
  detail?: string;
}

/**
 * k of the candidates by rendezvous hashing on this node's name: stable while the list changes
 * little, and spread so that every candidate is chosen by about k nodes.
 */
export function choosePeers<T extends { name: string }>(self: string, candidates: readonly T[], k: number): T[] {
  const score = (c: T): string => createHash('sha1').update(`${self}\n${c.name}`).digest('hex');
  return candidates
    .map((c) => ({ c, s: score(c) }))
    .sort((a, b) => (a.s < b.s ? -1 : a.s > b.s ? 1 : 0))
    .slice(0, k)
    .map((x) => x.c);
}

function hostPort(address: string, port: number): string {
  return formatHostPort({ host: address, port });
}

/** Prefers an IPv4 address (the one most clusters route for health checks). */
function pick(addresses: readonly string[]): string | undefined {
  return addresses.find((a) => isIP(a) === 4) ?? addresses[0];
}

/** Reads the peer set the configuration asks for. Never throws; a source that fails says why in `detail`. */
export async function readPeers(config: ProbesConfig, node: string, cilium: Pick<CiliumApi, 'clusterNodes'> | undefined, signal?: AbortSignal): Promise<PeerSet> {
  const { peers } = config;
  const staticLocal = config.localPod !== 'auto' && config.localPod !== 'off' ? { target: config.localPod, node } : undefined;
  const useStatic = peers.source === 'static' || (peers.source === 'auto' && peers.static.length > 0);
  if (peers.source === 'none') return { source: 'none', ...(staticLocal ? { local: staticLocal } : {}), remote: [], detail: 'probes.peers.source is none' };
  if (useStatic) {
    const remote = choosePeers(node, peers.static.map((t) => ({ name: t, target: t })), peers.count).map((p) => ({ target: p.target }));
    return { source: remote.length ? 'static' : 'none', ...(staticLocal ? { local: staticLocal } : {}), remote, ...(remote.length ? {} : { detail: 'probes.peers.static is empty' }) };
  }
  if (!cilium) return { source: 'none', ...(staticLocal ? { local: staticLocal } : {}), remote: [], detail: 'no Cilium to read the node list from' };
  const listed = await cilium.clusterNodes(signal);
  if (!listed.ok) return { source: 'none', ...(staticLocal ? { local: staticLocal } : {}), remote: [], detail: `Cilium's node list: ${listed.reason}` };
  const { self, nodes } = listed.value;
  const withHealth = nodes.filter((n) => n.health.length > 0);
  const selfNode = nodes.find((n) => n.name === self);
  const selfHealth = selfNode ? pick(selfNode.health) : undefined;
  const local = staticLocal ?? (config.localPod === 'auto' && selfHealth ? { target: hostPort(selfHealth, peers.port), node: self } : undefined);
  const others = withHealth.filter((n) => n.name !== self);
  if (others.length === 0) {
    const why = nodes.length > 1 ? 'Cilium launches no health endpoints (endpoint health checking is off): configure probes.peers.static (e.g. connwatch beacons)' : 'Cilium knows no other node';
    return { source: 'none', ...(local ? { local } : {}), remote: [], detail: why };
  }
  const remote = choosePeers(node, others, peers.count).flatMap((n) => {
    const address = pick(n.health);
    return address ? [{ target: hostPort(address, peers.port), node: n.name }] : [];
  });
  return { source: 'cilium', ...(local ? { local } : {}), remote, detail: `${remote.length} of ${others.length} node(s) with health endpoints` };
}
