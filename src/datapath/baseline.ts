/**
 * The CNI baseline, pure: which items are the CNI's, how membership changes (only on the CNI's
 * evidence), and what is missing now. No I/O and no clock of its own: times come in with the
 * calls, so the life cycle is table-tested and property-tested.
 *
 * The rules it keeps (issue 5):
 * - learn only while the CNI reports healthy, no networkd activity is recent, and the live state
 *   keeps the profile's invariants (a damaged state is never learned);
 * - learning only adds: a member that is missing stays a member;
 * - a member leaves only on CNI evidence: its endpoint is gone (per-pod items), or the CNI
 *   restarted and reinstalled its state without it (this is also how upgrades are adopted).
 */
import type { DamageReport, DatapathItem, DatapathSnapshot, MissingItem, RuleItem, Severity } from '../types.js';
import { describeItem, itemKey } from './items.js';
import { checkInvariants, ProfileSet, type CniProfile } from './profiles.js';

/** One baseline member: the item with every attribute, and why it is the CNI's. */
export interface Member {
  key: string;
  item: DatapathItem;
  profile: string;
  severity: Severity;
  /** The profile matcher that claimed it. */
  matcher: string;
  /** The pod address a per-pod item belongs to. */
  pod?: string;
  /** Epoch ms when it was learned. */
  learnedAt: number;
}

/** What one CNI says about itself (for profiles whose `endpoints` names it). */
export interface CniEvidence {
  /** The CNI's own health answer; false also when its API did not answer. */
  healthy: boolean;
  /** Pod addresses from the CNI's endpoint list; absent when the list could not be read. */
  endpoints?: ReadonlySet<string>;
  /** The CNI restarted, settled and reinstalled its state (with no networkd activity meanwhile). */
  reinstalled?: boolean;
  /** Pod CIDRs of the cluster's nodes as the CNI reports them (routes to them are the CNI's). */
  nodeCidrs?: readonly string[];
}

/** Evidence per endpoint source (`profile.endpoints`): today only "cilium". */
export type EvidenceBySource = Partial<Record<'cilium', CniEvidence>>;

/** Why a member left. */
export interface Dropped {
  member: Member;
  reason: 'endpoint gone' | 'CNI reinstalled its state without it';
}

/** What one learning step did. */
export interface LearnOutcome {
  added: Member[];
  dropped: Dropped[];
  /** Why some or all learning was skipped, one line per profile. */
  refused: string[];
}

/** A missing member with what connwatch knows about the loss. */
export interface MissingMember extends MissingItem {
  key: string;
  /** Whether this item's loss coincided with networkd activity. */
  coincidedWithNetworkd: boolean;
  /** "baseline": a learned member; "invariant": required by the profile without learning. */
  source: 'baseline' | 'invariant';
  /** Monotonic ms when first seen missing. */
  missingSince: number;
  matcher: string;
  pod?: string;
}

/** The damage report with per-item detail (a DamageReport for every consumer of the seam). */
export interface DatapathDamageReport extends DamageReport {
  missing: MissingMember[];
  /** Number of baseline members. */
  members: number;
  /** Per-pod items missing for less than the grace period without networkd activity (likely pod churn). */
  withheld: MissingMember[];
}

export interface BaselineOptions {
  /** No learning until networkd has been quiet this long (ms). */
  quietMs: number;
  /** How far before first-seen-missing (and after) networkd activity still counts as the cause (ms). */
  coincidenceSlackMs: number;
  /**
   * A per-pod item gone without networkd activity is withheld this long (ms): when a pod goes,
   * the CNI removes its rules before the endpoint leaves its list, and that is churn, not damage.
   */
  perPodGraceMs: number;
  /** Pod CIDRs known from configuration, in addition to what the CNI reports. */
  clusterPodCidrs?: readonly string[];
}

interface Tracking {
  lastPresentAt?: number;
  missingSince?: number;
  /** When netlink announced its removal (heard), if it did. */
  removedAt?: number;
}

/**
 * How long before an item was last seen present networkd activity may still have removed it: a
 * flush under way when that read ran (networkd 252 flushes within tens of ms of configuring a link).
 */
const FLUSH_MARGIN_MS = 500;

const MAX_ACTIVITY = 512;

/** One time networkd was at work: heard (a signal, which may lag the kernel) or exact (its process started then). */
interface Activity {
  at: number;
  exact: boolean;
}

