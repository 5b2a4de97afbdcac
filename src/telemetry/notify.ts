/**
 * systemd's notify protocol (READY=1, WATCHDOG=1, STOPPING=1) for `Type=notify` with
 * `NotifyAccess=all`. Node cannot send unix datagrams, so each message is one short
 * `systemd-notify` child: it sends from its own PID (hence NotifyAccess=all) and waits on a
 * barrier until PID 1 has read the message, so the message is never dropped because its sender
 * already exited. Outside systemd (no NOTIFY_SOCKET) every call is a no-op.
 */
import { spawn } from 'node:child_process';
import type { Logger } from 'pino';

/** Runs one notify child; resolves with its exit code, never rejects. */
export type NotifySpawner = (argv: string[], env: NodeJS.ProcessEnv) => Promise<{ code: number; stderr: string }>;

const spawnNotify: NotifySpawner = (argv, env) =>
  new Promise((resolve) => {
    const [cmd, ...args] = argv;
    const child = spawn(cmd!, args, { env, stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000, killSignal: 'SIGKILL' });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err) => resolve({ code: 127, stderr: String(err) }));
    child.on('close', (code) => resolve({ code: code ?? 1, stderr: stderr.trim() }));
  });

export interface NotifierOptions {
  env?: NodeJS.ProcessEnv;
  pid?: number;
  /** argv[0] of the notify helper (default systemd-notify). */
  command?: string;
  spawn?: NotifySpawner;
  log?: Logger;
}

/** Talks to the service manager when there is one. */
export class SystemdNotifier {
  readonly #env: NodeJS.ProcessEnv;
  readonly #command: string;
  readonly #spawn: NotifySpawner;
  readonly #log: Logger | undefined;
  /** How often PID 1 wants WATCHDOG=1 (undefined: no watchdog for this process). */
  readonly watchdogMs: number | undefined;
  #pending: Promise<unknown> = Promise.resolve();
  #failed = false;

  constructor(opts: NotifierOptions = {}) {
    this.#env = opts.env ?? process.env;
    this.#command = opts.command ?? 'systemd-notify';
    this.#spawn = opts.spawn ?? spawnNotify;
    this.#log = opts.log;
    const usec = Number(this.#env['WATCHDOG_USEC']);
    const forPid = this.#env['WATCHDOG_PID'];
    const mine = forPid === undefined || forPid === '' || Number(forPid) === (opts.pid ?? process.pid);
    this.watchdogMs = this.enabled && mine && Number.isFinite(usec) && usec > 0 ? usec / 1000 : undefined;
  }

  /** Whether a service manager listens (NOTIFY_SOCKET is set). */
  get enabled(): boolean {
    return Boolean(this.#env['NOTIFY_SOCKET']);
  }

  ready(status?: string): Promise<void> {
    return this.#send(['--ready', ...(status ? [`--status=${status}`] : [])]);
  }

  watchdog(): Promise<void> {
    return this.#send(['WATCHDOG=1']);
  }

  stopping(): Promise<void> {
    return this.#send(['STOPPING=1']);
  }

  /** One message at a time, in order; a failure is logged once and never thrown. */
  #send(args: string[]): Promise<void> {
    if (!this.enabled) return Promise.resolve();
    const sent = this.#pending.then(async () => {
      const r = await this.#spawn([this.#command, ...args], this.#env);
      if (r.code !== 0 && !this.#failed) {
        this.#failed = true;
        this.#log?.error({ args, code: r.code, stderr: r.stderr }, `${this.#command} failed: systemd may not see readiness or the watchdog (needs NotifyAccess=all and ${this.#command} on PATH)`);
      } else if (r.code === 0) this.#failed = false;
    });
    this.#pending = sent;
    return sent;
  }
}
