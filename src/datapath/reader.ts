/**
 * Reading the kernel's rules, routes and addresses in one pass (IPv4 and IPv6), strictly.
 */
import type { AddressItem, DatapathSnapshot, Family, RouteItem, RuleItem } from '../types.js';
import type { IpRunner } from './ip.js';
import { parseAddresses, parseRoutes, parseRules, type UnsupportedEntry } from './ipjson.js';

/** A complete read, or why there is none. */
export type ReadResult =
  | { ok: true; snapshot: DatapathSnapshot; unsupported: UnsupportedEntry[]; families: Family[] }
  | { ok: false; reason: string; hint: string };

/** IPv6 switched off in the kernel is not a failure: that family simply has nothing. */
function familyAbsent(stderr: string): boolean {
  return /Address family not supported|EAFNOSUPPORT/i.test(stderr);
}

/** What one family's read asks of ip: one process, three listings (a spawn blocks the event loop for a fork). */
const LISTINGS = ['rule show', 'route show table all', 'addr show'] as const;

type FamilyRead =
  | { ok: true; absent: boolean; rules: RuleItem[]; routes: RouteItem[]; addresses: AddressItem[]; unsupported: UnsupportedEntry[] }
  | { ok: false; reason: string; hint: string };

async function readFamily(run: IpRunner, family: Family, signal?: AbortSignal): Promise<FamilyRead> {
  const args = ['-N', '-d', '-j', `-${family}`, '-batch', '-'];
  const result = await run(args, signal, LISTINGS.map((l) => `${l}\n`).join(''));
  if (!result.ok) {
    if (familyAbsent(result.stderr)) return { ok: true, absent: true, rules: [], routes: [], addresses: [], unsupported: [] };
    return { ok: false, reason: result.reason, hint: result.hint };
  }
  const lines = result.stdout.split('\n').filter((line) => line.trim() !== '');
  const command = (i: number) => `ip ${args.slice(0, 4).join(' ')} ${LISTINGS[i]}`;
  if (lines.length !== LISTINGS.length) {
    return { ok: false, reason: `ip ${args.join(' ')}: ${lines.length} listings for ${LISTINGS.length} commands`, hint: 'report this with the output of the same ip command' };
  }
  const failed = (i: number, p: { reason: string }): FamilyRead => ({ ok: false, reason: `${command(i)}: ${p.reason}`, hint: 'report this with the output of the same ip command' });
  const rules = parseRules(lines[0]!, family);
  if (!rules.ok) return failed(0, rules);
  const routes = parseRoutes(lines[1]!, family);
  if (!routes.ok) return failed(1, routes);
  const addresses = parseAddresses(lines[2]!);
  if (!addresses.ok) return failed(2, addresses);
  return {
    ok: true,
    absent: false,
    rules: rules.items,
    routes: routes.items,
    // `-4 addr show` lists every link; keep only this family's addresses.
    addresses: addresses.items.filter((a) => a.family === family),
    unsupported: [...rules.unsupported, ...routes.unsupported],
  };
}

/** Reads rules, routes and addresses of both families (one ip process each); `at` (the caller's monotonic clock) stamps the start of the read. */
export async function readDatapath(run: IpRunner, at: () => number, signal?: AbortSignal): Promise<ReadResult> {
  // The time the read started: whatever is missing was lost before it.
  const startedAt = at();
  const reads = await Promise.all(([4, 6] as const).map((family) => readFamily(run, family, signal)));
  const snapshot: DatapathSnapshot = { at: startedAt, rules: [], routes: [], addresses: [] };
  const unsupported: UnsupportedEntry[] = [];
  const families: Family[] = [];
  for (const [i, read] of reads.entries()) {
    if (!read.ok) return read;
    if (!read.absent) families.push(i === 0 ? 4 : 6);
    snapshot.rules.push(...read.rules);
    snapshot.routes.push(...read.routes);
    snapshot.addresses.push(...read.addresses);
    unsupported.push(...read.unsupported);
  }
  return { ok: true, snapshot, unsupported, families };
}
