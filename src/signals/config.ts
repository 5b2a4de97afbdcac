import { z } from 'zod';

/** Backoff between reconnect or restart attempts: doubles from `initialMs` up to `maxMs`, with jitter. */
export const backoffConfig = z
  .strictObject({
    initialMs: z.number().int().min(10).max(60_000).default(250).describe('First wait after a failure, in ms.'),
    maxMs: z.number().int().min(10).max(600_000).default(10_000).describe('Longest wait between attempts, in ms.'),
  })
  .refine((b) => b.maxMs >= b.initialMs, { message: 'maxMs must be >= initialMs' })
  .describe('Exponential backoff with jitter.');

/** The `signals:` section of connwatch's configuration (owned by the signals box). */
export const signalsConfig = z
  .strictObject({
    dbus: z
      .strictObject({
        enabled: z.boolean().default(true).describe('Listen to the system bus (network1, systemd1).'),
        busAddress: z
          .string()
          .min(1)
          .optional()
          .describe(
            'System bus address override, e.g. "unix:path=/host/run/dbus/system_bus_socket". Absent: DBUS_SYSTEM_BUS_ADDRESS, else unix:path=/run/dbus/system_bus_socket.',
          ),
        callTimeoutMs: z
          .number()
          .int()
          .min(100)
          .max(60_000)
          .default(5_000)
          .describe('How long to wait for a bus method reply (Hello, AddMatch, Subscribe, GetNameOwner) before treating the connection as broken.'),
        reconnect: backoffConfig.default({ initialMs: 250, maxMs: 10_000 }).describe('Backoff between reconnect attempts after the bus goes away.'),
        systemd1: z.boolean().default(true).describe("Subscribe to PID 1's job and unit signals (networkd, Cilium, unattended-upgrade units)."),
      })
      .default({ enabled: true, callTimeoutMs: 5_000, reconnect: { initialMs: 250, maxMs: 10_000 }, systemd1: true })
      .describe('D-Bus watchers: org.freedesktop.network1 and org.freedesktop.systemd1.'),
    units: z
      .strictObject({
        networkd: z.string().min(1).default('systemd-networkd.service').describe("networkd's systemd unit."),
        cilium: z.string().min(1).default('cilium.service').describe("Cilium agent's systemd unit (bare metal)."),
        upgrade: z
          .array(z.string().min(1))
          .default(['apt-daily-upgrade.service'])
          .describe('Units whose runs are unattended upgrades (UpgradeStarted/UpgradeFinished).'),
      })
      .default({ networkd: 'systemd-networkd.service', cilium: 'cilium.service', upgrade: ['apt-daily-upgrade.service'] })
      .describe('systemd units whose jobs and properties are watched.'),
    mergeWindowMs: z
      .number()
      .int()
      .min(0)
      .max(60_000)
      .default(3_000)
      .describe(
        'Reports of a restart from different sources (network1 owner change, systemd1 InvocationID/job) within this window are one restart when no InvocationID tells them apart.',
      ),
    netlink: z
      .strictObject({
        enabled: z.boolean().default(true).describe('Run `ip -d -4|-6 monitor rule route address` as triggers.'),
        ipCommand: z
          .array(z.string().min(1))
          .min(1)
          .default(['ip'])
          .describe('argv prefix for ip, e.g. ["ip"] or ["ip", "-n", "lab-node"]; the monitor arguments are appended.'),
        families: z
          .array(z.union([z.literal(4), z.literal(6)]))
          .min(1)
          .default([4, 6])
          .describe('IP families to monitor; one ip process each (the output carries no family marker).'),
        restart: backoffConfig.default({ initialMs: 250, maxMs: 10_000 }).describe('Backoff between restarts of a monitor that died.'),
      })
      .default({ enabled: true, ipCommand: ['ip'], families: [4, 6], restart: { initialMs: 250, maxMs: 10_000 } })
      .describe('Kernel change triggers via ip monitor.'),
  })
  .default({
    dbus: { enabled: true, callTimeoutMs: 5_000, reconnect: { initialMs: 250, maxMs: 10_000 }, systemd1: true },
    units: { networkd: 'systemd-networkd.service', cilium: 'cilium.service', upgrade: ['apt-daily-upgrade.service'] },
    mergeWindowMs: 3_000,
    netlink: { enabled: true, ipCommand: ['ip'], families: [4, 6], restart: { initialMs: 250, maxMs: 10_000 } },
  })
  .describe('signals settings: where connwatch listens for networkd restarts, Cilium restarts, upgrade runs and kernel datapath changes.');

export type SignalsConfig = z.infer<typeof signalsConfig>;
export type BackoffConfig = z.infer<typeof backoffConfig>;
