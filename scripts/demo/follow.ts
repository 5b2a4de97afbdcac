import type { Readable } from 'node:stream';

/** One parsed JSON line (a pino record, a probe result, a received page). */
export type JsonLine = Record<string, unknown>;

/** Collects a child's JSON lines as they arrive; non-JSON lines are kept as { text }. */
export function followJsonLines(stream: Readable): { lines: JsonLine[]; waitFor(pred: (l: JsonLine) => boolean, timeoutMs: number, what: string): Promise<JsonLine> } {
  const lines: JsonLine[] = [];
  const waiters = new Set<() => void>();
  let buffered = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const text = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (!text.trim()) continue;
      try {
        lines.push(JSON.parse(text) as JsonLine);
      } catch {
        lines.push({ text });
      }
    }
    for (const wake of waiters) wake();
  });
  return {
    lines,
    waitFor(pred, timeoutMs, what) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = lines.find(pred);
          if (!hit) return;
          cleanup();
          resolve(hit);
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
  };
}

/** For each target, the longest run of failed probes after t0 ({start: last success before, end: first success after}), or null. */
export function probeOutages(probes: { t: number; target: string; ok: boolean }[], t0: number): Record<string, { start: number; end: number } | null> {
  const result: Record<string, { start: number; end: number } | null> = {};
  const byTarget = new Map<string, { t: number; ok: boolean }[]>();
  for (const p of probes) byTarget.set(p.target, [...(byTarget.get(p.target) ?? []), p]);
  for (const [target, list] of byTarget) {
    let lastOk: number | undefined;
    let worst: { start: number; end: number } | null = null;
    let failedSince = false;
    for (const p of list) {
      if (p.ok) {
        if (failedSince && lastOk !== undefined && p.t >= t0 && (!worst || p.t - lastOk > worst.end - worst.start)) worst = { start: lastOk, end: p.t };
        failedSince = false;
        lastOk = p.t;
      } else {
        failedSince = true;
      }
    }
    result[target] = worst;
  }
  return result;
}
