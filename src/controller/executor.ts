/**
 * Executes the core's commands against Kubernetes: one queue per node (a node's steps run in
 * order), every new step through the action gate (kill switch → halt → enablement → journal),
 * reversals journalled directly (the kill switch never blocks them), an Event on the Node for
 * each step, pages through the alerter. Results update the caches at once and settle the core.
 */
import type { ObjectReference } from 'kubernetes-types/core/v1.js';
import type { Logger } from 'pino';
import type { Sleep } from '../common/sleep.js';
import type { KubeClient } from '../kube/client.js';
import type { EventNote, EventRecorder } from '../kube/events.js';
import { RESOURCES } from '../kube/resources.js';
import type { JournalWriter } from '../remediation/journal.js';
import type { ActionGate, ActionOutcome, Alerter, ChannelGrant, Clock } from '../types.js';
import type { ControllerConfig } from './config.js';
import { drainNode } from './drain.js';
import { applyQuarantine, removeMarks } from './marks.js';
import type { ControllerMetrics } from './metrics.js';
import type { Command, Controls } from './model.js';
import { ANNOTATIONS } from './model.js';
import { CONNWATCH_NODES, type ConnwatchNode } from './objects.js';

export interface ExecutorDeps {
  client: KubeClient;
  config: ControllerConfig;
  gate: ActionGate;
  journal: JournalWriter;
  events: EventRecorder;
  alerter: Alerter;
  clock: Clock;
  sleep: Sleep;
  log: Logger;
  metrics: ControllerMetrics;
  controls: () => Controls;
  /** The latest ConnwatchNode of a node (the watch cache), and where a written one goes. */
  channel: (node: string) => ConnwatchNode | undefined;
  storeChannel: (object: ConnwatchNode) => void;
  /** A Node or Pod write happened: refresh the caches from the answer. */
  storeNode: (node: import('kubernetes-types/core/v1.js').Node) => void;
  markPodDeleting: (node: string, uid: string) => void;
  /** The command is done (or given up): the core may decide on it again. */
  settled: (command: Command) => void;
}

/** Runs commands; `idle()` waits for everything started. */
export class Executor {
  readonly #queues = new Map<string, Promise<void>>();
  readonly #drains = new Map<string, AbortController>();
  readonly #running = new Set<Promise<void>>();
  readonly #abort = new AbortController();

  constructor(private readonly d: ExecutorDeps) {}

