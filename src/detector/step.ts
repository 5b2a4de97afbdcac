/**
 * The detector: one pure state machine for the incident. `step(state, input, now)` returns the
 * next state, the verdict and the commands for the ladder (re-read, restore, verify, page, …);
 * it reads no clock, starts no timer and performs no I/O. Outcomes come back as inputs, and
 * `wakeAt` says when it wants a `tick`.
 *
 * The restore's rules live here: put back only what networkd just removed, after its flush
 * (every managed link seen entering "configuring" since the trigger, or a quiet period), one
 * attempt at a time, verified twice, repeated a bounded number of times ("fighting networkd").
 */
import type { DamageReport, DetectorCause, DetectorCommand, DetectorInput, EpisodeState, Instant, MissingItem, PageFacts, ProbeRound, RestoreCount, RestoreResult, SignalEvent, TimelineEntry, Verdict, VerifyPhase } from '../types.js';
import { callsForReread, liftsHold, readNetworkd } from './activity.js';
import { escalate, noteGrants } from './escalation.js';
import { judgeRound, noteCiliumRestart } from './probes.js';
import { nodeState, upgradeContext, verdictOf, type DetectorState, type Episode } from './state.js';

/** What one step produces. */
export interface StepResult {
  state: DetectorState;
  verdict: Verdict;
  commands: DetectorCommand[];
  /** When the detector wants a `tick` (monotonic ms), if it waits for time. */
  wakeAt?: number;
}

const CONFIGURING_OR_BEYOND = new Set(['configuring', 'configured', 'failed']);
const UNMANAGED = new Set(['unmanaged', 'linger']);
const MAX_VERIFY_FAILURES = 5;
const RETRY_BASE_MS = 50;
const RATE_WINDOW_MS = 60_000;
/** The longest pause between attempts that could write nothing. */
const UNWRITABLE_MAX_MS = 30_000;
const TIMELINE_MAX = 100;
/** Missing items a verdict's evidence lists (the page and the journal carry them). */
const EVIDENCE_ITEMS_MAX = 20;

/** One step's working set: the copied state, the time, and the commands so far. */
interface Run {
  s: DetectorState;
  now: Instant;
  out: DetectorCommand[];
}

/** Advances the detector by one input. Never mutates `state`. */
export function step(state: DetectorState, input: DetectorInput, now: Instant): StepResult {
  if (input.kind === 'signal' && leavesStateAlone(input.event)) {
    // The hot path during a flush (hundreds of rule and route events): no copy, just the re-read.
    const commands: DetectorCommand[] = [];
    const { event } = input;
    if (event.kind === 'RuleAdded' || event.kind === 'RouteAdded') commands.push({ kind: 'itemSeen', change: 'added', item: event.item, at: event.at });
    if (event.kind === 'RuleRemoved' || event.kind === 'RouteRemoved') commands.push({ kind: 'itemSeen', change: 'removed', item: event.item, at: event.at });
    if (callsForReread(input.event)) commands.push({ kind: 'reread', trigger: input.event.kind, followUps: false });
    return result(state, commands);
  }
  const run: Run = { s: structuredClone(state), now, out: [] };
  switch (input.kind) {
    case 'signal':
      onSignal(run, input.event);
      break;
    case 'damage':
      onDamage(run, input.report);
      break;
    case 'tick':
      onTick(run);
      break;
    case 'restored':
      onRestored(run, input.episode, input.result);
      break;
    case 'verified':
      onVerified(run, input.episode, input.phase, input.report);
      break;
    case 'targets':
      onTargets(run, input.episode, input.checked, input.failed);
      break;
    case 'probes':
      onProbes(run, input.round);
      break;
    case 'kubelet':
      run.s.kubelet = input.ready;
      break;
    case 'apiServer':
      run.s.apiServer = input.state;
      break;
    case 'grants': {
      const noted = noteGrants(run.s.escalation, input.grants, now, run.s.config.escalation);
      run.s.escalation = noted.view;
      if (noted.burst) run.out.push({ kind: 'probeBurst', reason: noted.burst });
      break;
    }
  }
  const verdict = verdictOf(run.s);
  if (verdict.kind !== run.s.verdictKind) {
    run.out.push({ kind: 'verdict', verdict, previous: run.s.verdictKind });
    run.s.verdictKind = verdict.kind;
  }
  climb(run, verdict);
  return result(run.s, run.out, verdict);
}

