/**
 * Hazards in the kernel's current rules (read live, or from ip fixtures under the root): no
 * `lookup local` rule at all, and the CNI's rules installed with a protocol other than kernel
 * (which networkd treats as foreign and removes).
 */
import { ciliumProfile, ProfileSet } from '../datapath/profiles.js';
import { describeItem } from '../datapath/items.js';
import type { AuditInput, CheckResult } from './types.js';
import { foreignCheck } from './networkd.js';

export function lookupLocalCheck(input: AuditInput): CheckResult {
  const live = input.live;
  if (!live) return { status: 'skipped', reason: 'needs the live rules (no --root, or ip fixtures under the root)' };
  if (!live.ok) return { status: 'skipped', reason: `live rules unreadable: ${live.reason}` };
  const families = [...new Set(live.snapshot.rules.map((r) => r.family))].sort();
  const missing = families.filter((family) => !live.snapshot.rules.some((r) => r.family === family && r.action === 'lookup' && r.table === 'local'));
  if (missing.length === 0) return { status: 'absent' };
  return {
    status: 'present',
    finding: {
      severity: 'critical',
      summary: `no \`lookup local\` rule for IPv${missing.join(' and IPv')}: local delivery is broken — not even 127.0.0.1 answers (networkd removed the CNI's relocated pref 100 rule)`,
      evidence: missing.map((family) => ({ file: `${live.source} -${family} rule`, text: `no rule looks up table local (${live.snapshot.rules.filter((r) => r.family === family).length} rules)` })),
      fix: 'now: `ip rule add pref 100 lookup local proto kernel` (and `ip -6 rule add …` for IPv6), or restart the Cilium agent, or let connwatch run restore it; then remove the cause (networkd-foreign-rules)',
    },
  };
}

export function cniProtoCheck(input: AuditInput): CheckResult {
  const live = input.live;
  if (!live) return { status: 'skipped', reason: 'needs the live rules (no --root, or ip fixtures under the root)' };
  if (!live.ok) return { status: 'skipped', reason: `live rules unreadable: ${live.reason}` };
  const profiles = new ProfileSet([ciliumProfile]);
  const foreign = live.snapshot.rules.filter((r) => r.protocol !== 'kernel' && profiles.claimRule(r) !== undefined);
  if (foreign.length === 0) return { status: 'absent' };
  const managed = input.memo('kind:networkd-foreign-rules', () => foreignCheck('ManageForeignRoutingPolicyRules')(input)).status === 'present';
  return {
    status: 'present',
    finding: {
      severity: managed ? 'critical' : 'warning',
      summary: `${foreign.length} of the CNI's rules are not proto kernel, so networkd counts them as foreign${managed ? ' and removes them on its next restart' : ' (it removes them as soon as foreign-rule management is on)'} — Cilium before 1.14 installs them this way`,
      evidence: [...foreign.slice(0, 8).map((r) => ({ file: `${live.source} -${r.family} rule`, text: describeItem(r) })), ...(foreign.length > 8 ? [{ file: live.source, text: `… and ${foreign.length - 8} more` }] : [])],
      fix: 'upgrade Cilium to 1.14 or later (it installs its rules as proto kernel), or set ManageForeignRoutingPolicyRules=no (see networkd-foreign-rules); keep connwatch running to restore them meanwhile',
    },
  };
}
