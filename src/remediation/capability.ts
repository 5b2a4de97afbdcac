import { readFileSync } from 'node:fs';

/** Whether this process holds CAP_NET_ADMIN (bit 12 of CapEff), needed to re-install rules and routes. */
export function hasNetAdmin(statusText?: string): { ok: boolean; reason?: string } {
  let text = statusText;
  try {
    text ??= readFileSync('/proc/self/status', 'utf8');
  } catch (err) {
    return { ok: false, reason: `cannot read /proc/self/status: ${(err as Error).message}` };
  }
  const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(text)?.[1];
  if (!hex) return { ok: false, reason: 'CapEff not found in /proc/self/status' };
  const ok = (BigInt('0x' + hex) & (1n << 12n)) !== 0n;
  return ok ? { ok } : { ok, reason: 'no CAP_NET_ADMIN: the restore rung is skipped; grant it (systemd AmbientCapabilities=CAP_NET_ADMIN, or the pod securityContext)' };
}
