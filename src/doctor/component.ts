/**
 * The hazard audit inside the agent: at start and every doctor.intervalSeconds, in a worker
 * thread that ends after each audit (nothing it loads stays in the agent), exporting
 * connwatch_hazard{kind} (1 present, 0 absent; no series for a kind that could not be checked)
 * and a `doctor` status section. Imports nothing of the audit itself.
 */
import { Worker } from 'node:worker_threads';
import { Gauge } from 'prom-client';
import type { Component } from '../lifecycle.js';
import type { BoxContext } from '../types.js';
import type { AuditOptions } from './audit.js';
import type { DoctorConfig } from './config.js';
import { KINDS, type AuditReport } from './types.js';

/** An audit that has not answered by then is stopped (a hung ip or networkctl). */
const AUDIT_TIMEOUT_MS = 60_000;

/** Runs one audit in a worker thread; resolves to its report, or to why there is none. */
export function auditInWorker(options: AuditOptions, timeoutMs = AUDIT_TIMEOUT_MS): Promise<{ ok: true; report: AuditReport } | { ok: false; reason: string }> {
  // Under the TypeScript sources (tests) the worker needs tsx; the build runs worker.js as is.
  const ts = import.meta.url.endsWith('.ts');
  const url = new URL(ts ? './worker.ts' : './worker.js', import.meta.url);
  return new Promise((resolve) => {
    let settled = false;
    const done = (value: { ok: true; report: AuditReport } | { ok: false; reason: string }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void worker.terminate();
      resolve(value);
    };
    const worker = new Worker(url, { workerData: options, execArgv: ts ? ['--import', 'tsx'] : [], stdout: false, stderr: false });
    // The agent may stop while an audit runs: a worker never holds the process up.
    worker.unref();
    const timer = setTimeout(() => done({ ok: false, reason: `the audit did not finish within ${timeoutMs} ms` }), timeoutMs);
    timer.unref();
    worker.once('message', (report: AuditReport) => done({ ok: true, report }));
    worker.once('error', (err) => done({ ok: false, reason: err.message }));
    worker.once('exit', (code) => done({ ok: false, reason: `the audit worker exited (${code}) without a report` }));
  });
}

export interface DoctorComponentOptions {
  ctx: BoxContext;
  config: DoctorConfig;
  /** The agent's ip (datapath.ip), for the live checks. */
  ip: { argv: string[]; timeoutMs: number };
}

/** The agent's doctor: a lifecycle component with an unref'd timer. */
export function doctorComponent({ ctx, config, ip }: DoctorComponentOptions): Component & { audited(): Promise<void> } {
  const gauge = new Gauge({ name: 'connwatch_hazard', help: 'A hazard behind the incident is present on this node (1) or not (0), by kind (see connwatch doctor).', labelNames: ['kind'], registers: [ctx.metrics] });
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  let stopped = false;
  const audit = async () => {
    const started = ctx.clock.monotonic();
    const result = await auditInWorker({ root: config.root, ip, self: true });
    if (stopped) return;
    if (!result.ok) {
      ctx.log.warn({ reason: result.reason }, 'hazard audit failed');
      ctx.status.publish('doctor', { ok: false, reason: result.reason });
      return;
    }
    const { report } = result;
    const present = new Set(report.findings.map((f) => f.kind));
    const unknown = new Set([...report.skipped, ...report.failed].map((s) => s.kind));
    for (const kind of KINDS) {
      if (present.has(kind) && !unknown.has(kind)) gauge.set({ kind }, 1);
      else if (unknown.has(kind) || report.fatal) gauge.remove({ kind });
      else gauge.set({ kind }, 0);
    }
    const hazards = report.findings.map((f) => ({ kind: f.kind, severity: f.severity, summary: f.summary }));
    ctx.status.publish('doctor', { ok: !report.fatal, at: report.at, root: report.root, hazards, skipped: report.skipped, failed: report.failed, fatal: report.fatal, durationMs: report.durationMs });
    const level = report.findings.some((f) => f.severity === 'critical') ? 'warn' : 'info';
    ctx.log[level]({ hazards: hazards.map((h) => `${h.severity}:${h.kind}`), tookMs: Math.round(ctx.clock.monotonic() - started) }, 'hazard audit done (connwatch doctor for details)');
  };
  const kick = () => {
    running = running.then(audit).catch((err: unknown) => ctx.log.error({ err }, 'hazard audit crashed (a bug)'));
    return running;
  };
  return {
    name: 'doctor',
    // Not awaited: the first audit runs beside the agent's start, never holding it up.
    start: async () => {
      if (!config.enabled) return;
      void kick();
      timer = setInterval(() => void kick(), config.intervalSeconds * 1000);
      timer.unref();
    },
    stop: async () => {
      stopped = true;
      if (timer) clearInterval(timer);
      // An audit still running is abandoned (its worker is unref'd), never waited on past a second.
      await Promise.race([running, new Promise((r) => setTimeout(r, 1_000).unref())]);
    },
    audited: () => running,
  };
}
