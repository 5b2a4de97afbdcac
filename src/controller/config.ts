import { z } from 'zod';

const ms = (fallback: number, text: string) => z.number().int().min(0).default(fallback).describe(text);
const share = (fallback: number, text: string) => z.number().min(0).max(100).default(fallback).describe(text);

/** The restart budget, paced like a progressive rollout. */
const restart = z
  .strictObject({
    maxConcurrent: z.number().int().min(1).default(100).describe('At most this many Cilium restarts at once, fleet-wide (every not-ready cilium pod counts, whatever restarted it); maxPercent bounds smaller fleets, this bounds the API server load of the restarted agents\' re-lists.'),
    maxPercent: share(5, 'At most this share of nodes (%) restarting Cilium at once (rounded down, at least 1).'),
    perZone: z.number().int().min(1).default(40).describe('At most this many Cilium restarts at once per zone (label topology.kubernetes.io/zone; nodes without it form one zone).'),
    canaries: z.number().int().min(1).max(2).default(1).describe('Width of the first wave: restarts allowed before any has verifiably fixed a node.'),
    widenFactor: z.number().min(1).max(10).default(2).describe('When a whole wave verifiably fixed its nodes, the width grows by this factor (up to maxConcurrent).'),
    successThreshold: z.number().min(0).max(1).default(0.8).describe('Halt fleet-wide (and page once) when the recent success rate of executed restarts falls below this.'),
    minSamples: z.number().int().min(1).default(3).describe('Outcomes needed before the success rate is judged (canaries and the first restart after a resume halt on their first failure).'),
    windowSize: z.number().int().min(1).max(1000).default(20).describe('The success rate covers at most this many recent outcomes.'),
    windowMs: ms(1_800_000, 'The success rate covers outcomes no older than this (ms).'),
    haltTimeoutMs: ms(600_000, 'After a halt, resume at width 1 after this long (ms); the first failure then halts again.'),
    maxAttempts: z.number().int().min(1).max(20).default(3).describe('Restarts per node and incident before the controller stops granting them (the agent then asks for quarantine).'),
    backoffMs: ms(60_000, 'Wait after a failed restart before the next one on that node; doubled per attempt (ms).'),
    grantTtlMs: ms(300_000, 'A restart grant expires this long after it was written (ms): never executed after it, and counted as a failure when not verified by then.'),
    livenessWindowMs: ms(120_000, "A cilium pod whose container kubelet restarted within this long (or in CrashLoopBackOff) is kubelet's to restart, not connwatch's (ms)."),
  })
  .prefault({})
  .describe('Cilium restarts: budget, ramp, halt, retries.');

/** Quarantine and drain ceilings. */
const quarantine = z
  .strictObject({
    maxPercent: share(20, 'Quarantine ceiling: at most this share of nodes (%) quarantined at once (EKS stops above 20% unhealthy).'),
    max: z.number().int().min(0).default(100).describe('Quarantine ceiling: at most this many nodes quarantined at once.'),
    cordon: z.boolean().default(true).describe('Also cordon a quarantined node (only one that was schedulable; connwatch uncordons only what it cordoned).'),
    grantTtlMs: ms(300_000, 'A quarantine grant not executed within this long (ms) expires and is never used.'),
    healthyForMs: ms(300_000, "Un-quarantine once the node's agent has reported Healthy for this long (ms); an unknown verdict never counts."),
    unrepairableAfterMs: ms(300_000, 'Quarantine (under the ceiling) a node that has asked for a Cilium restart this long (ms) while nobody can repair it: restarts halted fleet-wide by the ramp, or its restart attempts exhausted.'),
    drain: z
      .strictObject({
        enabled: z.boolean().default(false).describe('Drain quarantined nodes through the Eviction API (respects PodDisruptionBudgets); the drain moves traffic off the node.'),
        maxPercent: share(5, 'Drain ceiling: at most this share of nodes (%) draining or drained at once.'),
        max: z.number().int().min(0).default(10).describe('Drain ceiling: at most this many nodes draining or drained at once.'),
        retryMs: ms(5_000, 'Wait before asking again after a PodDisruptionBudget refused an eviction (429) (ms).'),
      })
      .prefault({})
      .describe('Draining quarantined nodes.'),
  })
  .prefault({})
  .describe('Quarantine: taint, condition, optional cordon and drain, under their ceilings.');

/** The `controller:` section of connwatch's configuration (owned by the controller box). */
export const controllerConfig = z
  .strictObject({
    namespace: z.string().min(1).default('connwatch').describe("connwatch's namespace: the ConnwatchNodes, the Lease, the control ConfigMap and the state ConfigMap live here."),
    configMap: z.string().min(1).default('connwatch').describe('ConfigMap operators edit without the controller: data.killSwitch, data.halt ("true"/"false"), data.rampReset (changing it resets the ramp).'),
    stateConfigMap: z.string().min(1).default('connwatch-controller-state').describe("ConfigMap where the leader keeps the ramp (width, halt, recent outcomes) for the next leader."),
    leaseName: z.string().min(1).default('connwatch-controller').describe('The Lease the controller replicas elect a leader on.'),
    identity: z.string().min(1).optional().describe('This replica\'s identity in the Lease. Default: the node name, the process id and a random suffix.'),
    ciliumNamespace: z.string().min(1).default('kube-system').describe("Namespace of Cilium's agent pods."),
    ciliumSelector: z.string().min(1).default('k8s-app=cilium').describe("Label selector of Cilium's agent pods (one per node, matched by spec.nodeName)."),
    reconcileIntervalMs: z.number().int().min(50).default(1_000).describe('The decision core runs at least this often (ms), and soon after every watched change.'),
    heartbeatPeriodMs: ms(300_000, "The agents' status heartbeat period (ms): a heartbeat older than two periods while the Node is not Ready is \"went dark\"."),
    agentGoneAfterMs: ms(3_600_000, "Remove connwatch's marks from a node whose agent has not written a heartbeat for this long (ms)."),
    releaseHoldMs: ms(3_600_000, '`connwatch release` keeps the controller off a released node for this long (ms).'),
    qps: z.number().positive().default(20).describe("The controller's API request rate (overrides kube.qps for the controller's client)."),
    burst: z.number().int().positive().default(40).describe("The controller's API burst (overrides kube.burst for the controller's client)."),
    restart,
    quarantine,
    fleet: z
      .strictObject({
        minNodes: z.number().int().min(1).default(5).describe('Raise one fleet incident when at least this many nodes got the same verdict within the window.'),
        windowMs: ms(600_000, 'The window (ms) in which verdicts count toward one fleet incident.'),
        updateIntervalMs: ms(30_000, "Update an open fleet incident's counts at most this often (ms)."),
      })
      .prefault({})
      .describe('The fleet incident: one page for many nodes with the same cause.'),
    eventIntervalMs: ms(30_000, 'At most one Event per node and reason per this many ms; repeats are counted.'),
  })
  .prefault({})
  .describe('The fleet controller (`connwatch controller`): leader election, the restart budget and ramp, quarantine, the fleet incident.');

export type ControllerConfig = z.infer<typeof controllerConfig>;
