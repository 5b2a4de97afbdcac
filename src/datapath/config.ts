import { z } from 'zod';
import { profileSchema } from './profiles.js';

/** The `datapath:` section of connwatch's configuration (owned by the datapath box). */
export const datapathConfig = z
  .strictObject({
    ip: z
      .strictObject({
        argv: z
          .array(z.string().min(1))
          .min(1)
          .default(['ip'])
          .describe('How to run iproute2\'s ip: the binary and any leading arguments (tests use ["ip", "-n", "<netns>"]).'),
        timeoutMs: z.number().int().positive().default(3_000).describe('Kill one ip invocation after this long (ms).'),
      })
      .prefault({})
      .describe('The ip binary connwatch reads and writes rules and routes with.'),
    profiles: z
      .array(z.string().min(1))
      .default(['cilium'])
      .describe('CNI profiles in force, in order (first claim wins): built-in "cilium" and names from extraProfiles.'),
    extraProfiles: z
      .array(profileSchema)
      .default([])
      .describe('Operator-declared profiles, e.g. FRR or VPN policy routing: { name, rules: [{ priorities: [500], tables: [200], … }] }.'),
    clusterPodCidrs: z
      .array(z.string().regex(/^[0-9a-fA-F:.]+\/\d{1,3}$/, 'a CIDR such as 10.0.0.0/8'))
      .default([])
      .describe("Pod CIDRs of the cluster's nodes; main-table routes into them are the CNI's (added to what Cilium reports of its nodes)."),
    steadyIntervalMs: z.number().int().positive().default(15_000).describe('Re-read and diff the datapath at least this often (ms), signal or not.'),
    followUpMs: z
      .array(z.number().int().nonnegative())
      .default([250, 1_000, 3_000])
      .describe('After a networkd signal, re-read again at these delays (ms): the kernel drops routes without telling anyone.'),
    baselineFile: z.string().min(1).default('baseline.json').describe('File name of the baseline in the state directory.'),
    learn: z
      .strictObject({
        quietMs: z
          .number()
          .int()
          .nonnegative()
          .default(10_000)
          .describe('Learn only when networkd has been quiet this long (ms).'),
        cniSettleMs: z
          .number()
          .int()
          .nonnegative()
          .default(20_000)
          .describe('After the CNI restarted, wait this long healthy before adopting its reinstalled state as the baseline (ms).'),
        perPodGraceMs: z
          .number()
          .int()
          .nonnegative()
          .default(5_000)
          .describe("A pod's items gone without networkd activity are pod churn for this long (ms) before they count as damage."),
        coincidenceSlackMs: z
          .number()
          .int()
          .nonnegative()
          .default(5_000)
          .describe('networkd activity this close (ms) to a loss counts as its cause.'),
      })
      .prefault({})
      .describe('When and how the baseline learns.'),
  })
  .prefault({})
  .describe('datapath settings: reading rules and routes, CNI profiles, the baseline and damage reports.');

export type DatapathConfig = z.infer<typeof datapathConfig>;
