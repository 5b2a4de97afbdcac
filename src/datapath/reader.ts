/**
 * Reading the kernel's rules, routes and addresses in one pass (IPv4 and IPv6), strictly.
 */
import type { AddressItem, DatapathSnapshot, Family, RouteItem, RuleItem } from '../types.js';
import type { IpRunner } from './ip.js';
import { parseAddresses, parseRoutes, parseRules, type ParseResult, type UnsupportedEntry } from './ipjson.js';

/** A complete read, or why there is none. */
export type ReadResult =
  | { ok: true; snapshot: DatapathSnapshot; unsupported: UnsupportedEntry[]; families: Family[] }
  | { ok: false; reason: string; hint: string };

/** IPv6 switched off in the kernel is not a failure: that family simply has nothing. */
function familyAbsent(stderr: string): boolean {
  return /Address family not supported|EAFNOSUPPORT/i.test(stderr);
}

async function readListing<T>(
  run: IpRunner,
  args: string[],
  parse: (text: string) => ParseResult<T>,
  signal?: AbortSignal,
): Promise<{ ok: true; items: T[]; unsupported: UnsupportedEntry[]; absent: boolean } | { ok: false; reason: string; hint: string }> {
  const result = await run(args, signal);
  if (!result.ok) {
    if (familyAbsent(result.stderr)) return { ok: true, items: [], unsupported: [], absent: true };
    return { ok: false, reason: result.reason, hint: result.hint };
  }
  const parsed = parse(result.stdout);
  if (!parsed.ok) return { ok: false, reason: `ip ${args.join(' ')}: ${parsed.reason}`, hint: 'report this with the output of the same ip command' };
  return { ...parsed, absent: false };
}

/** Reads rules and routes of both families and every address; `at` (the caller's monotonic clock) stamps the start of the read. */
export async function readDatapath(run: IpRunner, at: () => number, signal?: AbortSignal): Promise<ReadResult> {
  // The time the read started: whatever is missing was lost before it.
  const startedAt = at();
  const rules: RuleItem[] = [];
  const routes: RouteItem[] = [];
  const unsupported: UnsupportedEntry[] = [];
  const families: Family[] = [];
  const reads = ([4, 6] as const).flatMap((family) => [
    readListing(run, ['-N', '-d', '-j', `-${family}`, 'rule', 'show'], (text) => parseRules(text, family), signal),
    readListing(run, ['-N', '-d', '-j', `-${family}`, 'route', 'show', 'table', 'all'], (text) => parseRoutes(text, family), signal),
  ]);
  const addressRead = readListing(run, ['-j', 'addr', 'show'], parseAddresses, signal);
  const [rules4, routes4, rules6, routes6] = await Promise.all(reads);
  const addresses = await addressRead;
  for (const [family, ruleRead, routeRead] of [
    [4, rules4, routes4],
    [6, rules6, routes6],
  ] as const) {
    if (!ruleRead || !routeRead) return { ok: false, reason: 'internal: missing read', hint: 'report this' };
    if (!ruleRead.ok) return ruleRead;
    if (!routeRead.ok) return routeRead;
    if (!ruleRead.absent) families.push(family);
    rules.push(...(ruleRead.items as RuleItem[]));
    routes.push(...(routeRead.items as RouteItem[]));
    unsupported.push(...ruleRead.unsupported, ...routeRead.unsupported);
  }
  if (!addresses.ok) return addresses;
  return {
    ok: true,
    snapshot: { at: startedAt, rules, routes, addresses: addresses.items as AddressItem[] },
    unsupported,
    families,
  };
}
