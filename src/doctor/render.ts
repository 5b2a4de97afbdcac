/** `connwatch doctor` output: human text (severity first, evidence as file:line, the fix) and JSON. */
import type { AuditReport, Finding } from './types.js';

const LABEL: Record<Finding['severity'], string> = { critical: 'CRITICAL', warning: 'WARNING', info: 'INFO' };

function where(e: Finding['evidence'][number]): string {
  return e.line !== undefined ? `${e.file}:${e.line}` : e.file;
}

export function formatHuman(report: AuditReport): string {
  if (report.fatal) return `connwatch doctor: ${report.fatal}\nNothing was audited; give --root a readable directory (default /).\n`;
  const out: string[] = [];
  const systemd = report.systemd ? `systemd ${report.systemd.major} (${report.systemd.source})` : 'systemd version unknown';
  out.push(`connwatch doctor: ${report.root} — ${report.os.pretty || report.os.id || 'unknown OS'}, kernel ${report.os.kernel || 'unknown'}, ${systemd}`);
  out.push(`live datapath: ${report.live.read ? `read (${report.live.source})` : `not read (${report.live.reason})`}`);
  out.push('');
  for (const f of report.findings) {
    out.push(`${LABEL[f.severity]} ${f.kind}`);
    out.push(`  ${f.summary}`);
    for (const e of f.evidence) out.push(`  - ${where(e)}: ${e.text}`);
    out.push(`  fix: ${f.fix}`);
    out.push('');
  }
  const hazards = report.findings.filter((f) => f.severity !== 'info');
  const count = (s: Finding['severity']) => report.findings.filter((f) => f.severity === s).length;
  out.push(
    hazards.length === 0
      ? `No hazards found (${report.absent.length} checks clear${count('info') ? `, ${count('info')} informational` : ''}).`
      : `${hazards.length} hazard${hazards.length === 1 ? '' : 's'}: ${count('critical')} critical, ${count('warning')} warning${count('info') ? `, ${count('info')} informational` : ''}; ${report.absent.length} checks clear.`,
  );
  for (const s of report.skipped) out.push(`not checked: ${s.kind}: ${s.reason}`);
  for (const s of report.failed) out.push(`could not check: ${s.kind}: ${s.reason}`);
  return out.join('\n') + '\n';
}

export function formatJson(report: AuditReport): string {
  return JSON.stringify(report, null, 2) + '\n';
}