/** The rung to ask for, and the verification of what the controller executed. */
function climb(run: Run, verdict: Verdict): void {
  const { s } = run;
  const last = s.probes.last;
  const cilium = last?.observations.filter((o) => o.kind === 'cilium') ?? [];
  const lastRound = last ? { at: last.at, ciliumOk: cilium.length ? cilium.every((o) => o.ok) : undefined } : undefined;
  const out = escalate(s.escalation, { verdict, state: nodeState(s), now: run.now, ...(lastRound ? { lastRound } : {}) }, s.config.escalation);
  s.escalation = out.view;
  if (out.request) {
    run.out.push({ kind: 'rungRequest', request: out.request.value });
    const r = out.request.value;
    run.out.push({ kind: 'log', level: r ? 'warn' : 'info', msg: r ? `asking the controller for ${r.rung}: ${r.reason}` : 'request for the next rung withdrawn: the node is healthy again' });
  }
  for (const v of out.verified) {
    run.out.push({ kind: 'grantVerified', ...v });
    run.out.push({ kind: 'log', level: v.ok ? 'info' : 'warn', msg: `grant ${v.grant} ${v.ok ? 'verified' : 'did not fix the node'}: ${v.detail}` });
  }
}

function result(state: DetectorState, commands: DetectorCommand[], verdict: Verdict = verdictOf(state)): StepResult {
  const waits = [state.episode?.wake?.at, state.escalation.wakeAt].filter((t): t is number => t !== undefined);
  return { state, verdict, commands, ...(waits.length ? { wakeAt: Math.min(...waits) } : {}) };
}

// ─── inputs ─────────────────────────────────────────────────────────────────────────────────

/** How long after a networkd process started its restart may be heard and still be the same restart. */
const SAME_RESTART_MS = 10_000;

/** A networkd process's start, read from the process: exact activity that replaces when its restart was heard. */
function processStart(s: DetectorState, event: Extract<SignalEvent, { kind: 'NetworkdStarted' }>): DetectorCommand {
  const heard = s.restartHeardAt;
  const sameRestart = heard !== undefined && heard >= event.startedAt && heard - event.startedAt <= SAME_RESTART_MS;
  return { kind: 'networkdActivity', at: event.startedAt, exact: true, ...(sameRestart ? { supersedes: heard } : {}) };
}

const FAST_KINDS: ReadonlySet<SignalEvent['kind']> = new Set(['RuleAdded', 'RuleRemoved', 'RouteAdded', 'RouteRemoved', 'AddressAdded', 'AddressRemoved']);

/** Signals that change nothing the detector keeps: rule and route events, and address events that are not networkd's. */
function leavesStateAlone(event: SignalEvent): boolean {
  return FAST_KINDS.has(event.kind) && readNetworkd(event, undefined) === undefined;
}

/** Signals a verdict's evidence names as "the preceding signal", and that start a probe burst. */
function signalOfNote(event: SignalEvent, networkd: string | undefined): string | undefined {
  if (networkd) return networkd.includes('networkd') ? networkd : `networkd activity: ${networkd}`;
  switch (event.kind) {
    case 'CiliumRestarted':
      return 'Cilium restarted';
    case 'UpgradeStarted':
      return `upgrade started (${event.unit})`;
    case 'UpgradeFinished':
      return `upgrade finished (${event.unit}: ${event.result})`;
    case 'NetworkdOnBus':
      return event.present ? undefined : 'systemd-networkd left the bus';
    default:
      return undefined;
  }
}

function onSignal(run: Run, event: SignalEvent): void {
  const { s } = run;
  const reading = readNetworkd(event, s.networkdOnBus, s.config.cniDevices);
  if (event.kind === 'NetworkdOnBus') s.networkdOnBus = event.present;
  if (event.kind === 'NetworkdStarted') run.out.push(processStart(s, event));
  else if (reading) run.out.push({ kind: 'networkdActivity', at: event.at });
  if (event.kind === 'NetworkdRestarted') s.restartHeardAt = event.at;
  if (event.kind === 'NetworkdStarted') s.startReadAt = event.at;
  if (event.kind === 'CiliumRestarted') {
    run.out.push({ kind: 'cniRestarted', at: event.at });
    s.probes = noteCiliumRestart(s.probes, event.at);
  }
  if (event.kind === 'UpgradeStarted') s.upgrade = { unit: event.unit, startedAt: event.at };
  if (event.kind === 'UpgradeFinished' && s.upgrade?.unit === event.unit) s.upgrade = { ...s.upgrade, finishedAt: event.at, result: event.result };
  if ((event.kind === 'UpgradeStarted' || event.kind === 'UpgradeFinished') && s.episode) note(run, s.episode, event.kind === 'UpgradeStarted' ? `upgrade run started: ${event.unit}` : `upgrade run finished: ${event.unit} (${event.result})`);
  const notable = signalOfNote(event, reading?.what);
  if (notable) {
    s.lastSignal = { what: notable, at: event.at };
    run.out.push({ kind: 'probeBurst', reason: notable });
  }
  const e = s.episode;
  if (e && liftsHold(event, s.config.cniDevices)) {
    e.holdUntil = undefined;
    e.liftedAt = event.at;
  }
  // Only networkd's own doings move the episode (not, say, the echoes of connwatch's writes).
  if (event.kind === 'LinkStateChanged' || reading) {
    if (event.kind === 'LinkStateChanged') linkState(run, event.ifindex, event.administrativeState, reading?.what, event);
    else if (event.kind === 'NetworkdStarted') {
      // A start long past (networkd running since boot) is no episode; a recent one before connwatch listened is.
      if (reading && run.now.at - event.startedAt <= s.config.episodeMs) {
        activity(run, event.at, event.wallAt, reading.what, false);
        // A start read before any restart was heard (connwatch connected after it) is that restart:
        // the next restart opens its own episode, with its own trigger and repeat budget.
        if (s.episode && s.restartHeardAt === undefined) s.episode.restartHeard = true;
      }
    } else if (reading) activity(run, event.at, event.wallAt, reading.what, reading.restart);
    if (s.episode) s.episode.parked = false;
    // The start time dates losses anew: the re-read it calls for decides, not the last report.
    if (event.kind !== 'NetworkdStarted') reconsider(run);
  }
  if (callsForReread(event)) run.out.push({ kind: 'reread', trigger: event.kind, followUps: reading !== undefined });
}

