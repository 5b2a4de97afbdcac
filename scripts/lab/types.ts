/**
 * The lab's contract: what tests, the demo and the benchmarks may rely on.
 * The lab reproduces the reference incident on one machine (see ../shared/lab/NETWORKD.md):
 * a private system bus, the real systemd-networkd in the node's network namespace, two nodes
 * with pods, and the CNI state of one of two Cilium profiles. It touches nothing of the host's.
 */
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import type { RuleItem, RouteItem } from '../../src/types.js';

/** Which CNI state the node under test carries. */
export type LabProfile = 'cilium-pre-1.14' | 'cilium-1.14';

export interface LabOptions {
  profile: LabProfile;
  /** Unique prefix for every name the lab creates; generated when absent. */
  name?: string;
  /** Start the Cilium stand-in on the lab's socket (default true). */
  cilium?: boolean;
  /**
   * How many remote "nodes" the stand-in's node list presents (default 4, 1..20). Each is a pod on
   * the peer namespace (peer-a, peer-b, …) with its own responder, listed as a distinct node
   * (`peer`, `peer-2`, …) whose health endpoint is that pod's address.
   */
  remoteNodes?: number;
  /** The stand-in's mode at start (default `{ mode: 'ok' }`); e.g. `{ mode: 'no-health-endpoints' }`. */
  ciliumMode?: CiliumMode;
}

/** How a hostile Cilium socket answers (every non-/lab/ route of the sockets it applies to). */
export type HostileKind = 'truncated' | 'wrong-type' | 'huge' | 'nested' | 'empty' | 'reset' | 'hung';

/** The stand-in's two sockets: the agent's API (cilium.sock) and cilium-health's (health.sock). */
export type CiliumSocketName = 'agent' | 'health';

/** What every mode may also say. */
export interface CiliumModeCommon {
  /** Survives a stand-in restart (`restartCilium`): a Cilium that cannot fix it. Default false. */
  persistent?: boolean;
  /** Endpoint health checking: false drops `health-endpoint-address` from the node list (and `health-endpoint` from cilium-health). Default true. */
  healthEndpoints?: boolean;
  /** Which sockets `slow`/`hostile` apply to (default both). */
  sockets?: CiliumSocketName[];
}

/**
 * The stand-in's behaviour, switchable at run time (`lab.ciliumMode`, `PUT /lab/mode`, CLI
 * `cilium-mode`) and kept in the lab state file.
 */
export type CiliumMode = CiliumModeCommon &
  (
    | { mode: 'ok' }
    /** `cilium.state` Failure (or Warning) with a message and a failing controller; still HTTP 200, as Cilium answers. */
    | { mode: 'unhealthy'; state?: 'Failure' | 'Warning'; msg?: string }
    /** Every answer delayed by delayMs ± jitterMs (uniform). */
    | { mode: 'slow'; delayMs: number; jitterMs?: number }
    /** Garbage: see HostileKind. `huge` sends sizeMb (default 32) MB, `nested` depth (default 100000) levels. */
    | { mode: 'hostile'; kind: HostileKind; sizeMb?: number; depth?: number }
    /** The API says Ok and the endpoints ready while the node's pod path is dropped (nftables in the node namespace). */
    | { mode: 'not-forwarding' }
    /** `ok` with endpoint health checking off (the same as `{ mode: 'ok', healthEndpoints: false }`); survives restarts. */
    | { mode: 'no-health-endpoints' }
  );

export type CiliumModeName = CiliumMode['mode'];

/** A node in the stand-in's node list. */
export interface LabClusterNode {
  /** NodeElement.name (this lab's cluster is "default", so the plain node name). */
  name: string;
  /** Which namespace stands for it. */
  node: 'node' | 'peer';
  /** primary-address */
  ip4: string;
  ip6: string;
  /** The pod whose address is this node's health endpoint (listed unless endpoint health checking is off). */
  healthPod: string;
  healthIp4: string;
  healthIp6: string;
}

/** Where a command runs: the node under test, the peer node, or a pod by name. */
export type LabTarget = 'node' | 'peer' | string;

export interface LabPod {
  name: string;
  node: 'node' | 'peer';
  netns: string;
  ip4: string;
  ip6: string;
}

