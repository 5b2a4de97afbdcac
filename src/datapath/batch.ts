/**
 * Writing many items in one `ip -force -batch -` process: the restore re-installs a dozen rules
 * and routes in a few milliseconds instead of one process each (and needs no disk: the batch
 * goes through stdin). `-force` keeps going past a failed line; ip names each failure by line.
 */
import { spawn } from 'node:child_process';
import type { DatapathItem } from '../types.js';
import { describeItem } from './items.js';
import { addArgv } from './writer.js';

/** What adding one item did; EEXIST ("File exists") is success. */
export type BatchResult = { ok: true; result: 'added' | 'exists' } | { ok: false; reason: string };

/**
 * Adds every item, in order, with one ip process per family (a batch line cannot carry -4/-6,
 * and the families do not depend on each other); never deletes.
 */
export async function addItemsBatch(ipArgv: readonly string[], items: readonly DatapathItem[], opts: { timeoutMs: number; signal?: AbortSignal }): Promise<BatchResult[]> {
  const results: BatchResult[] = new Array(items.length);
  await Promise.all(
    ([4, 6] as const).map(async (family) => {
      const indexes = items.flatMap((item, index) => (item.family === family ? [index] : []));
      if (indexes.length === 0) return;
      const familyResults = await runBatch(ipArgv, family, indexes.map((index) => items[index]!), opts);
      indexes.forEach((index, i) => (results[index] = familyResults[i]!));
    }),
  );
  return results;
}

function runBatch(ipArgv: readonly string[], family: 4 | 6, items: readonly DatapathItem[], opts: { timeoutMs: number; signal?: AbortSignal }): Promise<BatchResult[]> {
  const lines: string[] = [];
  const results: (BatchResult | undefined)[] = items.map((item) => {
    try {
      lines.push(addArgv(item).slice(1).join(' '));
      return undefined;
    } catch (err) {
      lines.push('');
      return { ok: false, reason: `${describeItem(item)}: ${(err as Error).message}` };
    }
  });
  const [binary, ...prefix] = ipArgv;
  if (binary === undefined) return Promise.resolve(items.map(() => ({ ok: false, reason: 'datapath.ip.argv is empty' })));
  return new Promise((resolve) => {
    const child = spawn(binary, [...prefix, `-${family}`, '-force', '-batch', '-'], { stdio: ['pipe', 'ignore', 'pipe'], timeout: opts.timeoutMs, killSignal: 'SIGKILL', signal: opts.signal });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (stderr += chunk));
    const finish = (fatal?: string) => {
      const failures = failedLines(stderr);
      resolve(
        results.map((preset, index) => {
          if (preset) return preset;
          if (fatal) return { ok: false, reason: fatal };
          const failure = failures.get(index + 1);
          if (failure === undefined) return { ok: true, result: 'added' };
          if (/File exists/.test(failure)) return { ok: true, result: 'exists' };
          return { ok: false, reason: `ip -${family} ${lines[index]} failed: ${failure || 'no message'}` };
        }),
      );
    };
    child.once('error', (err: NodeJS.ErrnoException) => finish(err.code === 'ENOENT' ? `${binary} not found: install iproute2 or set datapath.ip.argv` : `cannot run ${binary}: ${err.message}`));
    child.once('close', (code, signal) => finish(signal ? `ip -batch killed by ${signal} (timeout ${opts.timeoutMs} ms)` : code !== 0 && failedLines(stderr).size === 0 ? `ip -batch exited ${code}: ${stderr.trim()}` : undefined));
    child.stdin.on('error', () => undefined);
    child.stdin.end(lines.map((line) => line || '# not writable').join('\n') + '\n');
  });
}

/** ip -force -batch prints a failed line's messages, then "Command failed -:<line>". */
function failedLines(stderr: string): Map<number, string> {
  const failures = new Map<number, string>();
  let messages: string[] = [];
  for (const line of stderr.split('\n')) {
    const m = /^Command failed -:(\d+)/.exec(line);
    if (m) {
      failures.set(Number(m[1]), messages.join(' ').trim());
      messages = [];
    } else if (line.trim()) {
      messages.push(line.trim());
    }
  }
  return failures;
}