function onDamage(run: Run, report: DamageReport): void {
  const { s } = run;
  if (s.carried.length > 0 || s.withdrawn.length > 0) {
    const missingKeys = new Set(report.missing.map((m) => m.key));
    s.carried = s.carried.filter((key) => missingKeys.has(key));
    s.withdrawn = s.withdrawn.filter((key) => missingKeys.has(key));
  }
  // A read that started before the last write cannot say what that write put back: it raced it.
  if (readBeforeWrite(s, report)) return;
  const critical = report.missing.filter((m) => m.severity === 'critical').length;
  if (critical > 0 && !(s.damage && s.damage.critical > 0)) run.out.push({ kind: 'probeBurst', reason: 'CNI datapath items missing' });
  // Critical items first, so a long list of lost routes never crowds `lookup local` out of the evidence.
  const bySeverity = [...report.missing].sort((a, b) => Number(b.severity === 'critical') - Number(a.severity === 'critical'));
  const missing = bySeverity.slice(0, EVIDENCE_ITEMS_MAX).map((m) => ({ item: m.label, severity: m.severity, profile: m.profile }));
  s.damage = { at: report.at, critical, degraded: report.missing.length - critical, trigger: report.trigger, missing };
  const repairable = repairableOf(s, report);
  const unrepairable = report.missing.filter((m) => !repairable.includes(m));
  if (unrepairable.length > 0) notRepaired(run, unrepairable, report.trigger);
  else s.unrepaired = undefined;
  damagePage(run, report, repairable);
  if (repairable.length === 0) return whole(run, report);
  const e = s.episode ?? open(run, `damage (${report.trigger})`, run.now.at, run.now.wallAt);
  if (e.state === 'fighting' || e.state === 'failed') return;
  if (!e.detected) {
    e.detected = true;
    run.out.push({ kind: 'observe', metric: 'detection', seconds: Math.max(0, run.now.at - e.triggerAt) / 1000 });
  }
  e.missing = repairable;
  e.parked = false;
  if (e.state !== 'restoring') e.state = 'waiting';
  note(run, e, `missing: ${repairable.map((m) => `${m.label} [${m.severity}]`).join('; ')}`, { trigger: report.trigger });
  reconsider(run);
}

function onTick(run: Run): void {
  const e = run.s.episode;
  const wake = e?.wake;
  if (!e || !wake || wake.at > run.now.at) return;
  e.wake = undefined;
  if (wake.what === 'reconsider') return reconsider(run);
  if (e.state !== 'verifying') return;
  if (run.s.busy) return setWake(e, run.now.at + RETRY_BASE_MS, 'verifyStable');
  ask(run, { kind: 'verify', episode: e.id, phase: 'stable' });
}

