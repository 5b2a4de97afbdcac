import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import { formatConfigErrors, loadConfig, type Config, type ConfigFlags } from './config/index.js';
import { BaselineCore, describeItem, execIpRunner, readDatapath, resolveProfiles, type Member } from './datapath/index.js';
import { initialState, step, verdictOf, type DetectorState } from './detector/index.js';
import { EXIT } from './exit.js';
import { systemClock } from './lifecycle.js';
import { buildProbes } from './probes/index.js';
import { detectorConfigOf } from './remediation/detector-config.js';
import { parseBaselineFile } from './datapath/store.js';
import type { BoxContext, CliIO, DamageReport, ProbeObservation, ProbeRound, Verdict, VerdictKind } from './types.js';

/** What `connwatch check` concludes, printed as text or JSON. */
export interface CheckResult {
  verdict: 'healthy' | 'broken' | 'cannot-tell';
  /** The detector's verdict kind (Healthy, ReadyButNoPodNetwork, NodeOffline, CiliumUnhealthy, PeerProblem, CannotTell). */
  kind: VerdictKind;
  reasons: string[];
  baseline: { members: number; file: string; note: string };
  missing: { item: string; severity: string; profile: string; source: string }[];
  /** The last probe round, per probe, and how many rounds the burst ran. */
  probes: { rounds: number; peers: string; results: ProbeObservation[] };
}

/** Broken verdicts exit 1; PeerProblem and CiliumUnhealthy are not this node's pod network (exit 0). */
const OUTCOME: Record<VerdictKind, CheckResult['verdict']> = {
  Healthy: 'healthy',
  PeerProblem: 'healthy',
  CiliumUnhealthy: 'healthy',
  ReadyButNoPodNetwork: 'broken',
  NodeOffline: 'broken',
  CannotTell: 'cannot-tell',
};
const EXIT_CODE: Record<CheckResult['verdict'], number> = { healthy: EXIT.ok, broken: EXIT.problem, 'cannot-tell': EXIT.usage };

/**
 * `connwatch check`: one-shot diagnosis with the same configuration as `run`. Reads the datapath
 * once against the saved CNI baseline and the profiles' invariants (a missing `lookup local` is
 * broken even with no baseline), runs one probe burst, and weighs both with the detector. Exit 0
 * healthy, 1 broken, 2 cannot tell. It never acts and changes nothing.
 */
export async function runCheckCommand(values: Record<string, unknown>, io: CliIO): Promise<number> {
  const loaded = loadConfig({ configPath: values.config as string | undefined, env: process.env, flags: values as ConfigFlags });
  if (!loaded.ok) {
    io.stderr(formatConfigErrors(loaded.errors));
    return EXIT_CODE['cannot-tell'];
  }
  const result = await diagnose(loaded.config);
  io.stdout(values.json ? JSON.stringify(result, null, 2) + '\n' : formatCheck(result));
  return EXIT_CODE[result.verdict];
}

/** The datapath read and the probe burst, weighed by the detector. */
export async function diagnose(config: Config): Promise<CheckResult> {
  const baseline = { members: 0, file: join(config.stateDir, config.datapath.baselineFile), note: '' };
  const profiles = resolveProfiles(config.datapath.profiles, config.datapath.extraProfiles);
  if (!profiles.ok) return { verdict: 'cannot-tell', kind: 'CannotTell', reasons: [profiles.reason], baseline, missing: [], probes: { rounds: 0, peers: 'not run', results: [] } };
  const clock = systemClock;
  let state = initialState(detectorConfigOf(config, profiles.profiles.flatMap((p) => p.devices), { ok: false, reason: 'check never acts' }));
  const notes: string[] = [];
  const datapath = await readDamage(config, profiles.profiles, baseline);
  if (datapath.ok) state = step(state, { kind: 'damage', report: datapath.report }, { at: clock.monotonic(), wallAt: clock.now() }).state;
  else notes.push(datapath.reason);
  const burst = await probeBurst(config, (round) => {
    state = step(state, { kind: 'probes', round }, { at: round.at, wallAt: round.wallAt }).state;
  });
  const verdict = verdictOf(state);
  return {
    verdict: OUTCOME[verdict.kind],
    kind: verdict.kind,
    reasons: reasonsOf(verdict, notes, state),
    baseline,
    missing: datapath.ok ? datapath.missing : [],
    probes: burst,
  };
}

