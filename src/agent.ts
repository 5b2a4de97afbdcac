/**
 * `connwatch run`: the node agent's wiring. Every box is built here from its config section and
 * added to the lifecycle in start order: telemetry, alerts, signals, datapath + ladder, main loop.
 * Data flows signals → detector (via the ladder) → commands → datapath, restore, pager.
 */
import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { AlertPager, createAlerts } from './alerts/index.js';
import { CiliumClient, liveEndpointAddresses } from './cilium/client.js';
import { formatConfigErrors, loadConfig, type Config, type ConfigFlags } from './config/index.js';
import { resolveNodeName } from './config/mode.js';
import { DatapathMonitor, execIpRunner, ipItemWriter, itemKey, resolveProfiles } from './datapath/index.js';
import { initialState } from './detector/index.js';
import { EXIT } from './exit.js';
import { KubeAgent, noopReporter } from './kube/agent/index.js';
import { Lifecycle, runUntilStopped, systemClock } from './lifecycle.js';
import { buildProbes, tcpConnects } from './probes/index.js';
import { doctorComponent } from './doctor/component.js';
import { detectorConfigOf } from './remediation/detector-config.js';
import { hasNetAdmin } from './remediation/capability.js';
import { Gate } from './remediation/gate.js';
import { FileJournal, readEntries } from './remediation/journal.js';
import { Ladder } from './remediation/ladder.js';
import { bareMetalReporter } from './remediation/local-restart.js';
import { CARRY_OVER_MS, carriedOverItems, RestoreAction } from './remediation/restore.js';
import { createSignals } from './signals/index.js';
import { createLogger, createMetrics, Heartbeat, Liveness, mainLoop, StatusBoard, TelemetryServer } from './telemetry/index.js';
import type { BoxContext, CliIO, Clock } from './types.js';
import { VERSION } from './version.js';

/** How long a hung bus may hold up the stop of a signals start still waiting on it. */
const SIGNALS_START_GRACE_MS = 1_000;

/** `connwatch run`: load config (exit 2 on any mistake), start every box, run until SIGTERM/SIGINT. */
export async function runAgentCommand(values: Record<string, unknown>, io: CliIO): Promise<number> {
  // No host name given: an empty node means "not configured", which Kubernetes mode must tell apart.
  const loaded = loadConfig({ configPath: values.config as string | undefined, env: process.env, flags: values as ConfigFlags, hostname: '' });
  if (!loaded.ok) {
    io.stderr(formatConfigErrors(loaded.errors));
    return EXIT.usage;
  }
  const named = resolveNodeName({ mode: loaded.config.mode, configured: loaded.config.node, env: process.env, hostname: hostname() });
  if (!named.ok) {
    io.stderr(`connwatch run: configuration error: ${named.reason}: ${named.hint}\n`);
    return EXIT.usage;
  }
  const config: Config = { ...loaded.config, node: named.node };
  const log = createLogger({ level: config.log.level });
  log.info({ version: VERSION, mode: config.mode, modeReason: loaded.modeReason, node: config.node, nodeFrom: named.source, configPath: loaded.configPath ?? null }, 'connwatch starting');
  try {
    mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    io.stderr(`connwatch run: cannot create the state directory ${config.stateDir}: ${(err as Error).message}; set stateDir (or --state-dir) to a writable directory\n`);
    return EXIT.usage;
  }
  const built = buildAgent(config, log);
  const started = built.ok ? await built.lifecycle.start() : built;
  if (!started.ok || !built.ok) {
    io.stderr(`connwatch run: ${started.ok ? '' : started.reason}\n`);
    return EXIT.usage;
  }
  log.info({ components: built.lifecycle.started() }, 'connwatch running');
  return runUntilStopped(() => built.lifecycle.stop(), log);
}

