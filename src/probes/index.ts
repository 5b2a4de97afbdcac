/**
 * The probes box: pod-network paths (peers, the local endpoint), Cilium's APIs and the host
 * network, run in rounds by one runner; the detector weighs the rounds (src/detector/probes.ts).
 */
import type { ProbeJudgeConfig } from '../detector/index.js';
import type { ProbesConfig } from './config.js';

export { probesConfig, type ProbesConfig } from './config.js';
export { ProbeRunner, type ProbeRunnerDeps } from './runner.js';
export { buildProbes, type BuiltProbes } from './build.js';
export { choosePeers, readPeers, type PeerSet, type PeerTarget } from './peers.js';
export { tcpConnects } from './tcp.js';

/** How the detector weighs probe rounds, from the probes section. */
export function probeJudgeConfig(config: ProbesConfig): ProbeJudgeConfig {
  return {
    confirmRounds: config.confirmRounds,
    recoverRounds: config.recoverRounds,
    maxLoopLagMs: config.starvation.maxLoopLagMs,
    maxThrottledRatio: config.starvation.maxThrottledRatio,
    ciliumSettleMs: config.cilium.settleSeconds * 1000,
  };
}
