/**
 * The controller's seam: the fleet as the decision core sees it (small views the Kubernetes
 * adapter — or the simulator — builds from objects) and the commands the core hands back.
 * Nothing here does I/O or reads a clock.
 */
import type { ActionEnablement, Alert, ChannelGrant, ChannelSpec, ChannelStatus, Rung } from '../types.js';

/** The taint connwatch puts on a quarantined node. */
export const QUARANTINE_TAINT = 'connwatch.io/pod-network-unavailable';
/** The node condition connwatch owns (True = no pod network). */
export const CONDITION_TYPE = 'PodNetworkUnavailable';
/** Annotations recording what connwatch did to a Node (ownership of every mark). */
export const ANNOTATIONS = {
  /** The quarantine grant id: connwatch quarantined this node. */
  quarantine: 'connwatch.io/quarantine',
  /** "true": connwatch cordoned this node (it was schedulable); only then does connwatch uncordon it. */
  cordoned: 'connwatch.io/cordoned',
  /** RFC 3339: connwatch started draining this node. */
  drain: 'connwatch.io/drain-started',
  /** RFC 3339: the drain finished (nothing evictable left). */
  drained: 'connwatch.io/drained',
  /** RFC 3339: an operator released the node (`connwatch release`); connwatch stays off it for controller.releaseHoldMs. */
  released: 'connwatch.io/released',
} as const;

/** Taints other actors use to take a node out: connwatch never acts on such a node. */
export const OTHER_ACTOR_TAINTS: Readonly<Record<string, string>> = {
  ToBeDeletedByClusterAutoscaler: 'the cluster autoscaler is deleting it',
  DeletionCandidateOfClusterAutoscaler: 'the cluster autoscaler marked it for deletion',
  'karpenter.sh/disrupted': 'Karpenter is disrupting it',
  'karpenter.sh/disruption': 'Karpenter is disrupting it',
};

/** A Node as the core needs it. */
export interface NodeView {
  name: string;
  /** topology.kubernetes.io/zone ("" when unlabelled). */
  zone: string;
  /** kubelet's Ready condition. */
  ready: 'True' | 'False' | 'Unknown';
  unschedulable: boolean;
  /** Taint keys (connwatch's included). */
  taints: string[];
  /** connwatch.io/ annotations (see ANNOTATIONS). */
  annotations: Readonly<Record<string, string>>;
  /** connwatch's PodNetworkUnavailable condition as it stands. */
  condition?: 'True' | 'False' | 'Unknown';
}

/** A node's cilium pod as the core needs it (the newest one on that node). */
export interface CiliumPodView {
  node: string;
  name: string;
  uid: string;
  ready: boolean;
  deleting: boolean;
  /** The DaemonSet revision (label controller-revision-hash). */
  revision?: string;
  /** Epoch ms when kubelet last restarted a container of it (lastState.terminated.finishedAt). */
  lastContainerRestartAt?: number;
  /** A container waits in CrashLoopBackOff. */
  crashLoop: boolean;
}

/** A ConnwatchNode: the controller's spec and the agent's status. */
export interface ChannelView {
  node: string;
  spec: ChannelSpec;
  status?: ChannelStatus;
}

/** A stop switch and where it came from. */
export interface Switch {
  active: boolean;
  source: string;
}

/** What operators control (config and the ConfigMap), read fresh every round. */
export interface Controls {
  killSwitch: Switch;
  /** The operators' halt: stops every new step (the ramp's own halt stops restarts only). */
  halt: Switch;
  /** Changing this token resets the ramp (width back to the canaries, halt lifted). */
  rampReset?: string;
  actions: { restartCilium: ActionEnablement; quarantine: ActionEnablement };
}

/** The fleet, as the adapter's caches hold it. */
export interface FleetView {
  nodes: ReadonlyMap<string, NodeView>;
  channels: ReadonlyMap<string, ChannelView>;
  /** By node name. */
  ciliumPods: ReadonlyMap<string, CiliumPodView>;
  controls: Controls;
}

/** Which Kubernetes action a command belongs to, as the journal and metrics name it. */
export type ControllerAction = 'restartCilium' | 'quarantine' | 'drain' | 'unquarantine';

/** What the core asks the adapter to do; every command is idempotent against the objects. */
export type Command =
  /** Write this grant into the node's spec (replacing the rung's previous one); then, unless shadow, execute it. */
  | { kind: 'grant'; node: string; grant: ChannelGrant; evidence: unknown }
  /** Delete the grant's cilium pod (uid precondition) and record `executed`; used after a takeover found it unexecuted. */
  | { kind: 'restart'; node: string; grant: ChannelGrant }
  /** Taint, set the condition, cordon (when asked) and record `executed`. Re-applied until every mark is there. */
  | { kind: 'quarantine'; node: string; grant: ChannelGrant; cordon: boolean; reason: string; message: string }
  /** Record on the grant what was done, without doing anything (the pod was already replaced). */
  | { kind: 'executed'; node: string; grantId: string; detail: string }
  /** Close a grant. */
  | { kind: 'close'; node: string; grantId: string; outcome: NonNullable<ChannelGrant['outcome']> }
  /** Start (or resume) draining a quarantined node; shadow: record "would have drained". */
  | { kind: 'drain'; node: string; shadow: boolean }
  /** Remove connwatch's marks (never blocked by the kill switch). */
  | { kind: 'unquarantine'; node: string; reason: string }
  /** connwatch held an action back itself (journalled and an Event, once per node and reason). */
  | { kind: 'hold'; node: string; action: ControllerAction; rung: Rung; why: string }
  | { kind: 'raise'; alert: Omit<Alert, 'status' | 'createdAt'> }
  | { kind: 'resolve'; id: string };
