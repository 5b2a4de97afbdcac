import { z } from 'zod';
import type { ActionSettings, Mode } from '../types.js';
import { alertsConfig } from '../alerts/config.js';
import { ciliumConfig } from '../cilium/config.js';
import { controllerConfig } from '../controller/config.js';
import { datapathConfig } from '../datapath/config.js';
import { doctorConfig } from '../doctor/config.js';
import { probesConfig } from '../probes/config.js';
import { kubeConfig } from '../kube/config.js';
import { ladderConfig, restoreConfig } from '../remediation/config.js';
import { localRestartConfig } from '../remediation/local-restart-config.js';
import { signalsConfig } from '../signals/config.js';
import { parseHostPort } from '../common/hostport.js';

/** Default address of the telemetry server (`/metrics`, `/healthz`, `/readyz`, `/status`). */
export const DEFAULT_LISTEN = '127.0.0.1:9820';

/** Default state directory (the systemd unit's StateDirectory). */
export const DEFAULT_STATE_DIR = '/var/lib/connwatch';

const enablement = z
  .enum(['on', 'shadow', 'off'])
  .optional()
  .describe('on: act; shadow: record "would have" in the journal only; off: do nothing.');

/** Log levels pino knows, quietest last. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

const listen = z
  .string()
  .superRefine((text, ctx) => {
    const parsed = parseHostPort(text);
    if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.reason });
  })
  .meta({ accepted: 'host:port with port 1-65535, e.g. 127.0.0.1:9820 or [::1]:9820' });

/** The whole configuration schema: parse → defaults → validate. Unknown keys are errors. */
export const configSchema = z
  .strictObject({
    mode: z
      .enum(['kubernetes', 'baremetal', 'auto'])
      .default('auto')
      .describe('kubernetes or baremetal; auto picks kubernetes only when KUBERNETES_SERVICE_HOST is set and the service-account token is mounted (a pod without its token is an error).'),
    node: z.string().min(1).optional().describe("This node's name, used in alerts and status. Default: the host name."),
    site: z.string().min(1).default('default').describe('Cluster (kubernetes) or site (bare metal) name; alert dedup keys group by it.'),
    stateDir: z.string().min(1).default(DEFAULT_STATE_DIR).describe('Directory for the action journal, the alert spool and the heartbeat file.'),
    log: z
      .strictObject({
        level: z.enum(LOG_LEVELS).default('info').describe('Minimum level logged (JSON lines on stdout).'),
      })
      .prefault({})
      .describe('Logging.'),
    telemetry: z
      .strictObject({
        listen: listen.default(DEFAULT_LISTEN).describe('Address of the telemetry HTTP server: /metrics, /healthz, /readyz, /status.'),
        socket: z
          .string()
          .min(1)
          .optional()
          .describe('A unix socket serving the same routes, for when even loopback is broken (`curl --unix-socket <path> http://connwatch/status`). Default: <stateDir>/telemetry.sock; "off" disables it.'),
        heartbeatFile: z
          .string()
          .min(1)
          .optional()
          .describe('File the main loop touches every turn; an outside check reads its age. Default: <stateDir>/heartbeat.'),
        staleAfterSeconds: z
          .number()
          .int()
          .min(1)
          .max(3600)
          .default(30)
          .describe('/healthz turns 503 when a loop has not turned for this long (the heartbeat file check has its own limit: see Liveness).'),
      })
      .prefault({})
      .describe('Logs, metrics, health and status.'),
    actions: z
      .strictObject({
        killSwitch: z.boolean().default(false).describe('Stops every action, restore included (each is journalled as "killed").'),
        halt: z.boolean().default(false).describe('Halts every action, restore included, until lifted (normally set by the controller or the cluster ConfigMap); journalled as "halted".'),
        restore: enablement.describe('Put back the CNI rules/routes networkd removed. Default: on in both modes.'),
        restartCilium: enablement.describe('Restart the Cilium agent (with a grant). Default: shadow in kubernetes, off in baremetal.'),
        quarantine: enablement.describe('Taint and mark the node (with a grant). Default: shadow in kubernetes, off in baremetal.'),
      })
      .prefault({})
      .describe('The action gate: per-action enablement, kill switch, halt.'),
    signals: signalsConfig.prefault({}),
    datapath: datapathConfig.prefault({}),
    cilium: ciliumConfig.prefault({}),
    probes: probesConfig.prefault({}),
    alerts: alertsConfig.prefault({}),
    restore: restoreConfig.prefault({}),
    ladder: ladderConfig.prefault({}),
    localRestart: localRestartConfig.prefault({}),
    kube: kubeConfig,
    controller: controllerConfig,
    doctor: doctorConfig.prefault({}),
  })
  .describe('connwatch configuration.');

/** The configuration as validated, before mode-dependent defaults are applied. */
export type ParsedConfig = z.output<typeof configSchema>;

export type { ActionSettings };

/** The configuration the daemon runs with: mode decided, node named, every default applied. */
export type Config = Omit<ParsedConfig, 'mode' | 'node' | 'actions' | 'telemetry'> & {
  mode: Mode;
  node: string;
  telemetry: Omit<ParsedConfig['telemetry'], 'socket'> & { heartbeatFile: string; socket: string | undefined };
  actions: { killSwitch: boolean; halt: boolean } & ActionSettings;
};

/**
 * The action defaults per mode: restore only reverts what networkd just removed, so it is on
 * everywhere; restarts and quarantine watch in shadow first on Kubernetes and stay off on bare
 * metal, where each host is its own fleet of one.
 */
export function resolveActionDefaults(mode: Mode): ActionSettings {
  switch (mode) {
    case 'kubernetes':
      return { restore: 'on', restartCilium: 'shadow', quarantine: 'shadow' };
    case 'baremetal':
      return { restore: 'on', restartCilium: 'off', quarantine: 'off' };
  }
}

/** Fills what depends on the decided mode and the host: actions, node name, heartbeat path. */
export function resolveConfig(parsed: ParsedConfig, mode: Mode, hostname: string): Config {
  const defaults = resolveActionDefaults(mode);
  return {
    ...parsed,
    mode,
    node: parsed.node ?? hostname,
    telemetry: {
      ...parsed.telemetry,
      heartbeatFile: parsed.telemetry.heartbeatFile ?? `${parsed.stateDir.replace(/\/+$/, '')}/heartbeat`,
      socket: parsed.telemetry.socket === 'off' ? undefined : (parsed.telemetry.socket ?? `${parsed.stateDir.replace(/\/+$/, '')}/telemetry.sock`),
    },
    actions: {
      killSwitch: parsed.actions.killSwitch,
      halt: parsed.actions.halt,
      restore: parsed.actions.restore ?? defaults.restore,
      restartCilium: parsed.actions.restartCilium ?? defaults.restartCilium,
      quarantine: parsed.actions.quarantine ?? defaults.quarantine,
    },
  };
}
