/**
 * `connwatch controller` and `connwatch release`: the wiring of the controller role (config,
 * client, telemetry, alerts, gate, journal, leader election) — the decision core lives in
 * core.ts, the Kubernetes half in controller.ts and executor.ts.
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { createAlerts } from '../alerts/index.js';
import { formatConfigErrors, loadConfig, resolveActionDefaults, type Config, type ConfigFlags } from '../config/index.js';
import { EXIT } from '../exit.js';
import { createKubeClient, type KubeClient } from '../kube/client.js';
import { RESOURCES } from '../kube/resources.js';
import { Lifecycle, runUntilStopped, systemClock } from '../lifecycle.js';
import { Gate } from '../remediation/gate.js';
import { FileJournal } from '../remediation/journal.js';
import { createLogger, createMetrics, Liveness, StatusBoard, TelemetryServer } from '../telemetry/index.js';
import type { ActionEnablement, BoxContext, CliIO, Clock } from '../types.js';
import { VERSION } from '../version.js';
import { FleetController } from './controller.js';
import { removeMarks } from './marks.js';
import { controllerMetrics } from './metrics.js';
import { ANNOTATIONS, QUARANTINE_TAINT, type Controls } from './model.js';
import { CONNWATCH_NODES, controlsOf } from './objects.js';

export { ControllerCore, type CoreConfig, type RoundSummary } from './core.js';
export { FleetController, type FleetControllerDeps } from './controller.js';
export { controllerConfig, type ControllerConfig } from './config.js';

/** The controller's action settings: the kubernetes defaults (shadow) unless the configuration says otherwise. */
export function controllerActions(config: Config): { killSwitch: boolean; halt: boolean; restartCilium: ActionEnablement; quarantine: ActionEnablement } {
  const defaults = resolveActionDefaults('kubernetes');
  // In baremetal mode the config resolved restart/quarantine to off; the controller only exists in Kubernetes, so unset means shadow.
  const pick = (value: ActionEnablement, kind: 'restartCilium' | 'quarantine') => (config.mode === 'kubernetes' ? value : value === 'off' ? defaults[kind] : value);
  return { killSwitch: config.actions.killSwitch, halt: config.actions.halt, restartCilium: pick(config.actions.restartCilium, 'restartCilium'), quarantine: pick(config.actions.quarantine, 'quarantine') };
}