/** What `lab up` prints, as one JSON object. */
export interface LabDescription {
  name: string;
  profile: LabProfile;
  node: { netns: string; links: { name: string; managed: boolean; carrier: boolean; ip4?: string; ip6?: string }[] };
  peer: { netns: string; ip4: string; ip6: string };
  pods: LabPod[];
  bus: { address: string; pid: number };
  networkd: { pid: number };
  /**
   * The stand-in's sockets: `socket`/`healthSocket` from the host, `labSocket`/`labHealthSocket`
   * inside the lab's mount namespace (Cilium's standard paths); `self` and `nodes` are its node list
   * (this node first, then the remote ones), `mode` its mode when the description was made.
   */
  cilium: { socket: string; labSocket: string; healthSocket: string; labHealthSocket: string; pid?: number; self: string; nodes: LabClusterNode[]; mode: CiliumMode };
  /** The process whose mount namespace holds the lab's /run (bus socket, networkd config). */
  mountNsPid: number;
  /** The CNI-shaped state installed on the node, as the datapath box would read it. */
  cniState: { rules: RuleItem[]; routes: RouteItem[] };
  /** The operator's rule that is not the CNI's and that a networkd restart also removes. */
  foreignRule: RuleItem;
  kernel: { netem: boolean; dummy: boolean; nftables: boolean; veth: boolean };
  /** Files the lab leaves, for `down` after a crash. */
  stateFile: string;
  /** Marked traffic: TCP from the node to addr:port is marked (nftables route hook) and only pref 9 / table 2004 delivers it. */
  marked: { addr: string; port: number; mark: number };
  /** Host directory with the lab's logs (networkd.log with SYSTEMD_LOG_LEVEL=debug, dbus, stand-in, responders). */
  logs: string;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A running lab. `down()` is idempotent and leaves nothing behind. */
export interface Lab {
  readonly description: LabDescription;
  /** Runs a command to completion in the target's network namespace (and the lab's mount namespace, so the lab bus is at the standard path). */
  exec(target: LabTarget, argv: string[], opts?: { timeoutMs?: number; env?: NodeJS.ProcessEnv }): Promise<ExecResult>;
  /** Starts a long-running process there (e.g. `connwatch run`); the caller stops it, `down()` kills it if not. */
  spawn(target: LabTarget, argv: string[], opts?: SpawnOptions): ChildProcess;
  /** What systemctl restart does to networkd: SIGTERM, wait, start; returns the CNI-relevant state before and after. */
  restartNetworkd(): Promise<{ before: { rules: RuleItem[]; routes: RouteItem[] }; after: { rules: RuleItem[]; routes: RouteItem[] } }>;
  /** `networkctl reconfigure` of one managed link (all when absent). */
  reconfigure(link?: string): Promise<void>;
  /** Kills and restarts the lab's dbus-daemon (networkd 252 does not rejoin; restart networkd to bring it back). */
  restartBus(): Promise<void>;
  /**
   * Random loss (percent) or a blackhole on the path to a target, with nftables. Target `pods` is
   * the node's path to every pod address (node and peer pod CIDRs, both families).
   */
  loss(target: LabTarget, percent: number): Promise<void>;
  blackhole(target: LabTarget): Promise<void>;
  clear(): Promise<void>;
  /** Endpoint churn: a new pod (netns, veth, responder on 4240) and, on the node, its per-pod rules installed by the Cilium stand-in. */
  addPod(name: string, node?: 'node' | 'peer'): Promise<LabPod>;
  /** Removes a pod: the stand-in removes its per-pod rules, then its namespace goes. */
  removePod(name: string): Promise<void>;
  /**
   * What a Cilium agent restart does to the datapath: re-installs the profile's whole CNI state
   * (through the stand-in when running) and resets a mode that is not `persistent`. With
   * `process: true` the stand-in process itself is killed and started again first (it keeps its
   * mode from the state file).
   */
  restartCilium(opts?: { process?: boolean }): Promise<void>;
  /** Switches the stand-in's mode (a name or the whole mode); returns the mode now in force. */
  ciliumMode(mode: CiliumMode | CiliumModeName): Promise<CiliumMode>;
  /** Delay (ms ± jitter ms, uniform) on every request a responder answers; `all` sets every responder and clears per-target settings; 0 clears. */
  delay(target: LabTarget | 'all', ms: number, jitterMs?: number): Promise<void>;
  /** Stops the target's responder (node, peer or a pod): its port then refuses. */
  stopResponder(target: LabTarget): Promise<void>;
  /** Starts the target's responder again (no-op while it runs). */
  startResponder(target: LabTarget): Promise<void>;
  /** Runs exactly `workers` CPU-bound busy loops in the node namespace (0 stops them); returns their pids. */
  hog(workers: number): Promise<number[]>;
  down(): Promise<void>;
}
