import type { CliIO } from './types.js';
import { EXIT } from './exit.js';
import { formatConfigErrors, loadConfig, type Config, type ConfigFlags } from './config/index.js';
import { BaselineCore, describeItem, execIpRunner, readDatapath, resolveProfiles, type Member } from './datapath/index.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseBaselineFile } from './datapath/store.js';

/** What `connwatch check` concludes, printed as text or JSON. */
export interface CheckResult {
  verdict: 'healthy' | 'broken' | 'cannot-tell';
  reasons: string[];
  baseline: { members: number; file: string; note: string };
  missing: { item: string; severity: string; profile: string; source: string }[];
}

const EXIT_CODE: Record<CheckResult['verdict'], number> = { healthy: EXIT.ok, broken: EXIT.problem, 'cannot-tell': EXIT.usage };

/**
 * `connwatch check`: one-shot diagnosis of this node's datapath against the saved CNI baseline
 * and the profiles' invariants (a missing `lookup local` is broken even with no baseline).
 * Exit 0 healthy, 1 broken, 2 cannot tell (configuration error, ip unreadable, baseline unusable).
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

/** Reads the datapath once and diffs it against the saved baseline; never writes anything. */
export async function diagnose(config: Config): Promise<CheckResult> {
  const profiles = resolveProfiles(config.datapath.profiles, config.datapath.extraProfiles);
  const baseline = { members: 0, file: join(config.stateDir, config.datapath.baselineFile), note: '' };
  const cannotTell = (reason: string): CheckResult => ({ verdict: 'cannot-tell', reasons: [reason], baseline, missing: [] });
  if (!profiles.ok) return cannotTell(profiles.reason);

  const read = await readDatapath(execIpRunner(config.datapath.ip), () => performance.now());
  if (!read.ok) return cannotTell(`cannot read the datapath: ${read.reason} (${read.hint})`);
  const saved = readSavedBaseline(baseline.file);
  if (!saved.ok) return cannotTell(`baseline unusable: ${saved.reason}; the agent moves a corrupt file aside and relearns`);
  baseline.members = saved.members.length;
  baseline.note = saved.fresh ? 'no saved baseline: only the profiles\' invariants are checked' : `saved baseline with ${saved.members.length} members`;

  const core = new BaselineCore(profiles.profiles, { ...config.datapath.learn, clusterPodCidrs: config.datapath.clusterPodCidrs }, saved.members);
  const report = core.assess(read.snapshot, 'check', read.snapshot.at);
  // A one-shot read has no history, so per-pod items the agent would hold back as likely pod churn count as missing here.
  const missing = [...report.missing, ...report.withheld].map((m) => ({ item: describeItem(m.item), severity: m.severity, profile: m.profile, source: m.source }));
  if (missing.length === 0) return { verdict: 'healthy', reasons: ['every CNI baseline item and invariant is present'], baseline, missing };
  const critical = missing.filter((m) => m.severity === 'critical').length;
  return {
    verdict: 'broken',
    reasons: [`${missing.length} CNI datapath item(s) missing (${critical} critical)`],
    baseline,
    missing,
  };
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
  const lines = [`${result.verdict.toUpperCase()}: ${result.reasons.join('; ')}`, `baseline: ${result.baseline.note || 'not read'} (${result.baseline.file})`];
  for (const m of result.missing) lines.push(`  missing [${m.severity}] ${m.item}  (${m.profile}, ${m.source})`);
  return lines.join('\n') + '\n';
}
