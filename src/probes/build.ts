import { CiliumClient } from '../cilium/client.js';
import type { Config } from '../config/index.js';
import type { BoxContext, ProbeRound } from '../types.js';
import { ProbeRunner } from './runner.js';

/**
 * The probe runner with its own Cilium clients: a slow or hostile Cilium answering probes must
 * never queue ahead of the restore's endpoint check on the same connection.
 */
/** The runner and its lifecycle. */
export interface BuiltProbes {
  runner: ProbeRunner;
  start(): Promise<void>;
  stop(): Promise<void>;
  burst(reason: string): void;
}

export function buildProbes(config: Config, ctx: BoxContext, onRound: (round: ProbeRound) => void): BuiltProbes | undefined {
  if (!config.probes.enabled) return undefined;
  const cilium = new CiliumClient(config.cilium);
  const healthSocket = config.probes.cilium.healthSocketPath;
  const health = new CiliumClient({ ...config.cilium, socketPath: healthSocket });
  const runner = new ProbeRunner({
    ctx,
    config: config.probes,
    node: config.node,
    cilium,
    ciliumSocket: config.cilium.socketPath,
    ciliumHealth: { status: (signal) => health.healthStatus(signal), socket: healthSocket },
    onRound,
  });
  return {
    runner,
    start: () => runner.start(),
    burst: (reason) => runner.burst(reason),
    stop: async () => {
      await runner.stop();
      await Promise.all([cilium.close(), health.close()]);
    },
  };
}
