import { existsSync } from 'node:fs';
import type { Mode } from '../types.js';

/** Where Kubernetes mounts a pod's service-account token. */
export const SERVICE_ACCOUNT_TOKEN_PATH = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** What mode detection looks at; everything injectable for tests. */
export interface ModeInput {
  configured: Mode | 'auto';
  env: Readonly<Record<string, string | undefined>>;
  tokenPath?: string;
  fileExists?: (path: string) => boolean;
}

/** The decided mode and a sentence for the start-up log, or why none can be decided. */
export type ModeDecision = { ok: true; mode: Mode; reason: string } | { ok: false; reason: string; hint: string };

/**
 * Decides the mode: an explicit setting wins; `auto` picks kubernetes only when both the
 * service host variable and the token are there. A pod without its token must not quietly run
 * as bare metal (it would act on a node as if it were its own fleet), so that is an error.
 */
export function detectMode(input: ModeInput): ModeDecision {
  if (input.configured !== 'auto') return { ok: true, mode: input.configured, reason: `mode ${input.configured} set in configuration` };
  const tokenPath = input.tokenPath ?? SERVICE_ACCOUNT_TOKEN_PATH;
  const exists = input.fileExists ?? existsSync;
  const serviceHost = input.env.KUBERNETES_SERVICE_HOST;
  const inPod = serviceHost !== undefined && serviceHost !== '';
  const hasToken = exists(tokenPath);
  if (inPod && hasToken) {
    return { ok: true, mode: 'kubernetes', reason: `mode auto → kubernetes: KUBERNETES_SERVICE_HOST=${serviceHost} and a token at ${tokenPath}` };
  }
  if (inPod) {
    return {
      ok: false,
      reason: `looks like a pod (KUBERNETES_SERVICE_HOST=${serviceHost}) but there is no service-account token at ${tokenPath}`,
      hint: 'pod without its service-account token: set automountServiceAccountToken, or mode: baremetal',
    };
  }
  return {
    ok: true,
    mode: 'baremetal',
    reason: `mode auto → baremetal: KUBERNETES_SERVICE_HOST is not set${hasToken ? ` (a token exists at ${tokenPath} but no API server is named)` : ''}`,
  };
}

/** The environment variable the DaemonSet fills from the downward API (`fieldRef: spec.nodeName`). */
export const NODE_NAME_ENV = 'NODE_NAME';

/** This node's name and where it came from, or why there is none. */
export type NodeNameDecision = { ok: true; node: string; source: string } | { ok: false; reason: string; hint: string };

/**
 * Names this node. In Kubernetes the name is the Node object's, from the downward API
 * (`NODE_NAME`): a pod's host name is the pod's, and a guessed name would make the agent report
 * on (and read) another node's objects — so a pod without it is a configuration error. A `node`
 * set in configuration must then agree with it. On bare metal: the configured name, else the host name.
 */
export function resolveNodeName(input: { mode: Mode; configured: string | undefined; env: Readonly<Record<string, string | undefined>>; hostname: string }): NodeNameDecision {
  const configured = input.configured === '' ? undefined : input.configured;
  if (input.mode === 'baremetal') return configured ? { ok: true, node: configured, source: 'configuration (node)' } : { ok: true, node: input.hostname, source: 'the host name' };
  const fromEnv = input.env[NODE_NAME_ENV]?.trim();
  if (!fromEnv) {
    return {
      ok: false,
      reason: `mode kubernetes needs this node's name from the downward API, and ${NODE_NAME_ENV} is ${input.env[NODE_NAME_ENV] === undefined ? 'not set' : 'empty'}`,
      hint: `set env ${NODE_NAME_ENV} from fieldRef spec.nodeName in the DaemonSet (connwatch never guesses it from the host name)`,
    };
  }
  if (configured && configured !== fromEnv) {
    return { ok: false, reason: `node is set to "${configured}" but ${NODE_NAME_ENV} (the downward API) says "${fromEnv}"`, hint: `remove node from the configuration in Kubernetes mode, or make it agree with ${NODE_NAME_ENV}` };
  }
  return { ok: true, node: fromEnv, source: `${NODE_NAME_ENV} (downward API)` };
}