function onRestored(run: Run, episode: number, result: RestoreResult): void {
  const { s, now } = run;
  s.busy = undefined;
  const done = result.done;
  if (done.kind === 'written') {
    s.recentWrites = [...s.recentWrites.filter((at) => now.at - at < RATE_WINDOW_MS), now.at];
    s.lastWrite = { at: now.at, keys: done.keys };
    count(run, done.outcome.ok ? 'restored' : (done.outcome.detail as { added?: number } | undefined)?.added ? 'partial' : 'failed');
  } else if (done.kind === 'declined') {
    count(run, done.decision);
  }
  const gone = (result.withdrawn ?? []).filter((w) => w.final);
  s.withdrawn = [...new Set([...s.withdrawn, ...gone.map((w) => w.key)])];
  const e = current(s, episode);
  if (!e) return settle(run);
  if (result.withdrawn?.length) {
    const withdrawn = new Set(gone.map((w) => w.key));
    e.missing = e.missing.filter((m) => !withdrawn.has(m.key));
    note(run, e, `not put back: ${result.withdrawn.map((w) => `${w.label} (${w.reason})`).join('; ')}`);
  }
  if (result.held.length > 0) note(run, e, `held until networkd puts addresses back: ${result.held.map((h) => `${h.label} (waits for ${h.waitsFor})`).join('; ')}`);
  switch (done.kind) {
    case 'unchanged':
      e.state = 'waiting';
      e.parked = true;
      break;
    case 'nothing-writable': {
      e.state = 'waiting';
      if (e.missing.length === 0) break;
      // Nothing can be written yet; the next networkd signal (an address coming back) reconsiders —
      // or already did while the plan was being made: then look again at once.
      // Backing off only while the CNI cannot confirm per-pod items (every try asks it again); items
      // held for their address wait for networkd, which the next signal says.
      const unconfirmed = (result.withdrawn ?? []).some((w) => !w.final) && result.held.length === 0;
      const backoff = unconfirmed ? Math.min(UNWRITABLE_MAX_MS, s.config.quietPeriodMs * 2 ** e.unwritable++) : s.config.quietPeriodMs;
      const holdMs = (e.liftedAt ?? -Infinity) >= (e.attemptAt ?? Infinity) ? 0 : backoff;
      e.holdUntil = now.at + holdMs;
      setWake(e, now.at + holdMs, 'reconsider');
      break;
    }
    case 'declined': {
      e.state = 'waiting';
      e.parked = true;
      const keys = new Set(e.declined?.decision === done.decision ? e.declined.keys : []);
      for (const m of e.missing) keys.add(m.key);
      e.declined = { decision: done.decision, keys: [...keys] };
      note(run, e, done.decision === 'shadowed' ? `would have restored ${done.count} item(s) (shadow mode)` : `not restored: ${done.decision} (${done.why}); restoring resumes when the switch is lifted, also across a connwatch restart within an hour`);
      break;
    }
    case 'written': {
      e.unwritable = 0;
      e.restores++;
      const { outcome } = done;
      e.written = { at: now.at, keys: done.keys, ok: outcome.ok, ...(outcome.ok ? {} : { reason: outcome.reason }) };
      if (outcome.ok) e.lastWriteFailure = undefined;
      note(run, e, outcome.ok ? `restored ${done.keys.length} item(s)` : `restore incomplete: ${outcome.reason}`, outcome.detail ?? {});
      run.out.push({ kind: 'log', level: 'info', msg: 'restore attempt finished', fields: { episode: e.id, items: done.labels, outcome } });
      e.state = 'verifying';
      ask(run, { kind: 'verify', episode: e.id, phase: 'written' });
      break;
    }
  }
  settle(run);
}

function onVerified(run: Run, episode: number, phase: VerifyPhase, report: DamageReport | { error: string }): void {
  const { s } = run;
  s.busy = undefined;
  const e = current(s, episode);
  if (!e) return settle(run);
  if (phase === 'written') verifiedWritten(run, e, report);
  else verifiedStable(run, e, report);
  settle(run);
}

/** The re-read right after a write: all back → wait for stability; not yet → retry after a backoff. */
function verifiedWritten(run: Run, e: Episode, report: DamageReport | { error: string }): void {
  const { s, now } = run;
  const failed = 'error' in report;
  const stillMissing = failed ? [] : repairableOf(s, report);
  if (!failed && stillMissing.length === 0) {
    note(run, e, 'every item back (re-read)');
    run.out.push({ kind: 'observe', metric: 'restoreLatency', seconds: (now.at - e.triggerAt) / 1000 });
    return setWake(e, now.at + s.config.verifyStableMs, 'verifyStable');
  }
  if (failed) note(run, e, `verification re-read failed: ${report.error}`);
  // Not all back: a write failed (often transient mid-flush: a gateway whose address networkd has
  // not put back yet), networkd removed items again, or the re-read failed. The repeat cap turns a
  // lasting failure into a page.
  const written = e.written;
  if (written && !written.ok) e.lastWriteFailure = written.reason;
  const again = failed || !written?.ok || stillMissing.some((m) => written.keys.includes(m.key));
  // Backing off 50 ms, 100, 200, … up to the quiet period: quick when networkd was just finishing
  // a link, patient when it is still at work.
  const lifted = (e.liftedAt ?? -Infinity) >= (e.attemptAt ?? Infinity);
  const backoff = Math.min(s.config.quietPeriodMs, RETRY_BASE_MS * 2 ** Math.max(0, e.restores - 1));
  const holdMs = lifted ? Math.min(backoff, RETRY_BASE_MS) : backoff;
  if (again) e.holdUntil = now.at + holdMs;
  if (e.state === 'verifying') e.state = 'waiting';
  setWake(e, now.at + holdMs, 'reconsider');
}

