/**
 * A continuous TCP probe stream for the demo and the benchmarks: connects to each target every
 * `intervalMs` (one attempt in flight per target) and prints one JSON line per attempt:
 * {"t": <epoch ms with µs>, "target": "host:port", "ok": true|false, "ms": <connect time>, "err"?: code}.
 * Runs until SIGTERM. Usage: probe-stream.ts <intervalMs> <timeoutMs> host:port [host:port …]
 */
import { connect } from 'node:net';

const [intervalArg, timeoutArg, ...targets] = process.argv.slice(2);
const intervalMs = Number(intervalArg);
const timeoutMs = Number(timeoutArg);
if (!(intervalMs > 0) || !(timeoutMs > 0) || targets.length === 0) {
  process.stderr.write('usage: probe-stream.ts <intervalMs> <timeoutMs> host:port [host:port …]\n');
  process.exit(2);
}

const epochAtStart = Date.now() - performance.now();
const nowMs = (): number => Math.round((epochAtStart + performance.now()) * 1000) / 1000;
let stopping = false;

function attempt(target: string): Promise<void> {
  const sep = target.lastIndexOf(':');
  const host = target.slice(0, sep).replace(/^\[|\]$/g, '');
  const port = Number(target.slice(sep + 1));
  const started = performance.now();
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean, err?: string) => {
      clearTimeout(timer);
      socket.destroy();
      process.stdout.write(JSON.stringify({ t: nowMs(), target, ok, ms: Math.round((performance.now() - started) * 10) / 10, ...(err ? { err } : {}) }) + '\n');
      resolve();
    };
    const timer = setTimeout(() => done(false, 'timeout'), timeoutMs);
    socket.once('connect', () => done(true));
    socket.once('error', (e: NodeJS.ErrnoException) => done(false, e.code ?? e.message));
  });
}

async function loop(target: string): Promise<void> {
  while (!stopping) {
    const started = performance.now();
    await attempt(target);
    const wait = intervalMs - (performance.now() - started);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
}

process.on('SIGTERM', () => {
  stopping = true;
});
await Promise.all(targets.map(loop));
