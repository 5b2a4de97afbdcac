/**
 * The bare-metal Cilium restart. In Kubernetes the agent asks and the controller grants and
 * executes; on bare metal each host is its own fleet of one, so this reporter takes the ladder's
 * requests itself: a `restartCilium` request passes the action gate, waits a stagger taken from a
 * hash of the node name and the per-host rate limit, restarts the unit through PID 1
 * (`RestartUnit`, the job matched by its path, a new InvocationID as proof), then hands the
 * detector a synthetic executed grant — which it verifies exactly as it verifies the controller's.
 * A restart that did not fix the node is retried while the request stands, no faster than the
 * rate limit, until the detector asks for quarantine instead; quarantine has no bare-metal
 * executor and is journalled (once per incident) as not available.
 */
import { createHash, randomUUID } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/index.js';
import type { Component } from '../lifecycle.js';
import { ReconnectingBus, resolveSystemBusAddress } from '../signals/bus-connection.js';
import { Systemd1UnitControl, type UnitRestarter, type UnitRestartResult } from '../signals/systemd1.js';
import type { ActionRequest, BoxContext, ChannelGrant, ChannelRequest, ChannelStatus, GateResult, NodeReporter } from '../types.js';
import type { LocalRestartConfig } from './local-restart-config.js';

export { localRestartConfig, type LocalRestartConfig } from './local-restart-config.js';

/** The state file that keeps the rate limit across agent restarts. */
export const LOCAL_RESTART_FILE = 'local-restart.json';

/** The part of the action gate this component uses. */
export interface RestartGate {
  submit(request: ActionRequest): Promise<GateResult>;
  hold(request: Pick<ActionRequest, 'kind' | 'summary' | 'evidence'>, why: string): void;
}

export interface LocalRestartDeps {
  ctx: BoxContext;
  config: LocalRestartConfig;
  /** The unit to restart (signals.units.cilium: the same unit whose restarts are heard). */
  unit: string;
  /** This host's name: the stagger's hash input. */
  node: string;
  stateDir: string;
  /** ladder.verifySeconds: the synthetic grant's life. */
  verifySeconds: number;
  gate: RestartGate;
  restarter: UnitRestarter;
  /** Where the synthetic executed grant goes (ladder.onGrants). */
  onGrants(grants: ChannelGrant[]): void;
  newId?: () => string;
}

/** A stable delay in [0, staggerSeconds) for this host: the first 32 bits of sha256(node). */
export function staggerDelayMs(node: string, staggerSeconds: number): number {
  const windowMs = Math.round(staggerSeconds * 1000);
  if (windowMs <= 0) return 0;
  const h = createHash('sha256').update(node).digest().readUInt32BE(0);
  return Math.floor((h / 2 ** 32) * windowMs);
}

interface Schedule {
  timer: NodeJS.Timeout;
  dueAt: number;
  why: 'stagger' | 'rate-limit';
}

/** The bare-metal NodeReporter: executes the restartCilium rung locally; one per agent. */
export class LocalCiliumRestart implements NodeReporter {
  readonly #d: LocalRestartDeps;
  readonly #abort = new AbortController();
  readonly #staggerMs: number;
  /** The request that stands (restartCilium only). */
  #want: { request: ChannelRequest; receivedAt: number } | undefined;
  #schedule: Schedule | undefined;
  #inFlight: Promise<void> | undefined;
  /** The synthetic grant the detector is verifying. */
  #awaiting: string | undefined;
  #lastAttemptAt: number | undefined;
  #attempts = 0;
  #last: { at: string; decision: string; ok?: boolean; detail: unknown } | undefined;
  #lastVerification: ChannelStatus['verified'] | undefined;
  #quarantineNoted = false;
  #stopped = false;

  constructor(deps: LocalRestartDeps) {
    this.#d = deps;
    this.#staggerMs = staggerDelayMs(deps.node, deps.config.staggerSeconds);
    this.#lastAttemptAt = readLastAttempt(deps.stateDir);
    this.#publish();
  }

  verdict(): void {}

  restored(): void {}