/** The re-read after the stability wait: still all back → check the TCP targets. */
function verifiedStable(run: Run, e: Episode, report: DamageReport | { error: string }): void {
  if (e.state !== 'verifying') return;
  if ('error' in report) {
    // Never call it verified on evidence we could not gather: look again later, and page if it stays so.
    if (++e.verifyFailures >= MAX_VERIFY_FAILURES) return failed(run, e, `cannot verify the restore: ${report.error}`, false);
    note(run, e, `verification re-read failed: ${report.error}; retrying`);
    return setWake(e, run.now.at + run.s.config.verifyStableMs, 'verifyStable');
  }
  e.verifyFailures = 0;
  // Missing again: the damage report already moved the episode back to waiting.
  if (repairableOf(run.s, report).length > 0) return;
  ask(run, { kind: 'checkTargets', episode: e.id });
}

function onTargets(run: Run, episode: number, checked: number, failedTargets: { target: string; reason: string }[]): void {
  const { s } = run;
  s.busy = undefined;
  const e = current(s, episode);
  if (!e || e.state !== 'verifying') return settle(run);
  if (failedTargets.length > 0) {
    note(run, e, `verify targets not answering: ${failedTargets.map((t) => `${t.target} (${t.reason})`).join(', ')}`);
    e.state = 'failed';
    e.targetsFailed = true;
    raise(run, e, { cause: 'RestoreFailed', ...episodeFacts(e), reason: `${failedTargets.length} verify target(s) do not answer`, restoredButUnreachable: true });
    return;
  }
  e.state = 'restored';
  note(run, e, `verified: every item stable for ${s.config.verifyStableMs} ms${checked ? `, ${checked} target(s) answer` : ''}`);
  resolve(run, 'RestoreFailed');
  resolve(run, 'FightingNetworkd');
  close(run, 'restored');
}

// ─── probe verdicts ──────────────────────────────────────────────────────────────────────────

/** A probe round: judged, a burst asked for to confirm, and the probe page raised or resolved. */
function onProbes(run: Run, round: ProbeRound): void {
  const { s } = run;
  const before = s.probes.confirmed;
  const judged = judgeRound(s.probes, round, s.config.probes);
  s.probes = judged.view;
  if (judged.burst) run.out.push({ kind: 'probeBurst', reason: judged.burst });
  const confirmed = s.probes.confirmed;
  const last = s.probes.last;
  if (confirmed && confirmed !== before && last) {
    const since = s.probes.failingSince ?? round.at;
    run.out.push({ kind: 'observe', metric: 'detection', seconds: Math.max(0, round.at - since) / 1000, evidence: 'probes' });
    run.out.push({ kind: 'log', level: 'error', msg: `probes: ${confirmed}`, fields: { reasons: last.reasons } });
  }
  if (!confirmed) {
    resolve(run, 'ReadyButNoPodNetwork');
    resolve(run, 'NodeOffline');
    return;
  }
  // Missing CNI items explain it already, and their page says so: no second page for one incident.
  if ((s.damage?.critical ?? 0) > 0 || s.pages[confirmed] === 'firing') return;
  const verdict = verdictOf(s);
  resolve(run, confirmed === 'NodeOffline' ? 'ReadyButNoPodNetwork' : 'NodeOffline');
  run.out.push({
    kind: 'raise',
    facts: { cause: confirmed, reasons: verdict.reasons, evidence: verdict.evidence ?? { probes: round.results, missing: [], kubelet: s.kubelet } },
    timeline: [{ wallAt: run.now.wallAt, what: `${confirmed}: ${verdict.reasons[0] ?? ''}` }],
    startsAt: run.now.wallAt - Math.max(0, round.at - (s.probes.failingSince ?? round.at)),
  });
  s.pages[confirmed] = 'firing';
}

// ─── networkd activity and episodes ─────────────────────────────────────────────────────────

function linkState(run: Run, ifindex: number, admin: string | undefined, what: string | undefined, event: { at: number; wallAt: number }): void {
  const { s } = run;
  if (!admin) return;
  if (UNMANAGED.has(admin)) {
    delete s.managedLinks[ifindex];
    return;
  }
  s.managedLinks[ifindex] = admin;
  if (what) activity(run, event.at, event.wallAt, what, false);
  const e = s.episode;
  if (e && CONFIGURING_OR_BEYOND.has(admin) && !e.linksConfigured.includes(ifindex)) e.linksConfigured.push(ifindex);
}

