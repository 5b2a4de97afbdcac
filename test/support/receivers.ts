/**
 * Local receivers speaking the documented shapes of PagerDuty Events API v2, Slack incoming
 * webhooks and a generic JSON webhook, on 127.0.0.1 port 0, with fault injection.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';

export type ReceiverKind = 'pagerduty' | 'slack' | 'webhook';

/** What the next request gets instead of a normal answer. */
export type Fault =
  | { kind: 'status'; status: number; body?: string; retryAfter?: string }
  | { kind: 'timeout' }
  | { kind: 'reset' }
  /** Answer normally, but only after ms (keeps requests in flight). */
  | { kind: 'delay'; ms: number };

export interface Received {
  at: number;
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  raw: string;
  body: unknown;
  /** The HTTP status the receiver answered (0 for timeout/reset). */
  answered: number;
}

export interface Receiver {
  kind: ReceiverKind;
  /** Base URL, e.g. http://127.0.0.1:41234 */
  origin: string;
  /** The URL a sink should be configured with (PagerDuty's /v2/enqueue, a Slack hook path, /hook). */
  url: string;
  /** Every request, in arrival order, whatever it was answered. */
  attempts: Received[];
  /** Requests that were accepted (202 for PagerDuty, 200 otherwise). */
  accepted(): Received[];
  /** Queues faults for the next requests, in order. */
  fail(...faults: Fault[]): void;
  /** Decides a fault per request (checked after the queue); undefined = answer normally. */
  failWhen(rule: ((body: unknown) => Fault | undefined) | undefined): void;
  /** Waits until the predicate holds over the attempts (polls; rejects after timeoutMs). */
  waitFor(predicate: (attempts: Received[]) => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

const PD_ACTIONS = ['trigger', 'acknowledge', 'resolve'];
const PD_SEVERITIES = ['critical', 'error', 'warning', 'info'];

/** PagerDuty Events API v2 validation, as documented: the reasons an event is refused with 400. */
export function pagerDutyProblems(body: unknown): string[] {
  const problems: string[] = [];
  const event = body as Record<string, unknown> | null;
  if (!event || typeof event !== 'object') return ['body is not a JSON object'];
  if (typeof event.routing_key !== 'string' || event.routing_key === '') problems.push('routing_key is required');
  if (!PD_ACTIONS.includes(String(event.event_action))) problems.push('event_action must be trigger, acknowledge or resolve');
  if (event.dedup_key !== undefined && (typeof event.dedup_key !== 'string' || event.dedup_key.length > 255)) problems.push('dedup_key must be a string of at most 255 characters');
  if (event.event_action !== 'trigger' && event.dedup_key === undefined) problems.push('dedup_key is required for acknowledge and resolve');
  if (event.event_action === 'trigger') {
    const payload = event.payload as Record<string, unknown> | undefined;
    if (!payload || typeof payload !== 'object') problems.push('payload is required for trigger');
    else {
      if (typeof payload.summary !== 'string' || payload.summary.length === 0 || payload.summary.length > 1024) problems.push('payload.summary must be 1..1024 characters');
      if (typeof payload.source !== 'string' || payload.source === '') problems.push('payload.source is required');
      if (!PD_SEVERITIES.includes(String(payload.severity))) problems.push('payload.severity must be critical, error, warning or info');
      if (payload.custom_details !== undefined && (typeof payload.custom_details !== 'object' || payload.custom_details === null)) problems.push('payload.custom_details must be an object');
    }
  }
  return problems;
}

function answerNormally(kind: ReceiverKind, body: unknown, res: ServerResponse): number {
  if (kind === 'pagerduty') {
    const problems = pagerDutyProblems(body);
    if (problems.length > 0) return send(res, 400, JSON.stringify({ status: 'invalid event', message: 'Event object is invalid', errors: problems }));
    const dedup = (body as { dedup_key?: string }).dedup_key ?? 'generated';
    return send(res, 202, JSON.stringify({ status: 'success', message: 'Event processed', dedup_key: dedup }));
  }
  if (kind === 'slack') {
    const message = body as { text?: unknown; blocks?: unknown } | null;
    const ok = message && (typeof message.text === 'string' || Array.isArray(message.blocks));
    return ok ? send(res, 200, 'ok', 'text/plain') : send(res, 400, 'invalid_payload', 'text/plain');
  }
  return send(res, 200, JSON.stringify({ ok: true }));
}

function send(res: ServerResponse, status: number, text: string, type = 'application/json', headers: Record<string, string> = {}): number {
  res.writeHead(status, { 'content-type': type, ...headers });
  res.end(text);
  return status;
}

export interface ReceiverOptions {
  /** Serve HTTPS with this PEM key and certificate (the origin becomes https://127.0.0.1:port). */
  tls?: { key: string; cert: string };
}

/** Starts a receiver of the given kind on 127.0.0.1 port 0. */
export async function startReceiver(kind: ReceiverKind, options: ReceiverOptions = {}): Promise<Receiver> {
  const attempts: Received[] = [];
  const queue: Fault[] = [];
  let rule: ((body: unknown) => Fault | undefined) | undefined;
  const sockets = new Set<Socket>();
  const path = kind === 'pagerduty' ? '/v2/enqueue' : kind === 'slack' ? '/services/T0CONNWATCH/B0CONNWATCH/s3cr3tSlackToken' : '/hook';

  const answer = (entry: Received, req: IncomingMessage, res: ServerResponse, fault: Fault | undefined): void => {
    if (fault?.kind === 'timeout') return; // never answer; close() destroys the socket
    if (fault?.kind === 'reset') {
      req.socket.resetAndDestroy();
      return;
    }
    if (fault?.kind === 'status') {
      entry.answered = send(res, fault.status, fault.body ?? `fault ${fault.status}`, 'text/plain', fault.retryAfter ? { 'retry-after': fault.retryAfter } : {});
      return;
    }
    if (req.url !== path && kind !== 'webhook') {
      entry.answered = send(res, 404, kind === 'slack' ? 'no_service' : 'not found', 'text/plain');
      return;
    }
    if (entry.raw && entry.body === undefined) {
      entry.answered = send(res, 400, kind === 'slack' ? 'invalid_payload' : 'invalid json', 'text/plain');
      return;
    }
    entry.answered = answerNormally(kind, entry.body, res);
  };

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      try {
        body = raw ? JSON.parse(raw) : undefined;
      } catch {
        body = undefined;
      }
      const entry: Received = { at: Date.now(), method: req.method ?? '', path: req.url ?? '', headers: req.headers, raw, body, answered: 0 };
      attempts.push(entry);
      const fault = queue.shift() ?? rule?.(body);
      if (fault?.kind === 'delay') setTimeout(() => answer(entry, req, res, undefined), fault.ms);
      else answer(entry, req, res, fault);
    });
  };
  const server = options.tls ? createTlsServer({ key: options.tls.key, cert: options.tls.cert }, handler) : createServer(handler);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const origin = `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const okStatus = kind === 'pagerduty' ? 202 : 200;

  return {
    kind,
    origin,
    url: `${origin}${path}`,
    attempts,
    accepted: () => attempts.filter((a) => a.answered === okStatus),
    fail: (...faults) => queue.push(...faults),
    failWhen: (r) => {
      rule = r;
    },
    async waitFor(predicate, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (!predicate(attempts)) {
        if (Date.now() > deadline) throw new Error(`receiver ${kind}: condition not met within ${timeoutMs} ms; got ${attempts.length} request(s)`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