  request(request: ChannelRequest | undefined): void {
    if (this.#stopped) return;
    const { log } = this.#d.ctx;
    if (!request) {
      if (this.#want || this.#schedule) log.info('local restart: request withdrawn (the node is healthy again)');
      this.#want = undefined;
      this.#quarantineNoted = false;
      this.#attempts = 0;
      this.#cancel();
      return this.#publish();
    }
    if (request.rung === 'quarantine') {
      this.#want = undefined;
      this.#cancel();
      if (!this.#quarantineNoted) {
        this.#quarantineNoted = true;
        // Remediation never pages: the Broken verdict's page is already out and stays firing.
        this.#d.gate.hold({ kind: 'quarantine', summary: `quarantine ${this.#d.node}`, evidence: { request } }, 'not available on bare metal: a human must take this host out of service');
        log.error({ request }, 'local restart: quarantine requested but not available on bare metal; the host stays Broken and paged');
      }
      return this.#publish();
    }
    const fresh = this.#want === undefined;
    this.#want = { request, receivedAt: fresh ? this.#d.ctx.clock.now() : this.#want!.receivedAt };
    if (fresh) this.#attempts = 0;
    if (!this.#schedule && !this.#inFlight && !this.#awaiting) this.#plan();
    this.#publish();
  }

  verified(verification: NonNullable<ChannelStatus['verified']>): void {
    if (verification.grant !== this.#awaiting) return;
    this.#awaiting = undefined;
    this.#lastVerification = verification;
    this.#d.ctx.log[verification.ok ? 'info' : 'warn']({ verification }, `local restart: ${this.#d.unit} restart ${verification.ok ? 'fixed the node' : 'did not fix the node'}`);
    if (!verification.ok && this.#want && !this.#stopped) this.#plan();
    this.#publish();
  }

  /** Cancels what is scheduled and waits for a restart in flight (aborted). */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#cancel();
    this.#abort.abort(new Error('connwatch is stopping'));
    await this.#inFlight;
  }

  /** What /status shows under `localRestart`. */
  snapshot(): Record<string, unknown> {
    const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
    return {
      unit: this.#d.unit,
      staggerMs: this.#staggerMs,
      minIntervalSeconds: this.#d.config.minIntervalSeconds,
      request: this.#want?.request ?? null,
      next: this.#schedule ? { at: iso(this.#schedule.dueAt), why: this.#schedule.why } : null,
      inFlight: this.#inFlight !== undefined,
      awaitingVerification: this.#awaiting ?? null,
      attempts: this.#attempts,
      lastAttemptAt: iso(this.#lastAttemptAt),
      last: this.#last ?? null,
      lastVerification: this.#lastVerification ?? null,
      quarantine: this.#quarantineNoted ? 'requested; not available on bare metal' : null,
    };
  }

  /** Schedules the next attempt: after the stagger from the request, and no sooner than the rate limit allows. */
  #plan(): void {
    const want = this.#want;
    if (!want) return;
    const now = this.#d.ctx.clock.now();
    const staggered = want.receivedAt + this.#staggerMs;
    const allowed = this.#lastAttemptAt === undefined ? now : this.#lastAttemptAt + this.#d.config.minIntervalSeconds * 1000;
    const dueAt = Math.max(now, staggered, allowed);
    const why = allowed > staggered && allowed > now ? 'rate-limit' : 'stagger';
    if (why === 'rate-limit') {
      const ago = Math.round((now - this.#lastAttemptAt!) / 1000);
      this.#d.gate.hold(
        { kind: 'restartCilium', summary: `restart ${this.#d.unit} (bare metal)`, evidence: { request: want.request } },
        `rate limited: the last restart on this host was ${ago} s ago (localRestart.minIntervalSeconds ${this.#d.config.minIntervalSeconds}); next at ${new Date(dueAt).toISOString()}`,
      );
    }
    this.#d.ctx.log.info({ dueAt: new Date(dueAt).toISOString(), why, staggerMs: this.#staggerMs }, `local restart: ${this.#d.unit} restart scheduled`);
    const timer = setTimeout(() => this.#fire(), dueAt - now);
    timer.unref?.();
    this.#schedule = { timer, dueAt, why };
  }

  #cancel(): void {
    if (this.#schedule) clearTimeout(this.#schedule.timer);
    this.#schedule = undefined;
  }

  #fire(): void {
    this.#schedule = undefined;
    const want = this.#want;
    if (!want || this.#stopped) return;
    this.#inFlight = this.#attempt(want.request).finally(() => {
      this.#inFlight = undefined;
      this.#publish();
    });
    this.#publish();
  }

  async #attempt(request: ChannelRequest): Promise<void> {
    const { ctx, unit, gate, config } = this.#d;
    const attempt = this.#attempts + 1;
    let restart: UnitRestartResult | undefined;
    const result = await gate.submit({
      kind: 'restartCilium',
      summary: `restart ${unit} over D-Bus (bare metal, attempt ${attempt})`,
      evidence: { request, node: this.#d.node, staggerMs: this.#staggerMs, attempt },
      execute: async (signal) => {
        // Counted before the call: a crash mid-restart must not lift the rate limit.
        this.#attempts = attempt;
        this.#lastAttemptAt = ctx.clock.now();
        writeLastAttempt(this.#d.stateDir, this.#lastAttemptAt, ctx);
        restart = await this.#d.restarter.restart(unit, AbortSignal.any([signal, this.#abort.signal, AbortSignal.timeout(config.jobTimeoutSeconds * 1000)]));
        return restart.ok ? { ok: true, detail: restart } : { ok: false, reason: restart.reason, detail: restart };
      },
    });
    const at = new Date(ctx.clock.now()).toISOString();
    this.#last = { at, decision: result.decision, ...(result.outcome ? { ok: result.outcome.ok } : {}), detail: restart ?? result.outcome ?? null };
    if (this.#stopped || result.decision !== 'executed') return;
    if (!restart?.ok) {
      ctx.log.warn({ restart: restart ?? result.outcome }, `local restart: ${unit} restart failed; retrying while the request stands`);
      if (this.#want) this.#plan();
      return;
    }
    const now = ctx.clock.now();
    const grant: ChannelGrant = {
      id: (this.#d.newId ?? (() => `local-${randomUUID()}`))(),
      rung: 'restartCilium',
      grantedAt: new Date(now).toISOString(),
      // A little past the verify window, so the detector's own deadline decides, not the expiry.
      expiresAt: new Date(now + (this.#d.verifySeconds + 60) * 1000).toISOString(),
      shadow: false,
      executed: { at: new Date(now).toISOString(), detail: `RestartUnit ${unit}: job ${restart.job} done, InvocationID ${restart.invocationBefore ?? 'none'} → ${restart.invocationAfter} (${restart.ms} ms)` },
      attempt,
    };
    this.#awaiting = grant.id;
    ctx.log.info({ grant: grant.id, job: restart.job, invocation: restart.invocationAfter, ms: restart.ms }, `local restart: ${unit} restarted; the detector verifies it`);
    this.#d.onGrants([grant]);
  }

  #publish(): void {
    this.#d.ctx.status.publish('localRestart', this.snapshot());
  }
}

function readLastAttempt(stateDir: string): number | undefined {
  try {
    const parsed = JSON.parse(readFileSync(join(stateDir, LOCAL_RESTART_FILE), 'utf8')) as { lastAttemptAt?: unknown };
    return typeof parsed.lastAttemptAt === 'number' && Number.isFinite(parsed.lastAttemptAt) ? parsed.lastAttemptAt : undefined;
  } catch {
    return undefined;
  }
}

function writeLastAttempt(stateDir: string, at: number, ctx: BoxContext): void {
  const path = join(stateDir, LOCAL_RESTART_FILE);
  try {
    writeFileSync(`${path}.tmp`, JSON.stringify({ lastAttemptAt: at, at: new Date(at).toISOString() }) + '\n');
    renameSync(`${path}.tmp`, path);
  } catch (err) {
    // The gate journalled the intent already; the rate limit then holds for this run only.
    ctx.log.error({ err, path }, 'local restart: cannot record the restart time; the rate limit holds only until connwatch restarts');
  }
}

/**
 * The bare-metal reporter as the agent wires it: the restart component, its own reconnecting bus
 * connection to PID 1 (only when actions.restartCilium is on) and its place in the lifecycle.
 */
export function bareMetalReporter(opts: {
  config: Config;
  ctx: BoxContext;
  gate: RestartGate;
  lifecycle: { add(component: Component): void };
  onGrants(grants: ChannelGrant[]): void;
}): NodeReporter {
  const { config, ctx } = opts;
  const control = new Systemd1UnitControl(ctx.clock);
  const bus =
    config.actions.restartCilium === 'on'
      ? new ReconnectingBus({
          address: resolveSystemBusAddress(config.signals.dbus.busAddress),
          callTimeoutMs: config.signals.dbus.callTimeoutMs,
          reconnect: config.signals.dbus.reconnect,
          watchers: [control],
          log: ctx.log,
          onConnection: () => undefined,
        })
      : undefined;
  const local = new LocalCiliumRestart({
    ctx,
    config: config.localRestart,
    unit: config.signals.units.cilium,
    node: config.node,
    stateDir: config.stateDir,
    verifySeconds: config.ladder.verifySeconds,
    gate: opts.gate,
    restarter: control,
    onGrants: opts.onGrants,
  });
  opts.lifecycle.add({
    name: 'local-restart',
    // Not awaited: a hung bus must not hold up the agent's start (the restart waits for the bus itself).
    start: async () => {
      void bus?.start();
    },
    stop: async () => {
      await local.stop();
      await bus?.stop();
    },
  });
  return local;
}