function reasonsOf(verdict: Verdict, notes: string[], state: DetectorState): string[] {
  const reasons = [...notes, ...verdict.reasons.filter((r) => !(notes.length > 0 && r === 'no datapath read yet'))];
  const p = state.probes.last;
  if (p && verdict.basis !== 'probes' && !reasons.some((r) => r.startsWith('probes:'))) reasons.push(`probes: ${p.reasons[0] ?? ''}`);
  return reasons;
}

type DamageRead = { ok: true; report: DamageReport; missing: CheckResult['missing'] } | { ok: false; reason: string };

/** One read of the datapath against the saved baseline; never writes (the agent owns the file). */
async function readDamage(config: Config, profiles: ConstructorParameters<typeof BaselineCore>[0], baseline: CheckResult['baseline']): Promise<DamageRead> {
  const read = await readDatapath(execIpRunner(config.datapath.ip), () => performance.now());
  if (!read.ok) return { ok: false, reason: `cannot read the datapath: ${read.reason} (${read.hint})` };
  const saved = readSavedBaseline(baseline.file);
  if (!saved.ok) return { ok: false, reason: `baseline unusable: ${saved.reason}; the agent moves a corrupt file aside and relearns` };
  baseline.members = saved.members.length;
  baseline.note = saved.fresh ? "no saved baseline: only the profiles' invariants are checked" : `saved baseline with ${saved.members.length} members`;
  const core = new BaselineCore(profiles, { ...config.datapath.learn, clusterPodCidrs: config.datapath.clusterPodCidrs }, saved.members);
  const report = core.assess(read.snapshot, 'check', read.snapshot.at);
  // A one-shot read has no history, so per-pod items the agent would hold back as likely pod churn count as missing here.
  const all = [...report.missing, ...report.withheld];
  return {
    ok: true,
    report: { ...report, at: systemClock.monotonic(), missing: all },
    missing: all.map((m) => ({ item: describeItem(m.item), severity: m.severity, profile: m.profile, source: m.source ?? 'baseline' })),
  };
}

/** One burst of probe rounds, as `run` would probe after a signal. */
async function probeBurst(config: Config, onRound: (round: ProbeRound) => void): Promise<CheckResult['probes']> {
  const log = pino({ level: 'silent' });
  const ctx: BoxContext = { clock: systemClock, log, metrics: new Registry(), status: { publish: () => undefined } };
  let last: ProbeRound | undefined;
  // The rounds are driven here, one after the other; the runner's own schedule is not used.
  const probes = buildProbes(config, ctx, () => undefined);
  if (!probes) return { rounds: 0, peers: 'probes disabled (probes.enabled: false)', results: [] };
  await probes.runner.start();
  let rounds = 0;
  try {
    for (let i = 0; i < config.probes.burst.rounds; i++) {
      const started = performance.now();
      const round = await probes.runner.runRound(true);
      if (!round) break;
      rounds++;
      last = round;
      onRound(round);
      const wait = config.probes.burst.intervalMs - (performance.now() - started);
      if (wait > 0 && i + 1 < config.probes.burst.rounds) await new Promise((r) => setTimeout(r, wait));
    }
  } finally {
    await probes.stop();
  }
  const peers = probes.runner.peers();
  return { rounds, peers: `${peers.source}${peers.detail ? ` (${peers.detail})` : ''}`, results: last?.results ?? [] };
}

/** Reads the agent's baseline file without touching it (check must change nothing). */
function readSavedBaseline(path: string): { ok: true; members: Member[]; fresh: boolean } | { ok: false; reason: string } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { ok: true, members: [], fresh: true };
    return { ok: false, reason: `cannot read ${path}: ${(err as Error).message}` };
  }
  const parsed = parseBaselineFile(text);
  return parsed.ok ? { ok: true, members: parsed.members, fresh: false } : { ok: false, reason: parsed.reason };
}

export function formatCheck(result: CheckResult): string {
  const lines = [`${result.verdict.toUpperCase()} (${result.kind}): ${result.reasons.join('; ')}`, `baseline: ${result.baseline.note || 'not read'} (${result.baseline.file})`];
  for (const m of result.missing) lines.push(`  missing [${m.severity}] ${m.item}  (${m.profile}, ${m.source})`);
  lines.push(`probes: ${result.probes.rounds} round(s), peers from ${result.probes.peers}`);
  for (const p of result.probes.results) {
    const latency = p.latencyMs === undefined ? '' : ` ${p.latencyMs} ms`;
    lines.push(`  ${p.ok ? 'ok  ' : 'FAIL'} ${p.kind.padEnd(12)} ${p.target}${latency}${p.ok ? '' : `  ${p.code ?? ''}: ${p.reason ?? ''}`}`);
  }
  return lines.join('\n') + '\n';
}
