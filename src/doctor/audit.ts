/**
 * The audit: gather facts under a root, run every check (one failing check never fails the
 * audit), and report findings by severity. Imported only while an audit runs.
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { CHECKS } from './registry.js';
import { gatherFacts, type FactOptions } from './facts.js';
import { RootFs } from './rootfs.js';
import { KINDS, type AuditInput, type AuditReport, type Finding, type Severity } from './types.js';

export interface AuditOptions {
  /** The filesystem root to audit; "/" (the default) is the live host. */
  root?: string;
  ip?: FactOptions['ip'];
  self?: boolean;
  /** Fixed time for golden outputs. */
  now?: () => Date;
}

const ORDER: Record<Severity, number> = { critical: 0, warning: 1, info: 2 };

export async function runAudit(options: AuditOptions = {}): Promise<AuditReport> {
  const started = performance.now();
  const root = resolve(options.root ?? '/');
  const at = (options.now ?? (() => new Date()))().toISOString();
  const empty = { root, at, systemd: null, os: { id: '', versionId: '', pretty: '', kernel: '', source: '' }, live: { read: false, source: null, reason: null }, findings: [], absent: [], skipped: [], failed: [] };
  try {
    if (!statSync(root).isDirectory()) throw new Error('not a directory');
  } catch (err) {
    return { ...empty, durationMs: performance.now() - started, fatal: `cannot audit ${root}: ${(err as Error).message}` };
  }
  const fs = new RootFs(root);
  let facts: Omit<AuditInput, 'memo'>;
  try {
    facts = await gatherFacts(fs, { live: root === '/', ip: options.ip, self: options.self });
  } catch (err) {
    return { ...empty, durationMs: performance.now() - started, fatal: `cannot read ${root}: ${(err as Error).message}` };
  }
  const cache = new Map<string, unknown>();
  const input: AuditInput = {
    ...facts,
    memo: <T>(key: string, compute: () => T): T => {
      if (!cache.has(key)) cache.set(key, compute());
      return cache.get(key) as T;
    },
  };
  const report: AuditReport = {
    ...empty,
    systemd: facts.systemd ?? null,
    os: facts.os,
    live: facts.live ? (facts.live.ok ? { read: true, source: facts.live.source, reason: null } : { read: false, source: null, reason: facts.live.reason }) : { read: false, source: null, reason: 'not the live host and no ip fixtures under the root' },
    findings: [] as Finding[],
    durationMs: 0,
    fatal: null,
  };
  for (const kind of KINDS) {
    try {
      const result = CHECKS[kind](input);
      if (result.status === 'present') report.findings.push({ kind, ...result.finding });
      else if (result.status === 'absent') report.absent.push(kind);
      else report.skipped.push({ kind, reason: result.reason });
    } catch (err) {
      report.failed.push({ kind, reason: (err as Error).message });
    }
  }
  report.findings.sort((a, b) => ORDER[a.severity] - ORDER[b.severity] || KINDS.indexOf(a.kind) - KINDS.indexOf(b.kind));
  report.durationMs = Math.round((performance.now() - started) * 10) / 10;
  return report;
}

/** 0 none, 1 hazards (critical or warning), 2 cannot audit (nothing readable, or a check failed with no hazard found). */
export function exitCodeOf(report: AuditReport): 0 | 1 | 2 {
  if (report.fatal) return 2;
  if (report.findings.some((f) => f.severity !== 'info')) return 1;
  return report.failed.length > 0 ? 2 : 0;
}