  run(command: Command): void {
    const key = command.kind === 'raise' || command.kind === 'resolve' ? '' : command.node;
    const previous = this.#queues.get(key) ?? Promise.resolve();
    const next = previous
      .then(() => this.#execute(command))
      .catch((err: unknown) => this.d.log.error({ err, command: command.kind }, 'controller command failed unexpectedly'))
      .finally(() => {
        this.d.settled(command);
        if (this.#queues.get(key) === next) this.#queues.delete(key);
      });
    this.#queues.set(key, next);
    this.#track(next);
  }

  /** Stops drains and waits (bounded) for running commands. */
  async stop(timeoutMs = 5_000): Promise<void> {
    this.#abort.abort();
    for (const drain of this.#drains.values()) drain.abort();
    await Promise.race([Promise.allSettled([...this.#running]), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  }

  /** Waits until nothing runs (tests). */
  async idle(): Promise<void> {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running]);
  }

  #track(p: Promise<void>): void {
    this.#running.add(p);
    void p.finally(() => this.#running.delete(p));
  }

  async #execute(c: Command): Promise<void> {
    const d = this.d;
    switch (c.kind) {
      case 'grant': {
        const written = await this.#writeGrant(c.node, (grants) => [...grants.filter((g) => g.rung !== c.grant.rung), c.grant]);
        if (!written) return;
        d.metrics.grants.inc({ rung: c.grant.rung, shadow: String(c.grant.shadow) });
        if (c.grant.rung === 'restartCilium') await this.#restart(c.node, c.grant, c.evidence);
        else await this.#quarantine(c.node, c.grant, d.config.quarantine.cordon, reasonOf(c.evidence), messageOf(c.evidence), c.evidence);
        return;
      }
      case 'restart':
        await this.#restart(c.node, c.grant, { resumed: true });
        return;
      case 'quarantine':
        await this.#quarantine(c.node, c.grant, c.cordon, c.reason, c.message, { resumed: true });
        return;
      case 'executed':
        await this.#writeGrant(c.node, (grants) => grants.map((g) => (g.id === c.grantId && !g.executed ? { ...g, executed: { at: this.#iso(), detail: c.detail } } : g)));
        return;
      case 'close': {
        await this.#writeGrant(c.node, (grants) => grants.map((g) => (g.id === c.grantId && !g.outcome ? { ...g, outcome: c.outcome } : g)));
        d.metrics.closed.inc({ result: c.outcome.result });
        d.log.info({ node: c.node, grant: c.grantId, outcome: c.outcome }, `grant ${c.grantId} closed: ${c.outcome.result}`);
        return;
      }
      case 'drain':
        await this.#drain(c.node, c.shadow);
        return;
      case 'unquarantine':
        await this.unquarantine(c.node, c.reason, false);
        return;
      case 'hold':
        d.gate.hold({ kind: c.rung, summary: `${c.action} on ${c.node}`, evidence: { node: c.node } }, c.why);
        d.log.info({ node: c.node, action: c.action }, c.why);
        void this.#event(c.node, { type: 'Normal', reason: 'ConnwatchHeld', message: c.why, action: c.action });
        return;
      case 'raise':
        d.alerter.raise(c.alert);
        return;
      case 'resolve':
        d.alerter.resolve(c.id);
        return;
    }
  }

  /** Removes connwatch's marks (a reversal: journalled, never gated). */
  async unquarantine(node: string, why: string, released: boolean): Promise<ActionOutcome> {
    const d = this.d;
    this.#drains.get(node)?.abort();
    const seq = d.journal.append({ wallAt: d.clock.now(), phase: 'intent', action: 'quarantine', decision: 'executed', summary: `remove connwatch's marks from ${node}: ${why}`, evidence: { node, why, released } }).seq;
    const result = await removeMarks(d.client, node, { why, now: d.clock.now(), released });
    const outcome: ActionOutcome = result.ok ? { ok: true, detail: result.changed } : { ok: false, reason: result.reason };
    d.journal.append({ seq, wallAt: d.clock.now(), phase: 'outcome', action: 'quarantine', decision: 'executed', summary: `remove connwatch's marks from ${node}`, outcome });
    d.metrics.remediations.inc({ action: 'unquarantine', result: result.ok ? 'ok' : 'failed' });
    if (result.ok) {
      d.log.info({ node, changed: result.changed }, `un-quarantined ${node}: ${why}`);
      if (result.changed.length > 0) void this.#event(node, { type: 'Normal', reason: 'ConnwatchUnquarantined', message: `connwatch removed its marks (${result.changed.join(', ')}): ${why}` });
      const fresh = await d.client.get(RESOURCES.nodes, { name: node });
      if (fresh.ok) d.storeNode(fresh.value);
    } else d.log.warn({ node, err: result.reason }, 'un-quarantine failed; retrying next round');
    return outcome;
  }

  async #restart(node: string, grant: ChannelGrant, evidence: unknown): Promise<void> {
    const d = this.d;
    const pod = grant.pod!;
    const result = await d.gate.submit({
      kind: 'restartCilium',
      summary: `restart Cilium on ${node}: delete pod ${d.config.ciliumNamespace}/${pod.name} (grant ${grant.id}, attempt ${grant.attempt ?? 1})`,
      evidence,
      execute: async (signal) => {
        const deleted = await d.client.delete(RESOURCES.pods, { namespace: d.config.ciliumNamespace, name: pod.name }, { preconditions: { uid: pod.uid } }, { signal });
        if (deleted.ok) return { ok: true, detail: `deleted ${pod.name} (uid ${pod.uid})` };
        // Gone or replaced already (a 404, or a 409 on the uid precondition): that instance is not running; nothing is deleted twice.
        if (deleted.code === 'not-found' || deleted.code === 'conflict') return { ok: true, detail: `${pod.name} (uid ${pod.uid}) was already gone` };
        return { ok: false, reason: deleted.reason };
      },
    });
    if (result.decision === 'shadowed') {
      void this.#event(node, { type: 'Normal', reason: 'ConnwatchWouldRestartCilium', message: `shadow mode: would have restarted Cilium (deleted pod ${pod.name}) for grant ${grant.id}` });
      d.metrics.remediations.inc({ action: 'restartCilium', result: 'shadow' });
      if (!grant.shadow) await this.#writeGrant(node, (grants) => grants.map((g) => (g.id === grant.id ? { ...g, shadow: true } : g)));
      return;
    }
    if (result.decision !== 'executed') {
      d.metrics.remediations.inc({ action: 'restartCilium', result: result.decision });
      return; // killed/halted/disabled at the step boundary: the grant stays unexecuted and expires
    }
    const outcome = result.outcome!;
    d.metrics.remediations.inc({ action: 'restartCilium', result: outcome.ok ? 'ok' : 'failed' });
    if (!outcome.ok) {
      void this.#event(node, { type: 'Warning', reason: 'ConnwatchRestartFailed', message: `could not delete cilium pod ${pod.name}: ${outcome.reason}` });
      return;
    }
    d.markPodDeleting(node, pod.uid);
    await this.#writeGrant(node, (grants) => grants.map((g) => (g.id === grant.id ? { ...g, executed: { at: this.#iso(), detail: String(outcome.detail) } } : g)));
    void this.#event(node, { type: 'Normal', reason: 'ConnwatchRestartedCilium', message: `connwatch deleted cilium pod ${pod.name} (grant ${grant.id}, attempt ${grant.attempt ?? 1}); the DaemonSet recreates it` });
  }

  async #quarantine(node: string, grant: ChannelGrant, cordon: boolean, reason: string, message: string, evidence: unknown): Promise<void> {
    const d = this.d;
    const result = await d.gate.submit({
      kind: 'quarantine',
      summary: `quarantine ${node}: taint ${'connwatch.io/pod-network-unavailable'}:NoSchedule, condition PodNetworkUnavailable=True${cordon ? ', cordon' : ''} (grant ${grant.id})`,
      evidence,
      execute: async () => {
        const applied = await applyQuarantine(d.client, node, { grantId: grant.id, cordon, reason, message, now: d.clock.now() });
        return applied.ok ? { ok: true, detail: applied.changed } : { ok: false, reason: applied.reason };
      },
    });
    if (result.decision === 'shadowed') {
      void this.#event(node, { type: 'Normal', reason: 'ConnwatchWouldQuarantine', message: `shadow mode: would have quarantined the node (grant ${grant.id}): ${message}` });
      d.metrics.remediations.inc({ action: 'quarantine', result: 'shadow' });
      if (!grant.shadow) await this.#writeGrant(node, (grants) => grants.map((g) => (g.id === grant.id ? { ...g, shadow: true } : g)));
      return;
    }
    if (result.decision !== 'executed') {
      d.metrics.remediations.inc({ action: 'quarantine', result: result.decision });
      return;
    }
    const outcome = result.outcome!;
    d.metrics.remediations.inc({ action: 'quarantine', result: outcome.ok ? 'ok' : 'failed' });
    const fresh = await d.client.get(RESOURCES.nodes, { name: node });
    if (fresh.ok) d.storeNode(fresh.value);
    if (!outcome.ok) {
      void this.#event(node, { type: 'Warning', reason: 'ConnwatchQuarantineFailed', message: outcome.reason });
      return;
    }
    await this.#writeGrant(node, (grants) => grants.map((g) => (g.id === grant.id && !g.executed ? { ...g, executed: { at: this.#iso(), detail: 'node quarantined' } } : g)));
    void this.#event(node, { type: 'Warning', reason: 'ConnwatchQuarantined', message: `connwatch quarantined the node (${(outcome.detail as string[]).join(', ') || 'marks already in place'}): ${message}` });
  }

  async #drain(node: string, shadow: boolean): Promise<void> {
    const d = this.d;
    if (shadow) {
      await d.gate.submit({ kind: 'quarantine', summary: `drain ${node} through the Eviction API`, evidence: { node }, execute: async () => ({ ok: true }) });
      d.metrics.remediations.inc({ action: 'drain', result: 'shadow' });
      void this.#event(node, { type: 'Normal', reason: 'ConnwatchWouldDrain', message: 'shadow mode: would have drained the node through the Eviction API' });
      return;
    }
    if (this.#drains.has(node)) return;
    const started = await d.gate.submit({
      kind: 'quarantine',
      summary: `drain ${node} through the Eviction API`,
      evidence: { node },
      execute: async () => {
        const written = await d.client.patch(RESOURCES.nodes, { name: node }, { metadata: { annotations: { [ANNOTATIONS.drain]: this.#iso() } } }, 'merge');
        if (written.ok) d.storeNode(written.value);
        return written.ok ? { ok: true } : { ok: false, reason: written.reason };
      },
    });
    if (started.decision !== 'executed' || !started.outcome?.ok) return;
    void this.#event(node, { type: 'Warning', reason: 'ConnwatchDraining', message: 'connwatch is draining the node through the Eviction API (PodDisruptionBudgets respected)' });
    const abort = new AbortController();
    this.#drains.set(node, abort);
    // The drain may wait on budgets for long: it runs beside the node's queue, so an un-quarantine is never stuck behind it.
    this.#track(this.#runDrain(node, abort));
  }

  async #runDrain(node: string, abort: AbortController): Promise<void> {
    const d = this.d;
    const signal = AbortSignal.any([abort.signal, this.#abort.signal]);
    const ended = await drainNode({
      client: d.client,
      node,
      ownNamespace: d.config.namespace,
      retryMs: d.config.quarantine.drain.retryMs,
      sleep: d.sleep,
      signal,
      stopWhy: () => {
        const c = d.controls();
        return c.killSwitch.active ? `kill switch on (${c.killSwitch.source})` : c.halt.active ? `halted (${c.halt.source})` : undefined;
      },
      log: d.log,
    });
    d.journal.append({ wallAt: d.clock.now(), phase: 'outcome', action: 'quarantine', decision: 'executed', summary: `drain ${node}`, outcome: ended.done ? { ok: true, detail: ended } : { ok: false, reason: ended.why, detail: ended } });
    d.metrics.remediations.inc({ action: 'drain', result: ended.done ? 'ok' : 'stopped' });
    try {
      if (ended.done) {
        const written = await d.client.patch(RESOURCES.nodes, { name: node }, { metadata: { annotations: { [ANNOTATIONS.drained]: this.#iso() } } }, 'merge');
        if (written.ok) d.storeNode(written.value);
        void this.#event(node, { type: 'Normal', reason: 'ConnwatchDrained', message: `connwatch drained the node (${ended.evicted} pod(s) evicted, ${ended.refusals} PodDisruptionBudget refusal(s) waited out)` });
      }
    } finally {
      // Only once "drained" is in the cache: a round in between would otherwise start a second drain.
      this.#drains.delete(node);
    }
  }

  /** Rewrites a node's spec.grants from the latest cached object; false when it could not. */
  async #writeGrant(node: string, change: (grants: ChannelGrant[]) => ChannelGrant[]): Promise<boolean> {
    const d = this.d;
    const namespace = d.config.namespace;
    let current = d.channel(node);
    for (let attempt = 0; attempt < 3; attempt++) {
      if (!current) {
        const got = await d.client.get(CONNWATCH_NODES, { namespace, name: node });
        if (!got.ok) {
          d.log.warn({ node, err: got.reason }, 'cannot read the ConnwatchNode');
          return false;
        }
        current = got.value;
      }
      const grants = change(current.spec?.grants ?? []);
      const written = await d.client.patch(CONNWATCH_NODES, { namespace, name: node }, { spec: { grants } }, 'merge');
      if (written.ok) {
        d.storeChannel(written.value);
        return true;
      }
      if (written.code !== 'conflict') {
        d.log.warn({ node, err: written.reason }, 'cannot write the grant');
        return false;
      }
      current = undefined;
    }
    return false;
  }

  async #event(node: string, note: EventNote): Promise<void> {
    // As kubelet does (and `kubectl describe node` looks for): a Node's events carry its name as uid.
    const ref: ObjectReference = { kind: 'Node', apiVersion: 'v1', name: node, uid: node };
    const recorded = await this.d.events.record(ref, note);
    if (!recorded.ok) this.d.log.debug({ node, err: recorded.reason }, 'event not recorded');
  }

  #iso(): string {
    return new Date(this.d.clock.now()).toISOString();
  }
}

function reasonOf(evidence: unknown): string {
  const verdict = (evidence as { verdict?: { kind?: string } } | undefined)?.verdict?.kind;
  return verdict ?? 'PodNetworkUnavailable';
}

function messageOf(evidence: unknown): string {
  const e = evidence as { verdict?: { kind?: string; reasons?: string[] }; evidence?: { failingProbes?: string[] } } | undefined;
  const reasons = (e?.verdict?.reasons ?? []).slice(0, 3).join('; ');
  const failing = (e?.evidence?.failingProbes ?? []).slice(0, 3).join(', ');
  return `connwatch: ${e?.verdict?.kind ?? 'no pod network'}${reasons ? `: ${reasons}` : ''}${failing ? ` (failing: ${failing})` : ''}`.slice(0, 1000);
}
