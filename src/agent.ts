import { mkdirSync } from 'node:fs';
import type { Logger } from 'pino';
import type { CliIO } from './cli.js';
import { formatConfigErrors, loadConfig, type Config, type ConfigFlags } from './config/index.js';
import { createAlerts } from './alerts/index.js';
import { DamageAlerts } from './alerts/damage.js';
import { CiliumClient } from './cilium/client.js';
import { execIpRunner, type IpRunner } from './datapath/ip.js';
import { parseAddresses } from './datapath/ipjson.js';
import { describeItem } from './datapath/items.js';
import { DatapathMonitor } from './datapath/monitor.js';
import { resolveProfiles } from './datapath/profiles.js';
import { addItemsBatch } from './datapath/batch.js';
import { planRestore } from './datapath/writer.js';
import { tcpConnects } from './probes/tcp.js';
import { hasNetAdmin } from './remediation/capability.js';
import { Gate } from './remediation/gate.js';
import { FileJournal, readEntries } from './remediation/journal.js';
import { CARRY_OVER_MS, carriedOverItems, RestoreRung, type DamageCheck, type ItemWriter } from './remediation/restore.js';
import { createSignals } from './signals/index.js';
import { createLogger, createMetrics, Heartbeat, Liveness, StatusBoard, TelemetryServer } from './telemetry/index.js';
import type { BoxContext, Clock, SignalEvent } from './types.js';
import { EXIT } from './exit.js';
import { VERSION } from './version.js';

/** The real clock. */
export const systemClock: Clock = { now: () => Date.now(), monotonic: () => performance.now() };

/** Something the agent starts and, in reverse order, stops. */
export interface Component {
  name: string;
  start(): Promise<void>;
  /** Called once every component has started. */
  ready?(): void;
  stop(): Promise<void>;
}

/** How long shutdown may take before connwatch stops waiting (SIGTERM must end within 5 s). */
const STOP_BUDGET_MS = 4_000;
/** The main loop's turn: heartbeat, liveness, status. */
const MAIN_LOOP_MS = 1_000;

/** `connwatch run`: load config (exit 2 on any mistake), start every box, run until SIGTERM/SIGINT. */
export async function runAgentCommand(values: Record<string, unknown>, io: CliIO): Promise<number> {
  const loaded = loadConfig({ configPath: values.config as string | undefined, env: process.env, flags: values as ConfigFlags });
  if (!loaded.ok) {
    io.stderr(formatConfigErrors(loaded.errors));
    return EXIT.usage;
  }
  const config = loaded.config;
  const log = createLogger({ level: config.log.level });
  log.info({ version: VERSION, mode: config.mode, modeReason: loaded.modeReason, node: config.node, configPath: loaded.configPath ?? null }, 'connwatch starting');
  try {
    mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    io.stderr(`connwatch run: cannot create the state directory ${config.stateDir}: ${(err as Error).message}; set stateDir (or --state-dir) to a writable directory\n`);
    return EXIT.usage;
  }
  const agent = await Agent.start(config, log);
  if (!agent.ok) {
    io.stderr(`connwatch run: ${agent.reason}\n`);
    return EXIT.usage;
  }
  const code = await waitForStop(agent.agent, log);
  return code;
}

function waitForStop(agent: Agent, log: Logger): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (why: string, code: number) => {
      if (stopping) return;
      stopping = true;
      log.info({ why }, 'connwatch stopping');
      const forced = setTimeout(() => {
        log.error({ budgetMs: STOP_BUDGET_MS }, 'shutdown took too long; exiting anyway');
        // Something still holds the event loop: leave now, within the 5 s a supervisor allows.
        process.exit(code || 1);
      }, STOP_BUDGET_MS);
      forced.unref();
      agent.stop().then(
        () => {
          clearTimeout(forced);
          log.info('connwatch stopped');
          resolve(code);
        },
        (err: unknown) => {
          log.error({ err }, 'error while stopping');
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM', 0));
    process.once('SIGINT', () => stop('SIGINT', 0));
    process.on('unhandledRejection', (reason) => {
      // A promise nobody handled is a bug: fail loudly (Restart=on-failure brings us back clean).
      log.fatal({ err: reason }, 'unhandled promise rejection: exiting');
      stop('unhandledRejection', 1);
    });
    process.on('uncaughtException', (err) => {
      log.fatal({ err }, 'uncaught exception: stopping');
      stop('uncaughtException', 1);
    });
  });
}

/** The running agent: its boxes, started in order and stopped in reverse. */
export class Agent {
  readonly #components: Component[] = [];
  readonly #started: Component[] = [];

  private constructor(
    readonly config: Config,
    readonly ctx: BoxContext,
  ) {}