function activity(run: Run, at: number, wallAt: number, what: string, isRestart: boolean): void {
  const e = run.s.episode;
  const stale = e !== undefined && at - e.lastActivityAt > run.s.config.episodeMs;
  // A restart heard late (the bus lags the kernel under load) belongs to the episode its losses
  // already opened; a second restart is a new episode with its own repeat budget.
  const fresh = !e || stale || (isRestart && (e.restartHeard || e.state === 'fighting' || e.state === 'failed'));
  const episode = fresh ? open(run, what, at, wallAt) : e;
  if (isRestart) {
    if (!fresh) episode.linksConfigured = [];
    episode.restartHeard = true;
  }
  episode.lastActivityAt = at;
  note(run, episode, what);
}

function open(run: Run, trigger: string, at: number, wallAt: number): Episode {
  const { s } = run;
  if (s.episode) close(run, 'ended');
  const e: Episode = { id: ++s.episodes, trigger, triggerAt: at, triggerWall: wallAt, lastActivityAt: at, linksConfigured: [], restores: 0, state: 'waiting', missing: [], timeline: [], parked: false, verifyFailures: 0, detected: false, restartHeard: false, unwritable: 0 };
  s.episode = e;
  const { upgrade } = upgradeContext(s, at);
  if (upgrade) note(run, e, `during upgrade run ${upgrade.unit} (${upgrade.running ? 'running' : 'finished'}, started ${Math.round(upgrade.msBefore / 1000)} s before)`);
  return e;
}

function close(run: Run, state: EpisodeState): void {
  const { s } = run;
  const e = s.episode;
  if (!e) return;
  if (e.state !== 'fighting' && e.state !== 'failed') e.state = state;
  s.last = { episode: e.id, state: e.state, timeline: e.timeline };
  s.episode = undefined;
}

/** Every managed link seen entering "configuring" since the trigger: networkd's flush for this episode is over. */
function flushOver(s: DetectorState, e: Episode): boolean {
  const managed = Object.keys(s.managedLinks);
  return managed.length > 0 && managed.every((ifindex) => e.linksConfigured.includes(Number(ifindex)));
}

// ─── the restore ────────────────────────────────────────────────────────────────────────────

/** What a restore may put back: items networkd just removed (or removed while a previous run's restore was declined); never an invariant that was not learned here. */
function repairableOf(s: DetectorState, report: DamageReport): MissingItem[] {
  return report.missing.filter((m) => m.source !== 'invariant' && !s.withdrawn.includes(m.key) && ((m.coincidedWithNetworkd ?? report.coincidedWithNetworkd) || s.carried.includes(m.key)));
}

function readBeforeWrite(s: DetectorState, report: DamageReport): boolean {
  const write = s.lastWrite;
  return write !== undefined && report.at < write.at && report.missing.some((m) => write.keys.includes(m.key));
}

/** Decides whether to attempt a restore now, later, or not at all. */
function reconsider(run: Run): void {
  const { s, now } = run;
  const e = s.episode;
  if (!e || e.state !== 'waiting' || e.parked || s.busy) return;
  if (e.missing.length === 0) return endWhenQuiet(run, e);
  e.wake = undefined;
  const quietLeft = e.lastActivityAt + s.config.quietPeriodMs - now.at;
  if (flushOver(s, e) || quietLeft <= 0) attempt(run, e);
  else setWake(e, now.at + quietLeft, 'reconsider');
}

function attempt(run: Run, e: Episode): void {
  const { s, now } = run;
  if (!s.config.canWrite.ok) {
    count(run, 'no_capability');
    e.state = 'failed';
    note(run, e, `restore skipped: ${s.config.canWrite.reason}`);
    return;
  }
  const holdLeft = (e.holdUntil ?? 0) - now.at;
  if (holdLeft > 0) return setWake(e, now.at + holdLeft, 'reconsider');
  // The rate limit is for a flapping networkd; an item without which the node is dark never waits
  // for it (the repeat cap still ends a fight).
  const waitMs = e.missing.some((m) => m.severity === 'critical') ? 0 : rateLimitWait(s, now.at);
  if (waitMs > 0 && (e.rateHeldUntil ?? -Infinity) > now.at) return setWake(e, e.rateHeldUntil!, 'reconsider');
  if (waitMs > 0) {
    e.rateHeldUntil = now.at + waitMs;
    const why = `rate limited: next restore in ${Math.round(waitMs)} ms`;
    count(run, 'rate_limited');
    note(run, e, why);
    run.out.push({ kind: 'restoreHeld', episode: e.id, items: e.missing, why });
    return setWake(e, now.at + waitMs, 'reconsider');
  }
  if (e.restores >= s.config.maxRepeats) return e.lastWriteFailure ? failed(run, e, e.lastWriteFailure, false) : fighting(run, e);
  const startDue = awaitingStart(s, e, now.at);
  if (startDue !== undefined) {
    if (!e.waitedForStart) note(run, e, "waiting for networkd's start time: some items were lost before any sign of networkd (an operator's removal just before a restart is not networkd's)");
    e.waitedForStart = true;
    return setWake(e, startDue, 'reconsider');
  }
  const declined = e.declined;
  // The same gate decision was already journalled for every item here: the ladder does not resubmit
  // it (a flipped switch changes the decision, and then the restore goes ahead).
  const unlessDeclined = declined && e.missing.every((m) => declined.keys.includes(m.key)) ? declined.decision : undefined;
  e.attemptAt = now.at;
  e.state = 'restoring';
  ask(run, {
    kind: 'restore',
    episode: e.id,
    items: e.missing,
    evidence: { episode: e.id, trigger: e.trigger, missing: e.missing, timeline: e.timeline.slice(-20) },
    ...(unlessDeclined ? { unlessDeclined } : {}),
  });
}

