/** Helpers for tests that use the lab: capability check, ping, the marked connection, item diffs. */
import type { RouteItem, RuleItem } from '../../src/types.js';
import { itemKey } from './iproute.js';
import type { Lab } from './types.js';

/** Whether the lab can run here: root and the real networkd. Prints why not. */
export function labCapable(): boolean {
  if (process.getuid?.() !== 0) {
    console.warn('lab tests skipped: need root (network namespaces, mounts)');
    return false;
  }
  return true;
}

export async function ping(lab: Lab, from: string, to: string): Promise<boolean> {
  const r = await lab.exec(from, ['ping', '-c', '1', '-W', '2', to], { timeoutMs: 5_000 });
  return r.code === 0;
}

/** A TCP connection to the marked address from the node: the greeting when delivered, undefined when not. */
export async function markedConnect(lab: Lab): Promise<string | undefined> {
  const { addr, port } = lab.description.marked;
  const r = await lab.exec('node', ['timeout', '3', 'bash', '-c', `exec 3<>/dev/tcp/${addr}/${port}; head -c 6 <&3`], { timeoutMs: 5_000 });
  return r.code === 0 ? r.stdout : undefined;
}

export function keys(items: (RuleItem | RouteItem)[]): Set<string> {
  return new Set(items.map(itemKey));
}

/** before − after, by identity. */
export function removed(before: (RuleItem | RouteItem)[], after: (RuleItem | RouteItem)[]): string[] {
  const a = keys(after);
  return [...keys(before)].filter((k) => !a.has(k)).sort();
}
