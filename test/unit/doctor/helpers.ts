import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll } from 'vitest';
import { runAudit } from '../../../src/doctor/audit.js';
import type { AuditReport, Kind } from '../../../src/doctor/types.js';

const made: string[] = [];
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** A fixture root from { path: text } ("->target" makes a symlink). */
export function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'cw-doctor-'));
  made.push(root);
  for (const [path, text] of Object.entries(files)) {
    const host = join(root, path);
    mkdirSync(dirname(host), { recursive: true });
    if (text.startsWith('->')) symlinkSync(text.slice(2), host);
    else writeFileSync(host, text);
  }
  return root;
}

export const DEBIAN12 = {
  '/etc/os-release': 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
  '/etc/systemd/system/multi-user.target.wants/systemd-networkd.service': '->/lib/systemd/system/systemd-networkd.service',
};

export function dpkg(pkgs: Record<string, string>): string {
  return Object.entries(pkgs)
    .map(([p, v]) => `Package: ${p}\nStatus: install ok installed\nVersion: ${v}\n`)
    .join('\n');
}

export async function audit(files: Record<string, string>): Promise<AuditReport> {
  return runAudit({ root: tree(files), now: () => new Date(0) });
}

export function kindStatus(report: AuditReport, kind: Kind): 'present' | 'absent' | 'skipped' | 'failed' {
  if (report.findings.some((f) => f.kind === kind)) return 'present';
  if (report.absent.includes(kind)) return 'absent';
  if (report.skipped.some((s) => s.kind === kind)) return 'skipped';
  return 'failed';
}
