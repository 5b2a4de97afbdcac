/**
 * The fleet view (issue 22): the Grafana dashboard (deploy/grafana/connwatch-fleet.json) and the
 * Prometheus rules (deploy/prometheus/connwatch-rules.yaml).
 *
 * - Shape: schema version, the ${datasource} variable, cluster/site/node templating, a unit and a
 *   description on every panel; every alert has a runbook section in docs/runbooks.md and every
 *   panel and rule is described in docs/fleet-view.md.
 * - Every panel query parses: `promtool check rules` on a generated rule file holding each panel
 *   expression (Grafana variables substituted) as a recording rule.
 * - Every metric the dashboard and the rules use is exported: the real agent (`connwatch run`, from
 *   the sources, in Kubernetes mode against an API server that refuses connections, in a network
 *   namespace of the test's own) and the real controller (`connwatch controller`) are started and
 *   their /metrics scraped; a selector on the agents' job must name an agent metric, one on the
 *   controller's job a controller metric; histogram _bucket/_sum/_count resolve to their family.
 * - The real Prometheus scrapes both, loads the rules and the panel rules: every rule evaluates
 *   without error and every panel query answers.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { freePort } from '../support/ports.js';
import { eventually, stopChild } from '../support/process.js';

const ROOT = resolve(import.meta.dirname, '../..');
const DASHBOARD_PATH = join(ROOT, 'deploy/grafana/connwatch-fleet.json');
const RULES_PATH = join(ROOT, 'deploy/prometheus/connwatch-rules.yaml');
const PROMTOOL = '/usr/bin/promtool';
const PROMETHEUS = '/usr/bin/prometheus';
const AGENT_JOB = 'connwatch';
const CONTROLLER_JOB = 'connwatch-controller';

interface Target {
  refId: string;
  expr: string;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  description?: string;
  datasource?: { type: string; uid: string };
  fieldConfig?: { defaults?: { unit?: string } };
  targets?: (Target & { datasource?: { uid: string } })[];
}
interface Dashboard {
  schemaVersion: number;
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown; includeAll?: boolean; allValue?: string }[] };
  annotations: { list: { name: string; expr?: string }[] };
}
interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

const dashboard = JSON.parse(readFileSync(DASHBOARD_PATH, 'utf8')) as Dashboard;
const rules = (parse(readFileSync(RULES_PATH, 'utf8')) as { groups: { name: string; rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
const panels = dashboard.panels.filter((p) => p.type !== 'row');

/** Grafana's variables as a default install resolves them: the two jobs, every cluster, site and node. */
function promql(expr: string): string {
  const values: Record<string, string> = { job: AGENT_JOB, controller_job: CONTROLLER_JOB, cluster: '.*', site: '.*', node: '.*', __rate_interval: '1m', __interval: '30s', __range: '1h' };
  return expr.replace(/\$\{(\w+)\}|\$(\w+)/g, (whole, a: string | undefined, b: string | undefined) => {
    const name = (a ?? b)!;
    if (!(name in values)) throw new Error(`unknown Grafana variable ${whole} in ${expr}`);
    return values[name]!;
  });
}

/** Every query the dashboard runs: panel targets and annotation queries. */
const panelQueries: { where: string; expr: string }[] = [
  ...panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr }))),
  ...dashboard.annotations.list.filter((a) => a.expr).map((a) => ({ where: `annotation "${a.name}"`, expr: a.expr! })),
];
const ruleQueries = rules.map((r) => ({ where: `rule ${r.alert ?? r.record}`, expr: r.expr }));
const recorded = new Set(rules.flatMap((r) => (r.record ? [r.record] : [])));
/** Series Prometheus makes itself. */
const PROMETHEUS_OWN = new Set(['up', 'ALERTS', 'ALERTS_FOR_STATE']);

