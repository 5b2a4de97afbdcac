import { z } from 'zod';
import { parseHostPort } from '../common/hostport.js';

const tcpTarget = z
  .string()
  .superRefine((text, ctx) => {
    const parsed = parseHostPort(text);
    if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.reason });
  })
  .meta({ accepted: 'host:port, e.g. 10.0.0.1:6443 or [fd00::1]:443' });

/** The `restore:` section: the first rung, putting back what networkd removed. */
export const restoreConfig = z
  .strictObject({
    quietPeriodMs: z
      .number()
      .int()
      .min(10)
      .max(10_000)
      .default(250)
      .describe('Restore this long after the last networkd activity when not every managed link has been seen entering "configuring" (networkd not on the bus, a link that never reports).'),
    maxRepeats: z
      .number()
      .int()
      .min(1)
      .max(100)
      .default(5)
      .describe('Restores within one networkd episode before connwatch stops and reports "fighting networkd".'),
    episodeSeconds: z
      .number()
      .int()
      .min(5)
      .max(3600)
      .default(120)
      .describe('How long after the last networkd activity a loss still counts as caused by it.'),
    verifyStableMs: z
      .number()
      .int()
      .min(10)
      .max(60_000)
      .default(3000)
      .describe('After a restore, every item must still be present this long later to count as verified.'),
    rateLimitPerMinute: z
      .number()
      .int()
      .min(1)
      .max(600)
      .default(20)
      .describe('Restores per minute on this node, at most; more wait.'),
    verifyTargets: z
      .array(tcpTarget)
      .max(16)
      .default([])
      .describe('Optional TCP targets (host:port) that must accept a connection after a restore.'),
    verifyTimeoutMs: z.number().int().min(50).max(30_000).default(1000).describe('Connect timeout for each verify target.'),
  })
  .describe('The restore rung: re-install exactly the baseline items networkd removed.');

export type RestoreConfig = z.infer<typeof restoreConfig>;

/** The `ladder:` section: when the agent asks the controller for the next rung. */
export const ladderConfig = z
  .strictObject({
    requestAfterSeconds: z.number().min(0).max(3600).default(30).describe('Broken this long, with no restore at work, before the agent asks the controller for a Cilium restart.'),
    verifySeconds: z.number().min(5).max(3600).default(120).describe("A Cilium restart the controller executed must show the node fixed (Cilium's health OK, pod paths answering) within this long."),
    restartAttempts: z.number().int().min(1).max(10).default(2).describe('Executed Cilium restarts that did not fix the node before the agent asks for quarantine instead.'),
  })
  .describe('The rungs above the restore: what the agent asks the controller for (Kubernetes), and how it verifies what was done.');

export type LadderConfig = z.infer<typeof ladderConfig>;
