/**
 * The lab's state file: everything `down` needs to clean up after a crash, and everything a
 * new process (the CLI, the Cilium stand-in) needs to act on a running lab.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RouteItem, RuleItem } from '../../src/types.js';
import type { ProcRef } from './run.js';
import { LAB_ROOT } from './topology.js';
import type { CiliumMode, LabPod, LabProfile, LabTarget } from './types.js';

export interface PodState extends LabPod {
  index: number;
}

/** A responder the lab started, with the target it answers for. */
export interface ResponderRef extends ProcRef {
  target?: LabTarget;
}

export interface LabState {
  version: 1;
  name: string;
  profile: LabProfile;
  /** Host directory of this lab: logs, network files, the cilium socket directory. */
  dir: string;
  stateFile: string;
  repoRoot: string;
  netns: { node: string; peer: string };
  pods: PodState[];
  procs: {
    keeper?: ProcRef;
    dbus?: ProcRef;
    networkd?: ProcRef;
    cilium?: ProcRef;
    responders: ResponderRef[];
    spawned: ProcRef[];
    /** CPU hogs (`lab.hog`). */
    hogs?: ProcRef[];
  };
  /** The remote "nodes" the stand-in lists, each a pod on the peer namespace (absent in labs made before: one, peer/peer-a). */
  remoteNodes?: { name: string; pod: string }[];
  /** The stand-in's mode, so a restarted stand-in process keeps it (absent: ok). */
  ciliumMode?: CiliumMode;
  /** Inode of the lab's private mount namespace, to find stray processes in it. */
  mntIno?: number;
  /** Temporary host directory used while building the mount namespace (removed when done). */
  keepDir?: string;
  /** The CNI state as read back from the kernel after the last (re)install. */
  cniState: { rules: RuleItem[]; routes: RouteItem[] };
  foreignRule?: RuleItem;
  kernel: { netem: boolean; dummy: boolean; nftables: boolean; veth: boolean };
  createdAt: string;
}

export function stateFileFor(name: string): string {
  return join(LAB_ROOT, `${name}.json`);
}

export function labDirFor(name: string): string {
  return join(LAB_ROOT, name);
}

/** Writes atomically (temp file + rename) so a reader never sees half a state. */
export function writeState(state: LabState): void {
  mkdirSync(LAB_ROOT, { recursive: true });
  const tmp = `${state.stateFile}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n');
  renameSync(tmp, state.stateFile);
}

export function readState(stateFile: string): LabState | undefined {
  try {
    return JSON.parse(readFileSync(stateFile, 'utf8')) as LabState;
  } catch {
    return undefined;
  }
}

/** A lab name or a state file path → the state file path. */
export function resolveStateFile(nameOrStateFile: string): string {
  return nameOrStateFile.includes('/') || nameOrStateFile.endsWith('.json') ? nameOrStateFile : stateFileFor(nameOrStateFile);
}