/** The metric selectors of an expression: name, and which job its matchers name (agent, controller, either). */
function selectors(expr: string): { name: string; job: 'agent' | 'controller' | 'either' }[] {
  const out: { name: string; job: 'agent' | 'controller' | 'either' }[] = [];
  // A metric name: not preceded by a word character, colon or quote; not a function call; not inside "by (…)".
  const grouping = /\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g;
  const cleaned = expr.replace(grouping, ' ');
  for (const m of cleaned.matchAll(/(?<![\w:"$.])([a-zA-Z_:][\w:]*)\s*(\{([^}]*)\})?/g)) {
    const name = m[1]!;
    const matchers = m[3] ?? '';
    const next = cleaned.slice(m.index! + m[0].length).trimStart();
    if (next.startsWith('(')) continue; // a function or aggregation
    if (!name.startsWith('connwatch') && !name.includes(':') && !PROMETHEUS_OWN.has(name)) continue; // keywords, durations, numbers
    const controller = /\$controller_job|"connwatch-controller"/.test(matchers);
    const agent = /\$job\b|job=~?"connwatch"/.test(matchers);
    const job = controller && agent ? 'either' : controller ? 'controller' : agent ? 'agent' : 'either';
    out.push({ name, job });
  }
  return out;
}

describe('the fleet dashboard and rules: shape and documentation', () => {
  it('is a Grafana 10/11 dashboard with a ${datasource} variable and cluster/site/node templating', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    expect(dashboard.uid).toBe('connwatch-fleet');
    const vars = new Map(dashboard.templating.list.map((v) => [v.name, v]));
    expect(vars.get('datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    for (const name of ['cluster', 'site', 'node']) expect(vars.get(name), name).toMatchObject({ type: 'query', includeAll: true, allValue: '.*' });
    expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length);
  });

  it('gives every panel a unit, a description and the ${datasource}', () => {
    expect(panels.length).toBeGreaterThanOrEqual(20);
    for (const p of panels) {
      expect(p.description?.length ?? 0, `${p.title}: description`).toBeGreaterThan(20);
      expect(p.fieldConfig?.defaults?.unit, `${p.title}: unit`).toBeTruthy();
      expect(p.datasource?.uid, `${p.title}: datasource`).toBe('${datasource}');
      expect(p.targets?.length ?? 0, `${p.title}: targets`).toBeGreaterThan(0);
      for (const t of p.targets ?? []) expect(t.datasource?.uid, `${p.title} ${t.refId}`).toBe('${datasource}');
    }
  });

  it('covers what issue 22 asks for: state, detection, restore, budget, halts, delivery, spool, probes, hazards, API requests', () => {
    const used = new Set(panelQueries.flatMap((q) => selectors(q.expr).map((s) => s.name.replace(/_(bucket|sum|count)$/, ''))));
    for (const name of [
      'connwatch_state',
      'connwatch_detection_seconds',
      'connwatch_restore_latency_seconds',
      'connwatch_controller_restart_slots_in_use',
      'connwatch_controller_ramp_width',
      'connwatch_controller_halted',
      'connwatch_controller_halts_total',
      'connwatch_controller_grants_total',
      'connwatch_quarantined',
      'connwatch_remediations_total',
      'connwatch_alerts_total',
      'connwatch_alert_spool_depth',
      'connwatch_probe_duration_seconds',
      'connwatch_probe_failures_total',
      'connwatch_hazard',
      'connwatch_kube_requests_total',
    ]) {
      expect(used, name).toContain(name);
    }
    const alerts = rules.flatMap((r) => (r.alert ? [r.alert] : []));
    for (const name of ['ConnwatchFleetBroken', 'ConnwatchRemediationHalted', 'ConnwatchAgentDown', 'ConnwatchAgentsAbsent', 'ConnwatchControllerAbsent', 'ConnwatchNodesDark', 'ConnwatchAlertSpoolGrowing', 'Watchdog']) {
      expect(alerts, name).toContain(name);
    }
  });

  it('links every alert to its section of docs/runbooks.md, and docs/fleet-view.md describes every panel and rule', () => {
    const runbooks = readFileSync(join(ROOT, 'docs/runbooks.md'), 'utf8');
    const fleetView = readFileSync(join(ROOT, 'docs/fleet-view.md'), 'utf8');
    const anchors = new Set([...runbooks.matchAll(/^#{2,3} (\S+)\s*$/gm)].map((m) => m[1]!.toLowerCase()));
    for (const rule of rules) {
      if (rule.record) {
        expect(fleetView, rule.record).toContain(rule.record);
        continue;
      }
      const name = rule.alert!;
      expect(rule.labels?.severity, `${name}: severity`).toMatch(/^(critical|warning|info|none)$/);
      expect(rule.annotations?.summary, `${name}: summary`).toBeTruthy();
      expect(rule.annotations?.description, `${name}: description`).toBeTruthy();
      expect(rule.annotations?.runbook_url, `${name}: runbook_url`).toBe(`https://github.com/connwatch/connwatch/blob/main/docs/runbooks.md#${name.toLowerCase()}`);
      expect(anchors, `docs/runbooks.md has a section ${name}`).toContain(name.toLowerCase());
      expect(fleetView, `docs/fleet-view.md mentions ${name}`).toContain(name);
    }
    for (const p of panels) expect(fleetView, `docs/fleet-view.md describes panel "${p.title}"`).toContain(p.title);
  });

  it('uses recording rules only where the rules file records them, and names no unknown series', () => {
    for (const q of [...panelQueries, ...ruleQueries]) {
      const found = selectors(q.expr);
      if (q.expr.trim() !== 'vector(1)') expect(found.length, q.where).toBeGreaterThan(0);
      for (const s of found) if (s.name.includes(':')) expect(recorded, `${q.where}: ${s.name}`).toContain(s.name);
    }
  });
});

describe.skipIf(!existsSync(PROMTOOL))('every panel query parses (promtool)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'connwatch-fleet-view-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('promtool check rules accepts every panel expression as a recording rule', async () => {
    const file = join(dir, 'panels.yaml');
    await writeFile(file, panelRulesYaml());
    const out = execFileSync(PROMTOOL, ['check', 'rules', file], { encoding: 'utf8' });
    expect(out).toContain(`SUCCESS: ${panelQueries.length} rules found`);
  });

  it('promtool check rules and promtool test rules pass on deploy/prometheus', () => {
    const cwd = join(ROOT, 'deploy/prometheus');
    expect(execFileSync(PROMTOOL, ['check', 'rules', 'connwatch-rules.yaml'], { cwd, encoding: 'utf8' })).toContain(`SUCCESS: ${rules.length} rules found`);
    expect(execFileSync(PROMTOOL, ['test', 'rules', 'connwatch-rules.test.yaml'], { cwd, encoding: 'utf8' })).toContain('SUCCESS');
  });
});

function panelRulesYaml(): string {
  return stringify({ groups: [{ name: 'connwatch-fleet-dashboard', rules: panelQueries.map((q, i) => ({ record: `connwatch_dashboard:query_${i}`, expr: promql(q.expr) })) }] });
}

// ---- the running agent and controller ---------------------------------------------------------

const isRoot = process.getuid?.() === 0;
const canRun = isRoot && ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip'].some((path) => existsSync(path));
if (!canRun) console.warn('skipping the exported-metrics part of the fleet-view test: it needs root for a network namespace');

interface Families {
  types: Map<string, string>;
  help: Map<string, string>;
}

function parseFamilies(text: string): Families {
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(m[1]!, m[2]!);
  for (const m of text.matchAll(/^# HELP (\S+) (.*)$/gm)) help.set(m[1]!, m[2]!);
  return { types, help };
}

/** docs/metrics.md: the reference table, from what the running agent and controller say of their metrics. */
function renderMetricsDoc(agent: Families, controller: Families): string {
  const names = [...new Set([...agent.types.keys(), ...controller.types.keys()])].filter((n) => n.startsWith('connwatch_')).sort();
  const row = (n: string): string => {
    const by = [agent.types.has(n) ? 'agent' : '', controller.types.has(n) ? 'controller' : ''].filter(Boolean).join(', ');
    const help = (agent.help.get(n) ?? controller.help.get(n) ?? '').replace(/\|/g, '\\|');
    return `| \`${n}\` | ${agent.types.get(n) ?? controller.types.get(n)} | ${by} | ${help} |`;
  };
  return [
    '# Metrics reference',
    '',
    'Every `connwatch_` metric, as the running agent (`connwatch run`, Kubernetes mode) and the controller',
    '(`connwatch controller`) export it on `/metrics` — generated by test/integration/fleet-view.test.ts, which',
    'fails when this page is stale (`CONNWATCH_UPDATE_DOCS=1 npx vitest run test/integration/fleet-view.test.ts`',
    'rewrites it). Both also export Node\'s process metrics (`process_*`, `nodejs_*`). Which alert and which',
    'dashboard panel reads each: [fleet-view.md](fleet-view.md); what to do when one fires: [runbooks.md](runbooks.md).',
    '',
    '| metric | type | exported by | help |',
    '|---|---|---|---|',
    ...names.map(row),
    '',
  ].join('\n');
}

/** The family a series name belongs to: itself, or a histogram's / summary's _bucket, _sum, _count. */
function familyOf(name: string, families: Families): string | undefined {
  if (families.types.has(name)) return name;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  if (m && ['histogram', 'summary'].includes(families.types.get(m[1]!) ?? '') && (m[2] !== 'bucket' || families.types.get(m[1]!) === 'histogram')) return m[1];
  return undefined;
}

function httpGet(opts: { socketPath?: string; port?: number; path: string }): Promise<{ status: number; body: string }> {
  return new Promise((resolveGet, reject) => {
    const req = request({ host: '127.0.0.1', ...opts, method: 'GET', timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolveGet({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

describe.skipIf(!canRun || !isRoot)('every metric the dashboard and the rules use is exported by the running agent or controller', () => {
  const netns = `cw-fleet-${process.pid}`;
  let dir: string;
  let agent: ChildProcess | undefined;
  let controller: ChildProcess | undefined;
  let prometheus: ChildProcess | undefined;
  let relay: Server | undefined;
  let log = '';
  let controllerPort = 0;
  let agentFamilies: Families;
  let controllerFamilies: Families;
  const context = () => `output:\n${log.slice(-4000)}`;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'connwatch-fleet-'));
    // An API server that refuses connections: the agent and the controller start, count their
    // requests as unreachable and keep retrying.
    const apiPort = await freePort();
    const kubeconfig = join(dir, 'kubeconfig');
    await writeFile(
      kubeconfig,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'test', cluster: { server: `https://127.0.0.1:${apiPort}` } }],
        users: [{ name: 'test', user: { token: 'fleet-view-test' } }],
        contexts: [{ name: 'test', context: { cluster: 'test', user: 'test', namespace: 'connwatch' } }],
        'current-context': 'test',
      }),
    );
    const env = { ...process.env };
    for (const key of Object.keys(env)) if (key.startsWith('CONNWATCH_') || key === 'KUBERNETES_SERVICE_HOST') delete env[key];
    env.DBUS_SYSTEM_BUS_ADDRESS = `unix:path=${join(dir, 'no-bus')}`;
    const cli = ['--import', 'tsx', join(ROOT, 'src/cli.ts')];
    const capture = (name: string, child: ChildProcess) => {
      child.stdout?.on('data', (d: Buffer) => (log += `[${name}] ${d.toString()}`));
      child.stderr?.on('data', (d: Buffer) => (log += `[${name}] ${d.toString()}`));
      return child;
    };

    // The agent in its own network namespace (it reads and watches only that namespace's datapath).
    execFileSync('ip', ['netns', 'add', netns]);
    execFileSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    const agentState = join(dir, 'agent');
    agent = capture(
      'agent',
      spawn('ip', ['netns', 'exec', netns, process.execPath, ...cli, 'run', '--mode', 'kubernetes', '--set', `kube.kubeconfig=${kubeconfig}`, '--state-dir', agentState, '--listen', '127.0.0.1:9820'], {
        cwd: ROOT,
        env: { ...env, NODE_NAME: 'fleet-node-a' },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    controllerPort = await freePort();
    controller = capture(
      'controller',
      spawn(process.execPath, [...cli, 'controller', '--set', `kube.kubeconfig=${kubeconfig}`, '--state-dir', join(dir, 'controller'), '--listen', `127.0.0.1:${controllerPort}`], {
        cwd: ROOT,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    // /metrics of the agent, over its unix socket (the file system is shared with its namespace).
    const socketPath = join(agentState, 'telemetry.sock');
    const agentText = await eventually(
      "the agent's /metrics with connwatch_kube_requests_total",
      async () => {
        const got = await httpGet({ socketPath, path: '/metrics' });
        return got.status === 200 && got.body.includes('# TYPE connwatch_kube_requests_total') && got.body.includes('# TYPE connwatch_hazard') ? got.body : undefined;
      },
      45_000,
      context,
    );
    agentFamilies = parseFamilies(agentText);
    const controllerText = await eventually(
      "the controller's /metrics",
      async () => {
        const got = await httpGet({ port: controllerPort, path: '/metrics' });
        return got.status === 200 && got.body.includes('# TYPE connwatch_controller_halted') ? got.body : undefined;
      },
      45_000,
      context,
    );
    controllerFamilies = parseFamilies(controllerText);
    // A TCP relay on the host's loopback to the agent's socket, for Prometheus to scrape.
    relay = createServer((c) => {
      const up = connect(socketPath);
      c.pipe(up).pipe(c);
      c.on('error', () => up.destroy());
      up.on('error', () => c.destroy());
    });
    await new Promise<void>((r) => relay!.listen(0, '127.0.0.1', r));
  }, 120_000);

  afterAll(async () => {
    await Promise.all([stopChild(agent), stopChild(controller), stopChild(prometheus)]);
    await new Promise<void>((r) => (relay ? relay.close(() => r()) : r()));
    try {
      execFileSync('ip', ['netns', 'del', netns]);
    } catch {
      // never made
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('resolves every metric of every panel and rule to a family the agent or the controller exports', () => {
    const missing: string[] = [];
    for (const q of [...panelQueries, ...ruleQueries]) {
      for (const s of selectors(q.expr)) {
        if (PROMETHEUS_OWN.has(s.name) || s.name.includes(':')) continue;
        const inAgent = familyOf(s.name, agentFamilies);
        const inController = familyOf(s.name, controllerFamilies);
        const ok = s.job === 'agent' ? inAgent : s.job === 'controller' ? inController : (inAgent ?? inController);
        if (!ok) missing.push(`${q.where}: ${s.name} (${s.job === 'either' ? 'agent or controller' : s.job})`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('docs/metrics.md lists every connwatch_ metric the agent and the controller export, with its type and help', () => {
    const rendered = renderMetricsDoc(agentFamilies, controllerFamilies);
    const path = join(ROOT, 'docs/metrics.md');
    if (process.env['CONNWATCH_UPDATE_DOCS'] === '1') writeFileSync(path, rendered);
    expect(existsSync(path) ? readFileSync(path, 'utf8') : '', 'docs/metrics.md is stale: CONNWATCH_UPDATE_DOCS=1 npx vitest run test/integration/fleet-view.test.ts').toBe(rendered);
  });

  it('checks a controller-only metric against the controller and not the agent', () => {
    expect(familyOf('connwatch_controller_ramp_width', controllerFamilies)).toBe('connwatch_controller_ramp_width');
    expect(familyOf('connwatch_controller_ramp_width', agentFamilies)).toBeUndefined();
    expect(familyOf('connwatch_detection_seconds_bucket', agentFamilies)).toBe('connwatch_detection_seconds');
    expect(familyOf('connwatch_state_bucket', agentFamilies)).toBeUndefined();
  });

  it.skipIf(!existsSync(PROMETHEUS))('the real Prometheus evaluates every rule and answers every panel query', async () => {
    const webPort = await freePort();
    const api = `http://127.0.0.1:${webPort}`;
    const panelsFile = join(dir, 'panels.yaml');
    await writeFile(panelsFile, panelRulesYaml());
    const config = join(dir, 'prometheus.yml');
    const { port: relayPort } = relay!.address() as { port: number };
    await writeFile(
      config,
      stringify({
        global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s', external_labels: {} },
        rule_files: [RULES_PATH, panelsFile],
        scrape_configs: [
          { job_name: AGENT_JOB, static_configs: [{ targets: [`127.0.0.1:${relayPort}`], labels: { cluster: 'test', site: 'lab' } }] },
          { job_name: CONTROLLER_JOB, static_configs: [{ targets: [`127.0.0.1:${controllerPort}`], labels: { cluster: 'test' } }] },
        ],
      }),
    );
    prometheus = spawn(PROMETHEUS, [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${webPort}`, '--log.level=warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
    prometheus.stdout?.on('data', (d: Buffer) => (log += `[prometheus] ${d.toString()}`));
    prometheus.stderr?.on('data', (d: Buffer) => (log += `[prometheus] ${d.toString()}`));
    type RuleState = { name: string; health: string; lastError?: string; lastEvaluation: string };
    const evaluated = await eventually(
      'every rule evaluated twice with both targets up',
      async () => {
        const targets = (await (await fetch(`${api}/api/v1/targets`)).json()) as { data: { activeTargets: { health: string }[] } };
        if (targets.data.activeTargets.length !== 2 || targets.data.activeTargets.some((t) => t.health !== 'up')) return undefined;
        const body = (await (await fetch(`${api}/api/v1/rules`)).json()) as { data: { groups: { rules: RuleState[] }[] } };
        const all = body.data.groups.flatMap((g) => g.rules);
        if (all.length !== rules.length + panelQueries.length) return undefined;
        // A second round, so that rates and recorded rules have data to work on.
        await new Promise((r) => setTimeout(r, 3000));
        const again = (await (await fetch(`${api}/api/v1/rules`)).json()) as { data: { groups: { rules: RuleState[] }[] } };
        const rulesNow = again.data.groups.flatMap((g) => g.rules);
        return rulesNow.every((r) => !r.lastEvaluation.startsWith('0001')) ? rulesNow : undefined;
      },
      60_000,
      context,
    );
    expect(evaluated.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.health} ${r.lastError ?? ''}`)).toEqual([]);

    for (const q of panelQueries) {
      const body = (await (await fetch(`${api}/api/v1/query?query=${encodeURIComponent(promql(q.expr))}`)).json()) as { status: string; error?: string };
      expect(body.status, `${q.where}: ${body.error ?? ''}`).toBe('success');
    }
    // The fleet is one Healthy agent, and the broken share is zero.
    const states = (await (await fetch(`${api}/api/v1/query?query=${encodeURIComponent(`sum by (state) (connwatch_state{job="${AGENT_JOB}"})`)}`)).json()) as { data: { result: { metric: { state: string }; value: [number, string] }[] } };
    expect(states.data.result.find((r) => r.metric.state === 'Healthy')?.value[1]).toBe('1');
    const share = (await (await fetch(`${api}/api/v1/query?query=cluster:connwatch_nodes_not_ok:ratio`)).json()) as { data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
    expect(share.data.result).toEqual([expect.objectContaining({ metric: { __name__: 'cluster:connwatch_nodes_not_ok:ratio', cluster: 'test' }, value: [expect.any(Number), '0'] })]);
  }, 90_000);
});