/** Builds every box of the agent into a lifecycle (nothing started yet); refuses a config it cannot run. */
export function buildAgent(config: Config, log: Logger, clock: Clock = systemClock): { ok: true; lifecycle: Lifecycle } | { ok: false; reason: string } {
  const { registry, measure } = createMetrics({ version: VERSION });
  const status = new StatusBoard({ version: VERSION, mode: config.mode, clock });
  const box = (name: string): BoxContext => ({ clock, log: log.child({ box: name }), metrics: registry, status });
  const lifecycle = new Lifecycle(log);

  const liveness = new Liveness(clock, { minStaleMs: config.telemetry.staleAfterSeconds * 1000 });
  const server = new TelemetryServer({ listen: config.telemetry.listen, socket: config.telemetry.socket, registry, status: () => status.snapshot(), liveness, log: log.child({ box: 'telemetry' }) });
  lifecycle.add({
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
  // Alerts leave by the host network: proxy, CA bundles and last-known-good addresses come from alerts.network.
  let alerts: ReturnType<typeof createAlerts>;
  try {
    alerts = createAlerts({ ctx: box('alerts'), config: config.alerts, stateDir: config.stateDir, identity: { node: config.node, site: config.site } });
  } catch (err) {
    return { ok: false, reason: `alerts: ${(err as Error).message}` };
  }
  lifecycle.add({ name: 'alerts', start: () => alerts.start(), stop: () => alerts.stop() });

  // Kubernetes: the control ConfigMap's switches (cached on disk from the last run until it is read),
  // this node's kubelet Ready, and its ConnwatchNode status and Events. Built now so that the gate
  // obeys the cached switches from the first step; its requests start with the lifecycle.
  const kube =
    config.mode === 'kubernetes'
      ? new KubeAgent({
          config: config.kube,
          node: config.node,
          stateDir: config.stateDir,
          clock,
          log: log.child({ box: 'kube' }),
          metrics: registry,
          status,
          version: VERSION,
          onKubelet: (ready) => ladder.onKubelet(ready),
          onGrants: (grants) => ladder.onGrants(grants),
          onApiServer: (state) => ladder.onApiServer(state),
          onControls: () => publishGate(),
        })
      : undefined;
  const journal = new FileJournal(config.stateDir);
  const gate = new Gate({
    // Read on every decision: a flipped ConfigMap stops the next step with no restart. Either source stops.
    controls: {
      settings: () => config.actions,
      killSwitch: () => (config.actions.killSwitch || !kube ? { active: config.actions.killSwitch, source: 'config' } : kube.controls.killSwitch()),
      halt: () => (config.actions.halt || !kube ? { active: config.actions.halt, source: 'config' } : kube.controls.halt()),
    },
    journal,
    clock,
    log: log.child({ box: 'gate' }),
    metrics: registry,
    measure,
  });
  const netAdmin = hasNetAdmin();
  const publishGate = () =>
    status.publish('gate', { actions: config.actions, preview: { restore: gate.preview('restore'), restartCilium: gate.preview('restartCilium'), quarantine: gate.preview('quarantine') } });
  publishGate();
  status.publish('capabilities', { netAdmin });
  const interrupted = journal.interrupted();
  if (interrupted.length > 0) log.warn({ interrupted }, 'actions a previous run started and did not finish (see the action journal)');
  const carriedOver = carriedOverItems(readEntries(journal.path), clock.now() - CARRY_OVER_MS).map(itemKey);
  if (carriedOver.length > 0) log.warn({ items: carriedOver }, 'items networkd removed while a previous run declined the restore stay repairable');

  const cilium = new CiliumClient(config.cilium);
  const ip = execIpRunner(config.datapath.ip);
  const datapath = new DatapathMonitor({ ctx: box('datapath'), config: config.datapath, profiles: profiles.profiles, stateDir: config.stateDir, run: ip, cilium });
  const ladder = new Ladder({
    ctx: box('restore'),
    initial: initialState(detectorConfigOf(config, profiles.profiles.flatMap((profile) => profile.devices), netAdmin), carriedOver),
    restore: new RestoreAction({
      gate,
      writer: ipItemWriter(ip, datapath, config.datapath.ip),
      // Read fresh at write time: a pod deleted since the loss must not get its items back.
      endpoints: async () => {
        const listed = await cilium.endpoints();
        return listed.ok ? { ok: true, addresses: liveEndpointAddresses(listed.value) } : { ok: false, reason: `${listed.reason} (${listed.hint})` };
      },
      datapath,
      verifyTcp: tcpConnects,
      config: config.restore,
    }),
    datapath,
    pager: new AlertPager(alerts.alerter, { node: config.node, site: config.site }, () => restorePlan(gate, netAdmin)),
    probes: { burst: (reason) => probes?.burst(reason) },
    verdicts: journal,
    reporter: kube?.reporter ?? (config.mode === 'baremetal' ? bareMetalReporter({ config, ctx: box('local-restart'), gate, lifecycle, onGrants: (grants) => ladder.onGrants(grants) }) : noopReporter),
  });
  datapath.onReport((report) => ladder.onReport(report));
  const probes = buildProbes(config, box('probes'), (round) => ladder.onRound(round));

  // Its start makes no request and waits for none (the watches and writes run on their own), so it
  // holds up nothing; it stops after the ladder, which may still report while stopping.
  if (kube) lifecycle.add({ name: 'kube', start: () => kube.start(), stop: () => kube.stop() });

  // Signals start before the datapath's first read and learning step, so that a networkd restart
  // during start-up is still known as networkd activity when its losses are assessed.
  const signals = createSignals(box('signals'), config.signals);
  let signalsStarting: Promise<void> = Promise.resolve();
  lifecycle.add({
    name: 'signals',
    // Not awaited: a slow or hung bus (PID 1 busy re-executing during an upgrade) must not hold up
    // the datapath's first read; the sources report their own state while they connect.
    start: async () => {
      signalsStarting = signals
        .start((event) => ladder.onSignal(event))
        .then(() => {
          log.child({ box: 'signals' }).info({ status: signals.status() }, 'signals listening');
          // Whatever changed while the watchers were connecting was not heard: look once now.
          void datapath.refresh('signals-up');
        })
        .catch((err: unknown) => log.error({ err }, 'signals failed to start (a bug)'));
    },
    stop: async () => {
      await Promise.race([signalsStarting, new Promise((r) => setTimeout(r, SIGNALS_START_GRACE_MS).unref())]);
      await signals.stop();
    },
  });
  lifecycle.add({
    name: 'datapath',
    start: async () => {
      await datapath.start();
    },
    stop: async () => {
      await ladder.stop();
      await datapath.stop();
      await cilium.close();
    },
  });
  if (probes) lifecycle.add({ name: 'probes', start: () => probes.start(), stop: () => probes.stop() });
  // The hazard audit at start and every doctor.intervalSeconds, in a worker thread that ends after each run.
  lifecycle.add(doctorComponent({ ctx: box('doctor'), config: config.doctor, ip: config.datapath.ip }));
  lifecycle.add(mainLoop(box('main'), liveness, new Heartbeat(config.telemetry.heartbeatFile)));
  return { ok: true, lifecycle };
}

/** What the restore will do about damage networkd caused, for the page's summary. */
function restorePlan(gate: Gate, netAdmin: { ok: boolean; reason?: string }): string {
  if (!netAdmin.ok) return `not restored: ${netAdmin.reason ?? 'no CAP_NET_ADMIN'}`;
  const preview = gate.preview('restore');
  return preview.decision === 'executed' ? 'restore under way' : `not restored: ${preview.why ?? preview.decision}`;
}
