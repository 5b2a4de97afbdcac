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
  /** The stand-in's socket: `socket` from the host, `labSocket` inside the lab's mount namespace (Cilium's standard path). */
  cilium: { socket: string; labSocket: string; pid?: number };
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
  /** Random loss (percent) or a blackhole on the path to a target, with nftables. */
  loss(target: LabTarget, percent: number): Promise<void>;
  blackhole(target: LabTarget): Promise<void>;
  clear(): Promise<void>;
  /** Endpoint churn: a new pod (netns, veth, responder on 4240) and, on the node, its per-pod rules installed by the Cilium stand-in. */
  addPod(name: string, node?: 'node' | 'peer'): Promise<LabPod>;
  /** Removes a pod: the stand-in removes its per-pod rules, then its namespace goes. */
  removePod(name: string): Promise<void>;
  /** What a Cilium agent restart does to the datapath: re-installs the profile's whole CNI state (through the stand-in when running). */
  restartCilium(): Promise<void>;
  down(): Promise<void>;
}
