/**
 * Running the `ip` binary: argv prefix from config (tests use ['ip', '-n', ns]), hard timeout,
 * failure as data. Nothing here interprets output.
 */
import { execFile } from 'node:child_process';

/** What one `ip` invocation produced. */
export type IpRun =
  | { ok: true; stdout: string; stderr: string }
  | { ok: false; reason: string; hint: string; stderr: string; code?: number | string };

/** Runs `ip` commands, `input` on its stdin (the commands of `-batch -`); injected so that tests can fake the kernel. */
export type IpRunner = (args: string[], signal?: AbortSignal, input?: string) => Promise<IpRun>;

export interface IpRunnerOptions {
  /** The argv that starts ip, e.g. ['ip'] or ['ip', '-n', 'lab-node']. */
  argv: string[];
  /** Kill ip after this long. */
  timeoutMs: number;
}

const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;

/** A runner that execs the configured ip binary. */
export function execIpRunner(options: IpRunnerOptions): IpRunner {
  const [binary, ...prefix] = options.argv;
  if (binary === undefined) throw new Error('datapath.ip.argv is empty; give the ip binary, e.g. ["ip"]');
  return (args, signal, input) =>
    new Promise<IpRun>((resolve) => {
      const argv = [...prefix, ...args];
      const child = execFile(
        binary,
        argv,
        { timeout: options.timeoutMs, killSignal: 'SIGKILL', maxBuffer: MAX_OUTPUT_BYTES, encoding: 'utf8', signal },
        (err, stdout, stderr) => {
          if (!err) return resolve({ ok: true, stdout, stderr });
          const failure = err as NodeJS.ErrnoException & { killed?: boolean; signal?: string };
          const command = [binary, ...argv].join(' ');
          if (failure.code === 'ENOENT') {
            return resolve({ ok: false, reason: `${binary} not found`, hint: 'install iproute2 or set datapath.ip.argv', stderr, code: 'ENOENT' });
          }
          if (failure.name === 'AbortError') {
            return resolve({ ok: false, reason: `${command} aborted`, hint: 'the agent is stopping', stderr, code: 'ABORT_ERR' });
          }
          if (failure.killed || failure.signal === 'SIGKILL') {
            return resolve({
              ok: false,
              reason: `${command} did not finish within ${options.timeoutMs} ms`,
              hint: 'the kernel or ip is stuck; check `ip rule` by hand, or raise datapath.ip.timeoutMs',
              stderr,
              code: 'ETIMEDOUT',
            });
          }
          resolve({
            ok: false,
            reason: `${command} failed: ${stderr.trim() || failure.message}`,
            hint: /Operation not permitted/.test(stderr) ? 'connwatch needs CAP_NET_ADMIN to change rules and routes' : 'run the same ip command by hand to see why',
            stderr,
            code: typeof failure.code === 'number' ? failure.code : String(failure.code ?? ''),
          });
        },
      );
      // ip may fail before it reads its commands: a closed pipe is its exit's business, not ours.
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(input ?? '');
    });
}

/**
 * Answers `-batch -` invocations with a runner that only knows single commands (the doctor's
 * recorded listings, tests' fakes): one line of output per command, stopping at the first failure
 * the way ip does without `-force`.
 */
export function answeringBatches(run: IpRunner): IpRunner {
  return async (args, signal, input) => {
    const at = args.indexOf('-batch');
    if (at < 0) return run(args, signal, input);
    const options = args.filter((_, i) => i !== at && i !== at + 1);
    const lines: string[] = [];
    for (const command of (input ?? '').split('\n').filter((l) => l.trim() !== '')) {
      const result = await run([...options, ...command.trim().split(/\s+/)], signal);
      if (!result.ok) return result;
      lines.push(result.stdout.trim());
    }
    return { ok: true, stdout: lines.map((l) => `${l}\n`).join(''), stderr: '' };
  };
}
