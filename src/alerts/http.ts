import { request, type Dispatcher } from 'undici';
import type { DeliveryResult } from '../types.js';

/** A delivery result that also carries what the server said, for the permanent-failure log. */
export type HttpDelivery = DeliveryResult & { status?: number; body?: string };

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
 * Retry-After); other 4xx permanent; network errors and timeouts transient. Never throws for
 * outside trouble.
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