/**
 * How long a restore waits for networkd's start time (read from the process) before dating losses by
 * the heard restart alone. Only items lost before any sign of networkd wait (never the incident's own
 * flush, which follows the restart's signals); the read is a bus call and a /proc read, which a loaded
 * node can hold for over half a second, and going ahead without it restores an operator's removal.
 */
export const START_WAIT_MS = 2_000;

/**
 * When a loss is networkd's only by activity heard after it, only the process's start time tells an
 * operator's removal just before a restart from a flush whose signals lagged: wait for it (a moment),
 * unless it is known. Returns when to look again, or undefined to go ahead.
 */
function awaitingStart(s: DetectorState, e: Episode, now: number): number | undefined {
  const heard = s.restartHeardAt;
  if (heard === undefined || now >= heard + START_WAIT_MS || !e.missing.some((m) => m.datedByLaterSignal)) return undefined;
  const startRead = s.startReadAt ?? -Infinity;
  // Known, and a read since has dated the losses by it: the items left to restore are networkd's.
  if (startRead >= heard && (s.damage?.at ?? -Infinity) > startRead) return undefined;
  return heard + START_WAIT_MS;
}

/** A waiting episode with nothing to put back ends once networkd has been quiet for the episode window. */
function endWhenQuiet(run: Run, e: Episode): void {
  const endAt = e.lastActivityAt + run.s.config.episodeMs;
  if (run.now.at >= endAt) return close(run, 'ended');
  setWake(e, endAt, 'reconsider');
}

function rateLimitWait(s: DetectorState, now: number): number {
  s.recentWrites = s.recentWrites.filter((at) => now - at < RATE_WINDOW_MS);
  if (s.recentWrites.length < s.config.rateLimitPerMinute) return 0;
  return RATE_WINDOW_MS - (now - s.recentWrites[0]!);
}

/** Every repairable item is present: a waiting episode healed without a restore; a fighting or failed one is over. */
function whole(run: Run, report: DamageReport): void {
  const e = run.s.episode;
  // Targets that did not answer after a restore are not cured by the items being present.
  if (e?.state === 'failed' && e.targetsFailed) return;
  if (e?.state === 'fighting' || e?.state === 'failed') note(run, e, `every item back (${report.trigger}): resolving this episode's alerts`);
  // Whole again (a Cilium restart, an operator): fighting and failure pages resolve, a replayed one too.
  resolve(run, 'FightingNetworkd');
  resolve(run, 'RestoreFailed');
  if (!e) return;
  if (e.state === 'waiting' && e.missing.length > 0) {
    note(run, e, `items back without a restore (${report.trigger})`);
    return close(run, 'ended');
  }
  if (e.state === 'fighting' || e.state === 'failed') close(run, e.state);
}

/** Items missing without networkd activity: an operator or the CNI removed them. Reported once per distinct set, never repaired. */
function notRepaired(run: Run, missing: MissingItem[], trigger: string): void {
  const { s } = run;
  const key = missing.map((m) => m.key).sort().join('|');
  if (s.unrepaired?.key === key) return;
  const items = missing.map((m) => ({ item: m.label, severity: m.severity }));
  s.unrepaired = { key, wallAt: run.now.wallAt, trigger, items };
  count(run, 'not_repaired');
  if (s.episode) note(run, s.episode, `missing without networkd activity, not repaired: ${items.map((i) => `${i.item} [${i.severity}]`).join('; ')}`);
  run.out.push({
    kind: 'log',
    level: 'warn',
    msg: 'CNI items missing without networkd activity: reported, not repaired (an operator or the CNI removed them; restarting the CNI agent reinstalls its state, and a CNI that dropped them on purpose is adopted once it has settled)',
    fields: { trigger, missing: items },
  });
}

function failed(run: Run, e: Episode, reason: string, restoredButUnreachable: boolean): void {
  e.state = 'failed';
  count(run, 'failed');
  note(run, e, `restore failed after ${e.restores} attempt(s): ${reason}`);
  raise(run, e, { cause: 'RestoreFailed', ...episodeFacts(e), reason, restoredButUnreachable });
}

