import { z } from 'zod';

/**
 * The `localRestart:` section: on bare metal the agent is its own controller for one rung, the
 * Cilium restart (`RestartUnit` of `signals.units.cilium` over D-Bus). Off unless
 * `actions.restartCilium` is on (or shadow, to journal "would have").
 */
export const localRestartConfig = z
  .strictObject({
    staggerSeconds: z
      .number()
      .min(0)
      .max(3600)
      .default(60)
      .describe(
        'A restart waits a fixed delay in [0, staggerSeconds) taken from a hash of the node name, so that bare-metal hosts hit by one upgrade do not restart Cilium in the same second.',
      ),
    minIntervalSeconds: z
      .number()
      .min(1)
      .max(86_400)
      .default(900)
      .describe('At most one Cilium restart per this many seconds on this host (kept across agent restarts in <stateDir>/local-restart.json); a request inside the window waits and is journalled as held.'),
    jobTimeoutSeconds: z
      .number()
      .min(1)
      .max(600)
      .default(90)
      .describe("How long the restart job may take (RestartUnit until JobRemoved and the unit's new InvocationID) before it counts as failed."),
  })
  .describe('Bare metal: the agent restarts Cilium itself over D-Bus (actions.restartCilium must be on); rate-limited per host and staggered by the node name.');

export type LocalRestartConfig = z.infer<typeof localRestartConfig>;
