/** Cilium's CNI configuration: /etc/cni/net.d/*cilium* is written by the agent; without it the node has no (or another) CNI. */
import type { AuditInput, CheckResult } from './types.js';

export function ciliumCniCheck(input: AuditInput): CheckResult {
  const confs = input.fs.list('/etc/cni/net.d');
  if (confs.some((n) => n.includes('cilium'))) return { status: 'absent' };
  const signs: string[] = [];
  const devices = input.interfaces.filter((n) => n.startsWith('cilium_') || n.startsWith('lxc'));
  if (devices.length > 0) signs.push(`Cilium's devices are present (${devices.slice(0, 3).join(', ')})`);
  if (input.fs.exists('/var/run/cilium/cilium.sock') || input.fs.exists('/run/cilium/cilium.sock')) signs.push("Cilium's agent socket exists");
  const others = confs.filter((n) => /\.(conf|conflist|json)$/.test(n));
  if (others.length > 0) signs.push(`other CNI configuration: ${others.join(', ')}`);
  if (signs.length === 0) return { status: 'absent', note: 'no sign of Cilium or another CNI on this host' };
  return {
    status: 'present',
    finding: {
      severity: 'warning',
      summary: `Cilium's CNI configuration is absent from /etc/cni/net.d while ${signs.join('; ')}: new pods get no network (or another CNI's), and connwatch's Cilium profile has nothing to protect`,
      evidence: [{ file: '/etc/cni/net.d', text: confs.length > 0 ? `contains ${confs.join(', ')}; no *cilium* file` : 'empty or missing' }],
      fix: 'check the cilium agent on this node (it writes 05-cilium.conflist at start: `kubectl -n kube-system logs ds/cilium`), and whether cni.exclusive / another CNI removed it',
    },
  };
}
