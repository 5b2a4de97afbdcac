/**
 * Every way a call to the API server can fail, with a stable code, in one table: whether it is
 * retried, whether it says anything about reachability, and the operator's hint. Errors are
 * data at the client's boundary (`KubeResult`); the client throws only for bugs.
 */
import type { Status } from 'kubernetes-types/meta/v1.js';

/** Stable codes for why a Kubernetes call failed. */
export type KubeErrorCode =
  /** No connection to any configured endpoint (refused, no route, connect timeout, DNS). */
  | 'unreachable'
  /** Connected, then the connection broke before a whole answer (reset, cut short). */
  | 'reset'
  /** No whole answer within the call's deadline (a hung or slow server). */
  | 'timeout'
  /** The server's certificate was refused, or our client certificate was. */
  | 'tls'
  /** 401: the token or client certificate is not accepted (the token was re-read once). */
  | 'unauthorized'
  /** 403: RBAC does not allow this verb on this resource. */
  | 'forbidden'
  /** 404 */
  | 'not-found'
  /** 409: a concurrent writer won (stale resourceVersion) or the object already exists. */
  | 'conflict'
  /** 410: the resourceVersion is too old (compacted); list again. */
  | 'gone'
  /** 400 or 422: the server refused the request's content. */
  | 'invalid'
  /** 429: the server is throttling us (after the retries, honouring Retry-After). */
  | 'throttled'
  /** 5xx (after the retries). */
  | 'server-error'
  /** Any other status. */
  | 'http-status'
  /** The answer is not the JSON it should be. */
  | 'garbage'
  /** The answer exceeds the configured size. */
  | 'too-large'
  /** The caller aborted. */
  | 'aborted'
  /** The client is closed. */
  | 'closed';

/** A failed call: what, why, what to do, and what the server said when it answered. */
export interface KubeFailure {
  ok: false;
  code: KubeErrorCode;
  /** One line: the request and what went wrong. */
  reason: string;
  /** What the operator can do about it. */
  hint: string;
  /** The HTTP status, when the server answered. */
  status?: number;
  /** The server's Retry-After, in ms, when it sent one. */
  retryAfterMs?: number;
  /** The server's Status object, when it sent one. */
  details?: Status;
}

/** A call's result: a value, or why not. */
export type KubeResult<T> = { ok: true; value: T } | KubeFailure;

/** How each code is handled. */
interface CodeRule {
  /** Retried with backoff and jitter (p-retry) within the call's deadline. */
  retry: boolean;
  /** The generic hint; 401/403 get theirs from the request (verb and resource). */
  hint: string;
}

/** The table: the one place that decides retries and hints. */
export const KUBE_ERROR_CODES = {
  unreachable: { retry: true, hint: 'no configured API-server endpoint accepts connections: check kube.endpoints, the node network and the API server' },
  reset: { retry: true, hint: 'the API server closed the connection mid-answer (restarting, or a proxy in between)' },
  timeout: { retry: true, hint: 'the API server is slow or hung: the call ran out of its deadline (kube.requestTimeoutMs)' },
  tls: { retry: false, hint: "the TLS handshake failed: check the CA (kube.caFile or the kubeconfig's certificate-authority) and the server name (kube.tlsServerName)" },
  unauthorized: { retry: false, hint: 'the credentials are not accepted: check the service-account token (re-read once) or the kubeconfig user' },
  forbidden: { retry: false, hint: 'RBAC refuses this request: see deploy/kubernetes/rbac' },
  'not-found': { retry: false, hint: 'the object or its kind does not exist (is the CRD installed?)' },
  conflict: { retry: false, hint: 'another writer changed the object first: read it again and retry the change' },
  gone: { retry: false, hint: 'the resourceVersion was compacted away: list again' },
  invalid: { retry: false, hint: 'the API server refused the content of the request (a bug in connwatch, or an admission policy): see the details' },
  throttled: { retry: true, hint: 'the API server is throttling requests (429): lower kube.qps, or raise the priority-and-fairness share' },
  'server-error': { retry: true, hint: 'the API server failed (5xx): see its logs' },
  'http-status': { retry: false, hint: 'unexpected HTTP status from the API server' },
  garbage: { retry: false, hint: 'the answer is not Kubernetes JSON: is the endpoint an API server?' },
  'too-large': { retry: false, hint: 'the answer exceeds kube.maxBodyBytes: page the list (limit) or raise the limit' },
  aborted: { retry: false, hint: 'the caller stopped waiting (connwatch is stopping)' },
  closed: { retry: false, hint: 'the client is closed (connwatch is stopping)' },
} as const satisfies Record<KubeErrorCode, CodeRule>;

/** Whether a failure is worth another attempt. */
export function isRetryable(code: KubeErrorCode): boolean {
  return KUBE_ERROR_CODES[code].retry;
}

/** The code for an HTTP status the server answered with (2xx is not an error). */
export function codeForStatus(status: number): KubeErrorCode {
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'not-found';
  if (status === 409) return 'conflict';
  if (status === 410) return 'gone';
  if (status === 400 || status === 422) return 'invalid';
  if (status === 429) return 'throttled';
  if (status >= 500) return 'server-error';
  return 'http-status';
}

/** The RBAC hint for a refused request: which verb on which resource the service account needs. */
export function rbacHint(verb: string, resource: string): string {
  return `the service account needs ${verb} on ${resource}: see deploy/kubernetes/rbac`;
}

/**
 * Socket error codes that mean "no connection was made" (the connect phase failed): the only
 * failures that count toward "API server unreachable" and the only ones that move a request on
 * to the next endpoint. A reset after connecting, a 429, a 5xx or a slow answer say the server is
 * there.
 */
export const CONNECT_FAILURE_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
  'ETIMEDOUT',
  'EPERM',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** Socket error codes of a TLS refusal (certificate chain, name, client certificate). */
export const TLS_FAILURE_CODES: ReadonlySet<string> = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
  'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
  'ERR_SSL_WRONG_VERSION_NUMBER',
]);

/** Parses a Retry-After header (seconds, or an HTTP date) into ms; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, nowMs: number): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || text.trim() === '') return undefined;
  if (/^\s*\d+(\.\d+)?\s*$/.test(text)) return Math.round(Number(text) * 1000);
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}