/** Builds the controller role into a lifecycle; the client is made by the caller (tests give their own). */
export function buildController(config: Config, client: KubeClient, log: Logger, clock: Clock = systemClock, opts: { identity?: string; metrics?: ReturnType<typeof createMetrics> } = {}): { lifecycle: Lifecycle; controller: FleetController; telemetry: TelemetryServer } {
  const { registry, measure } = opts.metrics ?? createMetrics({ version: VERSION });
  const status = new StatusBoard({ version: VERSION, mode: 'kubernetes', clock });
  const ctx: BoxContext = { clock, log: log.child({ box: 'alerts' }), metrics: registry, status };
  const lifecycle = new Lifecycle(log);
  const liveness = new Liveness(clock, { minStaleMs: config.telemetry.staleAfterSeconds * 1000 });
  const telemetry = new TelemetryServer({ listen: config.telemetry.listen, registry, status: () => status.snapshot(), liveness, log: log.child({ box: 'telemetry' }) });
  lifecycle.add({
    name: 'telemetry',
    start: async () => {
      const bound = await telemetry.start();
      if (!bound.ok) throw new Error(`${bound.reason}; set telemetry.listen (--listen) to a free address`);
    },
    ready: () => telemetry.markStarted(),
    stop: () => telemetry.stop(),
  });
  const alerts = createAlerts({ ctx, config: config.alerts, stateDir: config.stateDir, identity: { node: 'fleet', site: config.site } });
  lifecycle.add({ name: 'alerts', start: () => alerts.start(), stop: () => alerts.stop() });

  const actions = controllerActions(config);
  const controlsRef: { current: Controls } = { current: controlsOf(actions, undefined, config.controller.configMap) };
  const journal = new FileJournal(config.stateDir);
  const gate = new Gate({
    controls: {
      settings: () => ({ restore: 'off', restartCilium: controlsRef.current.actions.restartCilium, quarantine: controlsRef.current.actions.quarantine }),
      killSwitch: () => controlsRef.current.killSwitch,
      halt: () => controlsRef.current.halt,
    },
    journal,
    clock,
    log: log.child({ box: 'gate' }),
    metrics: registry,
    measure,
  });
  const interrupted = journal.interrupted();
  if (interrupted.length > 0) log.warn({ interrupted }, 'steps a previous run of this replica started and did not finish; the objects decide what happens next');
  const controller = new FleetController({
    client,
    config: config.controller,
    actions,
    site: config.site,
    identity: opts.identity ?? config.controller.identity ?? `${config.node}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
    leader: config.kube.leaderElection,
    clock,
    log: log.child({ box: 'controller' }),
    metrics: controllerMetrics(registry),
    registry,
    status,
    alerter: alerts.alerter,
    journal,
    gate,
    controlsRef,
  });
  lifecycle.add({ name: 'controller', start: async () => controller.start(), stop: () => controller.stop() });
  return { lifecycle, controller, telemetry };
}

function load(values: Record<string, unknown>, io: CliIO, command: string): Config | undefined {
  const loaded = loadConfig({ configPath: values.config as string | undefined, env: process.env, flags: values as ConfigFlags });
  if (!loaded.ok) {
    io.stderr(formatConfigErrors(loaded.errors));
    return undefined;
  }
  void command;
  return loaded.config;
}

async function client(config: Config, log: Logger, io: CliIO, command: string, metrics?: Registry): Promise<KubeClient | undefined> {
  const made = await createKubeClient({ ...config.kube, qps: config.controller.qps, burst: config.controller.burst }, { clock: systemClock, log: log.child({ box: 'kube' }), ...(metrics ? { metrics } : {}) });
  if (!made.ok) {
    io.stderr(`connwatch ${command}: ${made.reason}\n`);
    return undefined;
  }
  return made.value;
}

/** `connwatch controller`: runs until SIGTERM/SIGINT. */
export async function runControllerCommand(values: Record<string, unknown>, io: CliIO): Promise<number> {
  const config = load(values, io, 'controller');
  if (!config) return EXIT.usage;
  const log = createLogger({ level: config.log.level });
  // One registry: the client's connwatch_kube_requests_total is served with the controller's metrics.
  const metrics = createMetrics({ version: VERSION });
  const kube = await client(config, log, io, 'controller', metrics.registry);
  if (!kube) return EXIT.usage;
  let built: ReturnType<typeof buildController>;
  try {
    built = buildController(config, kube, log, systemClock, { metrics });
  } catch (err) {
    io.stderr(`connwatch controller: ${(err as Error).message}\n`);
    await kube.close();
    return EXIT.usage;
  }
  const started = await built.lifecycle.start();
  if (!started.ok) {
    io.stderr(`connwatch controller: ${started.reason}\n`);
    await kube.close();
    return EXIT.usage;
  }
  log.info({ version: VERSION, namespace: config.controller.namespace, host: hostname() }, 'connwatch controller running');
  const code = await runUntilStopped(async () => {
    await built.lifecycle.stop();
    await kube.close();
  }, log);
  return code;
}

/**
 * `connwatch release NODE… | --all`: removes connwatch's marks (taint, condition, its own cordon,
 * drain annotations), closes the node's open grants and records the release, so the controller
 * stays off the node for controller.releaseHoldMs. Works under the kill switch: it is a reversal.
 */
export async function runReleaseCommand(values: Record<string, unknown>, positionals: string[], io: CliIO): Promise<number> {
  if (values.all !== true && positionals.length === 0) {
    io.stderr('connwatch release: name a node (or several), or give --all\n');
    return EXIT.usage;
  }
  const config = load(values, io, 'release');
  if (!config) return EXIT.usage;
  const log = createLogger({ level: config.log.level });
  const kube = await client(config, log, io, 'release');
  if (!kube) return EXIT.usage;
  try {
    return await release(kube, config, values.all === true ? undefined : positionals, io, systemClock);
  } finally {
    await kube.close();
  }
}

/** The release itself (tests call it with their client). Exit 0 when every node was released, 1 otherwise. */
export async function release(kube: KubeClient, config: Config, nodes: string[] | undefined, io: CliIO, clock: Clock): Promise<number> {
  let names = nodes;
  if (!names) {
    const listed = await kube.listAll(RESOURCES.nodes);
    if (!listed.ok) {
      io.stderr(`connwatch release: cannot list nodes: ${listed.reason} (${listed.hint})\n`);
      return EXIT.problem;
    }
    names = listed.value.items
      .filter((n) => n.metadata?.annotations?.[ANNOTATIONS.quarantine] !== undefined || n.metadata?.annotations?.[ANNOTATIONS.cordoned] !== undefined || (n.spec?.taints ?? []).some((t) => t.key === QUARANTINE_TAINT))
      .map((n) => n.metadata!.name!);
  }
  let journal: FileJournal | undefined;
  try {
    journal = new FileJournal(join(config.stateDir, 'release'));
  } catch {
    journal = undefined;
  }
  let failures = 0;
  for (const name of names) {
    const seq = journal?.append({ wallAt: clock.now(), phase: 'intent', action: 'quarantine', decision: 'executed', summary: `release ${name}: remove connwatch's marks`, evidence: { node: name } }).seq;
    const result = await removeMarks(kube, name, { why: 'released by an operator (connwatch release)', now: clock.now(), released: true });
    if (journal && seq !== undefined) journal.append({ seq, wallAt: clock.now(), phase: 'outcome', action: 'quarantine', decision: 'executed', summary: `release ${name}`, outcome: result.ok ? { ok: true, detail: result.changed } : { ok: false, reason: result.reason } });
    if (!result.ok) {
      failures += 1;
      io.stderr(`${name}: ${result.reason}\n`);
      continue;
    }
    // Close the node's open grants so no leader finishes them.
    const cwn = await kube.get(CONNWATCH_NODES, { namespace: config.controller.namespace, name });
    if (cwn.ok && (cwn.value.spec?.grants ?? []).some((g) => !g.outcome)) {
      const at = new Date(clock.now()).toISOString();
      const grants = (cwn.value.spec?.grants ?? []).map((g) => (g.outcome ? g : { ...g, outcome: { result: 'released' as const, at, detail: 'connwatch release' } }));
      const written = await kube.patch(CONNWATCH_NODES, { namespace: config.controller.namespace, name }, { spec: { grants } }, 'merge');
      if (!written.ok) io.stderr(`${name}: marks removed, but its grants could not be closed: ${written.reason}\n`);
    }
    io.stdout(`${name}: released (${result.changed.join(', ') || 'no connwatch marks'})\n`);
  }
  if (names.length === 0) io.stdout('no node carries connwatch marks\n');
  return failures === 0 ? EXIT.ok : EXIT.problem;
}
