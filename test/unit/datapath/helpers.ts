/** Test helpers for the datapath box: recorded ip fixtures as a fake ip runner, a fake clock. */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { answeringBatches, type IpRun, type IpRunner } from '../../../src/datapath/ip.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '../../fixtures/ip-json');

export type FixtureSet = 'cilium-pre-1.14' | 'cilium-1.14' | 'assorted';

export function fixture(set: FixtureSet, what: 'rule-v4' | 'rule-v6' | 'route-v4' | 'route-v6' | 'addr'): string {
  return readFileSync(join(FIXTURES, `${set}-${what}.json`), 'utf8');
}

/** The listing a read would produce, keyed like the reader's argv. */
export interface Listing {
  rule4: string;
  rule6: string;
  route4: string;
  route6: string;
  addr: string;
}

export function fixtureListing(set: FixtureSet): Listing {
  return {
    rule4: fixture(set, 'rule-v4'),
    rule6: fixture(set, 'rule-v6'),
    route4: fixture(set, 'route-v4'),
    route6: fixture(set, 'route-v6'),
    addr: fixture(set, 'addr'),
  };
}

/** A fake ip: answers reads from a mutable listing and records every other call. */
export function fakeIp(listing: () => Listing, writes: string[][] = [], answer?: (args: string[]) => IpRun | undefined): IpRunner {
  return answeringBatches(async (args) => {
    const custom = answer?.(args);
    if (custom) return custom;
    const text = args.join(' ');
    const current = listing();
    if (text.includes('-4 rule show')) return { ok: true, stdout: current.rule4, stderr: '' };
    if (text.includes('-6 rule show')) return { ok: true, stdout: current.rule6, stderr: '' };
    if (text.includes('-4 route show')) return { ok: true, stdout: current.route4, stderr: '' };
    if (text.includes('-6 route show')) return { ok: true, stdout: current.route6, stderr: '' };
    if (text.includes('addr show')) return { ok: true, stdout: current.addr, stderr: '' };
    writes.push(args);
    return { ok: true, stdout: '', stderr: '' };
  });
}

/** Removes entries matching a predicate from a JSON listing (what a flush does). */
export function without(json: string, drop: (entry: Record<string, unknown>) => boolean): string {
  return JSON.stringify((JSON.parse(json) as Record<string, unknown>[]).filter((entry) => !drop(entry)));
}

/** Adds entries to a JSON listing. */
export function withEntries(json: string, ...entries: Record<string, unknown>[]): string {
  return JSON.stringify([...(JSON.parse(json) as Record<string, unknown>[]), ...entries]);
}

/** A clock the test moves by hand (the shared one). */