  static async start(config: Config, log: Logger, clock: Clock = systemClock): Promise<{ ok: true; agent: Agent } | { ok: false; reason: string }> {
    const { registry, measure } = createMetrics({ version: VERSION });
    const status = new StatusBoard({ version: VERSION, mode: config.mode, clock });
    const agent = new Agent(config, { clock, log, metrics: registry, status });
    const liveness = new Liveness(clock, { minStaleMs: config.telemetry.staleAfterSeconds * 1000 });
    const journal = new FileJournal(config.stateDir);
    const netAdmin = hasNetAdmin();
    const gate = new Gate({
      controls: {
        settings: () => config.actions,
        killSwitch: () => ({ active: config.actions.killSwitch, source: 'config' }),
        halt: () => ({ active: config.actions.halt, source: 'config' }),
      },
      journal,
      clock,
      log: log.child({ box: 'gate' }),
      metrics: registry,
      measure,
    });
    status.publish('gate', { actions: config.actions, preview: { restore: gate.preview('restore'), restartCilium: gate.preview('restartCilium'), quarantine: gate.preview('quarantine') } });
    status.publish('capabilities', { netAdmin });
    const interrupted = journal.interrupted();
    if (interrupted.length > 0) log.warn({ interrupted }, 'actions a previous run started and did not finish (see the action journal)');

    const server = new TelemetryServer({ listen: config.telemetry.listen, registry, status: () => status.snapshot(), liveness, log: log.child({ box: 'telemetry' }) });
    agent.#components.push({
      name: 'telemetry',
      start: async () => {
        const bound = await server.start();
        if (!bound.ok) throw new Error(`${bound.reason}; set telemetry.listen (--listen) to a free address`);
        log.info({ address: bound.address, port: bound.port }, 'telemetry listening');
      },
      // /readyz means "started", nothing more, so that rollouts never stall on a broken network.
      ready: () => server.markStarted(),
      stop: () => server.stop(),
    });

    const profiles = resolveProfiles(config.datapath.profiles, config.datapath.extraProfiles);
    if (!profiles.ok) return { ok: false, reason: profiles.reason };
    const box = (name: string): BoxContext => ({ ...agent.ctx, log: log.child({ box: name }) });

    // Alerts leave by the host network: proxy, CA bundles and last-known-good addresses come from alerts.network.
    let alerts: ReturnType<typeof createAlerts>;
    try {
      alerts = createAlerts({ ctx: box('alerts'), config: config.alerts, stateDir: config.stateDir, identity: { node: config.node, site: config.site } });
    } catch (err) {
      return { ok: false, reason: `alerts: ${(err as Error).message}` };
    }
    agent.#components.push({ name: 'alerts', start: () => alerts.start(), stop: () => alerts.stop() });

    const carriedOver = carriedOverItems(readEntries(journal.path), clock.now() - CARRY_OVER_MS);
    if (carriedOver.length > 0) log.warn({ items: carriedOver.map(describeItem) }, 'items networkd removed while a previous run declined the restore stay repairable');
    const cilium = new CiliumClient(config.cilium);
    const ip = execIpRunner(config.datapath.ip);
    const datapath = new DatapathMonitor({ ctx: box('datapath'), config: config.datapath, profiles: profiles.profiles, stateDir: config.stateDir, run: ip, cilium });
    const restore = new RestoreRung(
      {
        gate,
        writer: ipWriter(ip, datapath, config.datapath.ip),
        damage: damageCheck(datapath),
        clock,
        log: log.child({ box: 'restore' }),
        metrics: registry,
        status,
        alerter: alerts.alerter,
        node: config.node,
        site: config.site,
        canWrite: netAdmin,
        verifyTcp: tcpConnects,
        carriedOver,
      },
      config.restore,
    );
    const damageAlerts = new DamageAlerts(alerts.alerter, { node: config.node, site: config.site }, clock, () => restorePlan(gate, netAdmin));
    datapath.onReport((report) => {
      restore.onReport(report);
      damageAlerts.onReport(report);
    });
    // Signals start before the datapath's first read and learning step, so that a networkd restart
    // during start-up is still known as networkd activity when its losses are assessed.
    const signals = createSignals(box('signals'), config.signals);
    const signalLog = log.child({ box: 'signals' });
    const consumers: [string, (event: SignalEvent) => void][] = [
      ['log', (event) => logSignal(signalLog, event)],
      ['restore', (event) => restore.onSignal(event)],
      ['datapath', (event) => datapath.onSignal(event)],
    ];
    let signalsStarting: Promise<void> = Promise.resolve();
    agent.#components.push({
      name: 'signals',
      // Not awaited: a slow or hung bus (PID 1 busy re-executing during an upgrade) must not hold up
      // the datapath's first read; the sources report their own state while they connect.
      start: async () => {
        signalsStarting = signals.start((event: SignalEvent) => {
          // The restore sees the signal first, so its episode is open before the re-read's report arrives.
          for (const [consumer, consume] of consumers) {
            try {
              consume(event);
            } catch (err) {
              signalLog.error({ err, consumer, kind: event.kind }, 'a signal consumer threw (a bug); the signal still reaches the others');
            }
          }
        })
          .then(() => {
            signalLog.info({ status: signals.status() }, 'signals listening');
            // Whatever changed while the watchers were connecting was not heard: look once now.
            void datapath.refresh('signals-up');
          })
          .catch((err: unknown) => signalLog.error({ err }, 'signals failed to start (a bug)'));
      },
      stop: async () => {
        // A start still waiting on a hung bus must not hold up the stop beyond a moment.
        await Promise.race([signalsStarting, new Promise((r) => setTimeout(r, 1_000).unref())]);
        await signals.stop();
      },
    });

    agent.#components.push({
      name: 'datapath',
      start: async () => {
        await datapath.start();
      },
      stop: async () => {
        await restore.stop();
        await datapath.stop();
        await cilium.close();
      },
    });

    agent.#components.push(mainLoop(agent.ctx, liveness, new Heartbeat(config.telemetry.heartbeatFile)));

    try {
      for (const component of agent.#components) {
        await component.start();
        agent.#started.push(component);
      }
    } catch (err) {
      await agent.stop();
      return { ok: false, reason: (err as Error).message };
    }
    for (const component of agent.#started) component.ready?.();
    log.info({ components: agent.#started.map((c) => c.name) }, 'connwatch running');
    return { ok: true, agent };
  }

  /** Stops every started component in reverse start order, each waited for. */
  async stop(): Promise<void> {
    while (this.#started.length > 0) {
      const component = this.#started.pop()!;
      try {
        await component.stop();
      } catch (err) {
        this.ctx.log.error({ err, component: component.name }, 'component failed to stop cleanly');
      }
    }
  }
}

/** The main loop: touches the heartbeat file and ticks liveness every turn; never needs the network. */
function mainLoop(ctx: BoxContext, liveness: Liveness, heartbeat: Heartbeat): Component {
  let timer: NodeJS.Timeout | undefined;
  let turning: Promise<void> = Promise.resolve();
  const ticker = liveness.register('main', MAIN_LOOP_MS);
  let lastBeatError: string | undefined;
  const turn = async () => {
    const beat = await heartbeat.beat();
    if (!beat.ok && beat.reason !== lastBeatError) ctx.log.error({ reason: beat.reason }, 'heartbeat failed');
    lastBeatError = beat.ok ? undefined : beat.reason;
    ctx.status.publish('heartbeat', { file: heartbeat.path, ok: beat.ok, ...(beat.ok ? {} : { reason: beat.reason }) });
    ticker.tick();
  };
  return {
    name: 'main-loop',
    start: async () => {
      await turn();
      timer = setInterval(() => {
        turning = turning.then(turn);
      }, MAIN_LOOP_MS);
    },
    stop: async () => {
      clearInterval(timer);
      await turning;
      ticker.retire();
    },
  };
}

/** What the restore will do about damage that coincides with networkd, for the page's summary. */
function restorePlan(gate: Gate, netAdmin: { ok: boolean; reason?: string }): string {
  if (!netAdmin.ok) return `not restored: ${netAdmin.reason ?? 'no CAP_NET_ADMIN'}`;
  const preview = gate.preview('restore');
  return preview.decision === 'executed' ? 'restore under way' : `not restored: ${preview.why ?? preview.decision}`;
}

/** The signals an operator wants in the log as they happen (the netlink chatter stays at debug). */
function logSignal(log: Logger, event: SignalEvent): void {
  switch (event.kind) {
    case 'NetworkdRestarted':
    case 'CiliumRestarted':
      log.info({ origins: event.origins, invocationId: event.invocationId }, event.kind === 'NetworkdRestarted' ? 'signal: systemd-networkd restarted' : 'signal: Cilium restarted');
      return;
    case 'UpgradeStarted':
    case 'UpgradeFinished':
      log.info({ unit: event.unit }, `signal: ${event.kind === 'UpgradeStarted' ? 'upgrade run started' : 'upgrade run finished'}`);
      return;
    case 'WatchGap':
      log.warn({ source: event.source, reason: event.reason }, 'signal: a watcher may have missed changes; re-reading the datapath');
      return;
    case 'NetworkdOnBus':
      log.info({ present: event.present }, event.present ? 'signal: networkd on the bus' : 'signal: networkd not on the bus');
      return;
    default:
      log.debug({ event }, `signal: ${event.kind}`);
  }
}

/**
 * Writes baseline items back with one `ip -force -batch` process, ordered by the datapath box's
 * plan (which needs this host's addresses now, and the live routes that cover gateways).
 */
function ipWriter(ip: IpRunner, datapath: DatapathMonitor, ipConfig: { argv: string[]; timeoutMs: number }): ItemWriter {
  return {
    plan: async (items) => {
      const listing = await ip(['-j', 'addr', 'show']);
      const addresses = listing.ok ? parseAddresses(listing.stdout) : undefined;
      return planRestore(items, addresses?.ok ? addresses.items : (datapath.lastSnapshot()?.addresses ?? []), datapath.lastSnapshot()?.routes ?? []);
    },
    write: (items, signal) => addItemsBatch(ipConfig.argv, items, { timeoutMs: ipConfig.timeoutMs, signal }),
  };
}

/** A fresh re-read for the restore's verification; a failed read is an error, never a stale "all clear". */
function damageCheck(datapath: DatapathMonitor): DamageCheck {
  return {
    check: async (trigger) => (await datapath.refresh(trigger)) ?? { error: 'the datapath re-read failed (see /status datapath.lastRead)' },
  };
}
