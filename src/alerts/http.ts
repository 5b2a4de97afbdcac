import { request, type Dispatcher } from 'undici';
import type { DeliveryResult } from '../types.js';

/**
 * What a permanent refusal is about: the sink (its URL, credentials, certificate or proxy, the
 * same answer for every alert) or one alert (its payload). Only a sink-wide refusal pauses the sink.
 */
export type RefusalScope = 'sink' | 'alert';

/** A delivery result that also carries what the server said, for the permanent-failure log. */
export type HttpDelivery = DeliveryResult & { status?: number; body?: string; scope?: RefusalScope };

/**
 * Answers about the endpoint or the credentials, not the payload: 401/403 (credentials,
 * permission, a revoked Slack token), 404/405/410 (wrong URL, revoked webhook, Slack
 * no_service) and 407 (the proxy wants credentials). Every other 4xx (400 invalid payload,
 * 413, 422, …) refuses that alert only.
 */
const SINK_WIDE_STATUSES = new Set([401, 403, 404, 405, 407, 410]);

export interface PostOptions {
  dispatcher: Dispatcher;
  url: string;
  method?: 'GET' | 'POST';
  body?: unknown;
  headers?: Record<string, string>;
  timeoutMs: number;
  signal: AbortSignal;
  /** Values that must never leave in a reason (routing keys, webhook URLs). */
  secrets?: string[];
}

const BODY_LOG_LIMIT = 512;

/**
 * Sends one request and classifies the answer: 2xx ok; 408, 429 and 5xx transient (with
 * Retry-After); other 4xx permanent, with its scope (SINK_WIDE_STATUSES); a rejected
 * certificate or proxy refusal permanent for the sink; other network errors and timeouts
 * transient. Never throws for outside trouble.
 */
export async function sendJson(opts: PostOptions): Promise<HttpDelivery> {
  // One controller per request, unhooked afterwards, so the long-lived stop signal collects no listeners.
  const perRequest = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    perRequest.abort(new Error('timeout'));
  }, opts.timeoutMs);
  const onStop = (): void => perRequest.abort(opts.signal.reason);
  opts.signal.addEventListener('abort', onStop, { once: true });
  if (opts.signal.aborted) onStop();
  const signal = perRequest.signal;
  try {
    const res = await request(opts.url, {
      dispatcher: opts.dispatcher,
      method: opts.method ?? 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'connwatch', ...opts.headers },
      ...(opts.body === undefined ? {} : { body: JSON.stringify(opts.body) }),
      signal,
      headersTimeout: opts.timeoutMs + 1000,
      bodyTimeout: opts.timeoutMs + 1000,
    });
    // Scrub before cutting, so a secret on the cut is not left half-shown.
    const text = scrub(await res.body.text(), opts.secrets).slice(0, BODY_LOG_LIMIT);
    if (res.statusCode >= 200 && res.statusCode < 300) return { ok: true, status: res.statusCode, body: text };
    return classify(res.statusCode, headerValue(res.headers['retry-after']), text);
  } catch (err) {
    if (opts.signal.aborted) return { ok: false, permanent: false, reason: 'aborted: connwatch is stopping' };
    const refusal = permanentNetworkError(err);
    if (refusal) return { ok: false, permanent: true, reason: scrub(refusal, opts.secrets), scope: 'sink' };
    const why = timedOut ? `timed out after ${opts.timeoutMs} ms` : describeError(err);
    return { ok: false, permanent: false, reason: scrub(`${why}; is the receiver reachable over the host network?`, opts.secrets) };
  } finally {
    clearTimeout(timer);
    opts.signal.removeEventListener('abort', onStop);
  }
}

function classify(status: number, retryAfter: string | undefined, body: string): HttpDelivery {
  const transient = status === 408 || status === 429 || status >= 500;
  const retryAfterMs = parseRetryAfter(retryAfter, Date.now());
  return {
    ok: false,
    permanent: !transient,
    reason: `HTTP ${status}${body ? `: ${body}` : ''}`,
    status,
    body,
    ...(transient ? {} : { scope: SINK_WIDE_STATUSES.has(status) ? ('sink' as const) : ('alert' as const) }),
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  };
}

/** Retry-After in milliseconds: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** Node/OpenSSL codes for a certificate the client will never accept, however often it asks. */
const CERTIFICATE_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'INVALID_CA',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'HOSTNAME_MISMATCH',
]);

/**
 * A network error that retrying cannot fix (an untrusted certificate, a proxy that wants
 * credentials or refuses the destination): its reason with an operator hint, else undefined.
 */
export function permanentNetworkError(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code && CERTIFICATE_CODES.has(code)) {
      return `TLS certificate rejected (${code}: ${e.message}); not retried: give the receiver's CA in the sink's caFile or alerts.network.caFile, or fix the receiver's certificate`;
    }
    const proxy = /Proxy response \((\d{3})\)/.exec(e.message);
    if (proxy && (proxy[1] === '407' || proxy[1] === '403')) {
      return `the proxy refused the tunnel (HTTP ${proxy[1]}); not retried: check the proxy's credentials (in the proxy URL) and that it allows CONNECT to this receiver, or add the receiver to alerts.network.noProxy`;
    }
    if (e.message.includes('Proxy Authentication Required')) return 'the proxy wants credentials (HTTP 407); not retried: put them in the proxy URL';
  }
  return undefined;
}

function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    const cause = err.cause instanceof Error ? ` (${err.cause.message})` : '';
    return `${code ? `${code}: ` : ''}${err.message}${cause}`;
  }
  return String(err);
}

/** Replaces every secret value in text with "[redacted]". */
export function scrub(text: string, secrets: string[] | undefined): string {
  let out = text;
  for (const secret of secrets ?? []) if (secret) out = out.split(secret).join('[redacted]');
  return out;
}