function attribution(dated: { coincided: boolean; onlyLater: boolean }): Pick<MissingMember, 'coincidedWithNetworkd'> & { datedByLaterSignal?: true } {
  return { coincidedWithNetworkd: dated.coincided, ...(dated.coincided && dated.onlyLater ? { datedByLaterSignal: true as const } : {}) };
}

/** When an item was lost, as closely as known: netlink's announcement of its removal, or else the read that found it missing. */
function lostAt(tracking: Tracking): number {
  const since = tracking.missingSince ?? 0;
  const { removedAt, lastPresentAt } = tracking;
  return removedAt !== undefined && removedAt <= since && removedAt > (lastPresentAt ?? -Infinity) ? removedAt : since;
}

/** Whether a missing member already is the rule an invariant asks for (then the invariant adds nothing). */
function sameLookup(item: DatapathItem, wanted: RuleItem): boolean {
  return item.kind === 'rule' && item.family === wanted.family && item.action === 'lookup' && item.table === wanted.table;
}

function bySeverityThenKey(a: MissingMember, b: MissingMember): number {
  if (a.severity !== b.severity) return a.severity === 'critical' ? -1 : 1;
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/** The baseline and its life cycle; one instance per agent. */
export class BaselineCore {
  readonly #profiles: readonly CniProfile[];
  readonly #options: BaselineOptions;
  readonly #members = new Map<string, Member>();
  readonly #tracking = new Map<string, Tracking>();
  #activity: Activity[] = [];

  constructor(profiles: readonly CniProfile[], options: BaselineOptions, members: readonly Member[] = []) {
    this.#profiles = profiles;
    this.#options = options;
    this.load(members);
  }

  /** Replaces the members with those saved on disk (start-up); members of profiles no longer configured are not ours. */
  load(members: readonly Member[]): void {
    const known = new Set(this.#profiles.map((profile) => profile.name));
    this.#members.clear();
    this.#tracking.clear();
    for (const member of members) if (known.has(member.profile)) this.#members.set(member.key, member);
  }

  /** The members, in a stable order (for persistence and status). */
  members(): Member[] {
    return [...this.#members.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /**
   * networkd did something (restart, link configuring, address re-add) at this monotonic time.
   * `exact`: a networkd process started then (read from the process); `supersedes` is the time its
   * restart was heard, which the exact time replaces.
   */
  noteNetworkdActivity(at: number, options: { exact?: boolean; supersedes?: number } = {}): void {
    if (options.supersedes !== undefined) {
      const heard = this.#activity.findIndex((entry) => !entry.exact && entry.at === options.supersedes);
      if (heard !== -1) this.#activity.splice(heard, 1);
    }
    const entry = { at, exact: options.exact ?? false };
    const index = this.#activity.findIndex((other) => other.at > at);
    if (index === -1) this.#activity.push(entry);
    else this.#activity.splice(index, 0, entry);
    if (this.#activity.length > MAX_ACTIVITY) this.#activity = this.#activity.slice(-MAX_ACTIVITY);
  }

  /** The latest networkd activity, if any. */
  lastNetworkdActivity(): number | undefined {
    return this.#activity.at(-1)?.at;
  }

  /** netlink announced this item removed at this monotonic time (heard): dates its loss more closely than the read that finds it. */
  noteRemoved(key: string, at: number): void {
    if (!this.#members.has(key)) return;
    const tracking = this.#tracking.get(key) ?? {};
    tracking.removedAt = at;
    this.#tracking.set(key, tracking);
  }

  /** Whether networkd has been quiet long enough to learn. */
  networkdQuiet(now: number): boolean {
    const last = this.lastNetworkdActivity();
    return last === undefined || now - last >= this.#options.quietMs;
  }

  /** Whether networkd did anything in [from, to]. */
  networkdActiveBetween(from: number, to: number): boolean {
    return this.#activity.some((entry) => entry.at >= from && entry.at <= to);
  }

  /**
   * Whether a loss coincided with networkd: activity from shortly before the item was last seen
   * present (or `slack` before it was seen missing, when it never was) to `slack` after it was seen
   * missing (signals may lag the kernel) — except that a networkd process known to have started
   * after the loss (netlink's announcement of it, or else the read that found it) cannot have
   * caused it, nor can anything that process did.
   */
  #coincided(tracking: Tracking): { coincided: boolean; onlyLater: boolean } {
    const slack = this.#options.coincidenceSlackMs;
    const since = tracking.missingSince ?? 0;
    const { lastPresentAt } = tracking;
    const from = lastPresentAt !== undefined ? lastPresentAt - FLUSH_MARGIN_MS : since - slack;
    const lost = lostAt(tracking);
    const laterStart = this.#activity.find((entry) => entry.exact && entry.at > lost);
    const to = Math.min(since + slack, laterStart ? laterStart.at - 1e-6 : Infinity);
    const before = this.networkdActiveBetween(from, lost);
    return { coincided: before || this.networkdActiveBetween(from, to), onlyLater: !before && this.networkdActiveBetween(lost, to) };
  }

  /**
   * One learning step against a live snapshot; `now` monotonic, `wallNow` epoch ms. `seen`: items
   * netlink announced as added since the last step — a listed pod's items among them join even when
   * a flush took them before any read saw them.
   */
  learn(snapshot: DatapathSnapshot, evidence: EvidenceBySource, now: number, wallNow: number, seen: readonly DatapathItem[] = []): LearnOutcome {
    const outcome: LearnOutcome = { added: [], dropped: [], refused: [] };
    const nodeCidrs = Object.values(evidence).flatMap((cni) => cni?.nodeCidrs ?? []);
    const live = this.#claimLive(snapshot, nodeCidrs);
    for (const [key, candidate] of this.#claimLive({ ...snapshot, rules: seen.filter((item) => item.kind === 'rule'), routes: seen.filter((item) => item.kind === 'route') }, nodeCidrs)) {
      if (candidate.pod !== undefined && !live.has(key)) live.set(key, candidate);
    }
    const quiet = this.networkdQuiet(now);
    const breaches = checkInvariants(this.#profiles, snapshot.rules);
    for (const profile of this.#profiles) {
      const cni = profile.endpoints === 'none' ? { healthy: true } : evidence[profile.endpoints];
      if (!cni?.healthy) {
        outcome.refused.push(`${profile.name}: the CNI does not report healthy`);
        continue;
      }
      this.#dropGoneEndpoints(profile, cni, outcome);
      // A per-pod item in the kernel for an endpoint the CNI lists is the CNI's, whatever networkd
      // is doing: learning it at once is what lets a flush right after a pod starts be repaired.
      if (!quiet) {
        outcome.refused.push(`${profile.name}: networkd activity in the last ${this.#options.quietMs} ms (only new pods' items learned)`);
        this.#addLive(profile, cni, live, wallNow, outcome, true);
        continue;
      }
      if (cni.reinstalled) this.#dropNotReinstalled(profile, live, outcome);
      const breach = breaches.find((candidate) => candidate.profile === profile.name);
      if (breach) {
        outcome.refused.push(`${profile.name}: live state breaks an invariant (${breach.invariant.description}); not learning from it (only new pods' items)`);
        this.#addLive(profile, cni, live, wallNow, outcome, true);
        continue;
      }
      this.#addLive(profile, cni, live, wallNow, outcome, false);
    }
    return outcome;
  }

  #dropGoneEndpoints(profile: CniProfile, cni: CniEvidence, outcome: LearnOutcome): void {
    if (!cni.endpoints) return;
    for (const member of this.#members.values()) {
      if (member.profile !== profile.name || member.pod === undefined || cni.endpoints.has(member.pod)) continue;
      this.#drop(member, 'endpoint gone', outcome);
    }
  }

  #dropNotReinstalled(profile: CniProfile, live: Map<string, Member>, outcome: LearnOutcome): void {
    for (const member of [...this.#members.values()]) {
      if (member.profile === profile.name && !live.has(member.key)) this.#drop(member, 'CNI reinstalled its state without it', outcome);
    }
  }

  #addLive(profile: CniProfile, cni: CniEvidence, live: Map<string, Member>, wallNow: number, outcome: LearnOutcome, perPodOnly: boolean): void {
    for (const candidate of live.values()) {
      if (candidate.profile !== profile.name || this.#members.has(candidate.key)) continue;
      if (perPodOnly && candidate.pod === undefined) continue;
      // A per-pod item joins only when the CNI lists its pod: a leftover of a gone pod is not the CNI's state.
      if (candidate.pod !== undefined && !cni.endpoints?.has(candidate.pod)) continue;
      const member = { ...candidate, learnedAt: wallNow };
      this.#members.set(member.key, member);
      outcome.added.push(member);
    }
  }

  #drop(member: Member, reason: Dropped['reason'], outcome: LearnOutcome): void {
    if (!this.#members.delete(member.key)) return;
    this.#tracking.delete(member.key);
    outcome.dropped.push({ member, reason });
  }

  /** Every live item some profile claims, as would-be members. */
  #claimLive(snapshot: DatapathSnapshot, nodeCidrs: readonly string[]): Map<string, Member> {
    const claimer = new ProfileSet(this.#profiles);
    claimer.noteNodeCidrs([...(this.#options.clusterPodCidrs ?? []), ...nodeCidrs]);
    claimer.noteRules([...snapshot.rules, ...this.#memberRules()]);
    claimer.noteAddresses(snapshot.addresses);
    const live = new Map<string, Member>();
    for (const item of [...snapshot.rules, ...snapshot.routes]) {
      const claim = claimer.claim(item);
      if (!claim) continue;
      const key = itemKey(item);
      live.set(key, { key, item, profile: claim.profile, severity: claim.severity, matcher: claim.matcher, learnedAt: 0, ...(claim.pod ? { pod: claim.pod } : {}) });
    }
    return live;
  }

  #memberRules(): RuleItem[] {
    return [...this.#members.values()].flatMap((member) => (member.item.kind === 'rule' ? [member.item] : []));
  }

  /**
   * Compares the live snapshot with the baseline and the invariants; updates loss tracking. `at`:
   * when the read started (the report's time); `doneAt`: when it ended. An item the read found is
   * known present from `at`; one it missed is known gone only from `doneAt` — a read that overlaps
   * networkd's start must not date the flush before networkd.
   */
  assess(snapshot: DatapathSnapshot, trigger: string, at: number, doneAt = at): DatapathDamageReport {
    const liveKeys = new Set([...snapshot.rules, ...snapshot.routes].map(itemKey));
    const missing: MissingMember[] = [];
    for (const member of this.#members.values()) {
      const present = liveKeys.has(member.key);
      const tracking = this.#track(member.key, present, present ? at : doneAt);
      if (tracking.missingSince === undefined) continue;
      missing.push(this.#missing(member.key, member.item, member, 'baseline', tracking));
    }
    const seen = new Set(missing.map((entry) => entry.key));
    const breachKeys = new Set<string>();
    for (const breach of checkInvariants(this.#profiles, snapshot.rules)) {
      const key = itemKey(breach.item);
      breachKeys.add(key);
      const tracking = this.#track(key, false, doneAt);
      if (seen.has(key) || missing.some((entry) => sameLookup(entry.item, breach.item))) continue;
      const origin = { profile: breach.profile, severity: breach.invariant.severity, matcher: breach.invariant.description };
      missing.push(this.#missing(key, breach.item, origin, 'invariant', tracking));
    }
    this.#forgetStaleTracking(breachKeys);
    const grace = this.#options.perPodGraceMs;
    const inGrace = (entry: MissingMember): boolean =>
      entry.pod !== undefined && !entry.coincidedWithNetworkd && at - entry.missingSince < grace;
    const reported = missing.filter((entry) => !inGrace(entry)).sort(bySeverityThenKey);
    return {
      at,
      trigger,
      missing: reported,
      coincidedWithNetworkd: reported.some((entry) => entry.coincidedWithNetworkd),
      members: this.#members.size,
      withheld: missing.filter(inGrace).sort(bySeverityThenKey),
    };
  }

  #track(key: string, present: boolean, at: number): Tracking {
    const tracking = this.#tracking.get(key) ?? {};
    if (present) {
      tracking.lastPresentAt = at;
      delete tracking.missingSince;
      if (tracking.removedAt !== undefined && tracking.removedAt <= at) delete tracking.removedAt;
    } else {
      tracking.missingSince ??= at;
    }
    this.#tracking.set(key, tracking);
    return tracking;
  }

  #forgetStaleTracking(breachKeys: Set<string>): void {
    for (const key of this.#tracking.keys()) if (!this.#members.has(key) && !breachKeys.has(key)) this.#tracking.delete(key);
  }

  #missing(
    key: string,
    item: DatapathItem,
    origin: { profile: string; severity: Severity; matcher: string; pod?: string },
    source: MissingMember['source'],
    tracking: Tracking,
  ): MissingMember {
    const since = tracking.missingSince ?? 0;
    const entry: MissingMember = {
      key,
      label: describeItem(item),
      item,
      severity: origin.severity,
      profile: origin.profile,
      matcher: origin.matcher,
      source,
      missingSince: since,
      lostAt: lostAt(tracking),
      ...attribution(this.#coincided(tracking)),
    };
    if (origin.pod !== undefined) entry.pod = origin.pod;
    return entry;
  }
}