function fighting(run: Run, e: Episode): void {
  e.state = 'fighting';
  count(run, 'fighting');
  const what = `fighting networkd: items removed again after ${e.restores} restore(s); connwatch stops restoring until networkd restarts again. Fix: ManageForeignRoutingPolicyRules=no and ManageForeignRoutes=no in networkd.conf, or restart the CNI agent`;
  note(run, e, what);
  run.out.push({ kind: 'log', level: 'error', msg: what, fields: { episode: e.id, missing: e.missing.map((m) => m.label) } });
  raise(run, e, { cause: 'FightingNetworkd', ...episodeFacts(e) });
}

// ─── pages ──────────────────────────────────────────────────────────────────────────────────

/**
 * The datapath-damage page: raised on critical loss, resolved when none is left. Its words follow
 * the detector: items the restore will put back (networkd removed them, now or while a previous
 * run's restore was declined) are "after networkd activity".
 */
function damagePage(run: Run, report: DamageReport, repairable: MissingItem[]): void {
  const critical = report.missing.filter((m) => m.severity === 'critical');
  if (critical.length === 0) {
    // Also resolves an alert a previous run raised and the spool replayed (resolving a quiet one is a no-op).
    resolve(run, 'DatapathDamage');
    return;
  }
  const restoring = repairable.length > 0;
  const afterNetworkd = restoring || report.coincidedWithNetworkd;
  const words = `${restoring}|${afterNetworkd}`;
  // Raised once; raised again only when what it says about the restore changes.
  if (run.s.pages.DatapathDamage === 'firing' && run.s.damageWords === words) return;
  run.s.damageWords = words;
  run.out.push({
    kind: 'raise',
    facts: {
      cause: 'DatapathDamage',
      critical: critical.length,
      afterNetworkd,
      restoring,
      trigger: report.trigger,
      missing: report.missing.map((m) => ({ item: m.label, severity: m.severity, profile: m.profile })),
      ...(() => {
        const { upgrade } = upgradeContext(run.s, run.now.at);
        return upgrade ? { upgrade: upgrade.unit } : {};
      })(),
    },
    timeline: [{ wallAt: run.now.wallAt, what: `datapath damage detected (${report.trigger})` }],
    startsAt: run.now.wallAt,
  });
  run.s.pages.DatapathDamage = 'firing';
}

function episodeFacts(e: Episode): { episode: number; trigger: string; restores: number; missing: { item: string; severity: MissingItem['severity'] }[] } {
  return { episode: e.id, trigger: e.trigger, restores: e.restores, missing: e.missing.map((m) => ({ item: m.label, severity: m.severity })) };
}

function raise(run: Run, e: Episode, facts: PageFacts): void {
  run.out.push({ kind: 'raise', facts, timeline: e.timeline.slice(-30), startsAt: e.triggerWall });
  run.s.pages[facts.cause] = 'firing';
}

/** Resolves a page unless this detector already knows it is clear. */
function resolve(run: Run, cause: DetectorCause): void {
  if (run.s.pages[cause] === 'clear') return;
  run.out.push({ kind: 'resolve', cause });
  run.s.pages[cause] = 'clear';
}

// ─── helpers ────────────────────────────────────────────────────────────────────────────────

function current(s: DetectorState, episode: number): Episode | undefined {
  return s.episode?.id === episode ? s.episode : undefined;
}

/** Asks the ladder for an action; one is in flight at a time. */
function ask(run: Run, command: Extract<DetectorCommand, { kind: 'restore' | 'verify' | 'checkTargets' }>): void {
  run.s.busy = { kind: command.kind, episode: command.episode };
  run.out.push(command);
}

/** After an action ends: an episode left waiting with nothing scheduled is reconsidered now. */
function settle(run: Run): void {
  const e = run.s.episode;
  if (e && !e.wake) reconsider(run);
}

function setWake(e: Episode, at: number, what: 'reconsider' | 'verifyStable'): void {
  e.wake = { at, what };
}

function count(run: Run, result: RestoreCount): void {
  run.out.push({ kind: 'count', result });
}

function note(run: Run, e: Episode, what: string, detail?: unknown): void {
  const entry: TimelineEntry = { wallAt: run.now.wallAt, sinceTriggerMs: Math.round((run.now.at - e.triggerAt) * 10) / 10, what, ...(detail === undefined ? {} : { detail }) };
  e.timeline.push(entry);
  if (e.timeline.length > TIMELINE_MAX) e.timeline.splice(1, e.timeline.length - TIMELINE_MAX);
  run.out.push({ kind: 'log', level: 'info', msg: `restore: ${what}`, fields: { episode: e.id, sinceTriggerMs: entry.sinceTriggerMs, ...(detail === undefined ? {} : { detail }) } });
}
