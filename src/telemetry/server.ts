import { rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { formatHostPort, parseHostPort } from '../common/hostport.js';
import type { Liveness } from './liveness.js';

/** What the telemetry server serves and where. */
export interface TelemetryServerOptions {
  /** "host:port"; port 0 picks a free one (tests). */
  listen: string;
  /** Also serve on this unix socket (needs no routing: works when loopback does not). */
  socket?: string;
  registry: Registry;
  /** The `/status` body; a StatusBoard's snapshot. */
  status: () => unknown;
  liveness: Liveness;
  log: Logger;
  /** How long stop() waits for open requests before cutting connections. */
  closeTimeoutMs?: number;
}

/** The result of start(): the bound address, or why it could not bind. */
export type ListenResult = { ok: true; address: string; port: number } | { ok: false; reason: string };

const ALLOW = 'GET, HEAD';

/**
 * `/metrics`, `/healthz` (loops turning), `/readyz` (started — nothing more, so rollouts never
 * stall on a broken network) and `/status`. Unknown paths 404, other methods 405.
 */
export class TelemetryServer {
  readonly #server: Server;
  #socketServer: Server | undefined;
  #started = false;
  #listening = false;

  constructor(private readonly options: TelemetryServerOptions) {
    this.#server = this.#create();
  }

  #create(): Server {
    const server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        this.options.log.error({ err, url: req.url }, 'telemetry request failed');
        if (!res.headersSent) send(res, req, 500, 'text/plain; charset=utf-8', 'internal error\n');
        else res.destroy();
      });
    });
    server.requestTimeout = 10_000;
    server.headersTimeout = 5_000;
    server.keepAliveTimeout = 5_000;
    return server;
  }

  /** The unix socket, best effort: a failure is logged, never fatal (the TCP address is the contract). */
  async #listenSocket(path: string): Promise<void> {
    const server = this.#create();
    try {
      rmSync(path, { force: true });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => resolve());
      });
      this.#socketServer = server;
      this.options.log.info({ socket: path }, 'telemetry also on a unix socket');
    } catch (err) {
      this.options.log.warn({ err, socket: path }, 'cannot serve telemetry on the unix socket; the TCP address still serves');
    }
  }

  /** Binds; never rejects for an address problem (failure is data). */
  async start(): Promise<ListenResult> {
    const parsed = parseHostPort(this.options.listen, true);
    if (!parsed.ok) return { ok: false, reason: `telemetry.listen: ${parsed.reason}` };
    const { host, port } = parsed.value;
    if (this.options.socket) await this.#listenSocket(this.options.socket);
    return new Promise((resolve) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        resolve({
          ok: false,
          reason: `cannot listen on ${this.options.listen}: ${err.code ?? err.message}${err.code === 'EADDRINUSE' ? ' (another connwatch running? set telemetry.listen)' : ''}`,
        });
      };
      this.#server.once('error', onError);
      this.#server.listen({ host, port }, () => {
        this.#server.off('error', onError);
        this.#listening = true;
        const bound = this.#server.address() as AddressInfo;
        const address = formatHostPort({ host: bound.address, port: bound.port });
        this.options.log.info({ address }, 'telemetry server listening');
        resolve({ ok: true, address, port: bound.port });
      });
    });
  }

  /** /readyz answers 200 from now on: the daemon has started its loops. */
  markStarted(): void {
    this.#started = true;
  }

  /** Stops accepting, lets open requests finish, then cuts what is left after the timeout. */
  async stop(): Promise<void> {
    const socketServer = this.#socketServer;
    this.#socketServer = undefined;
    if (socketServer) {
      socketServer.closeAllConnections();
      await new Promise<void>((resolve) => socketServer.close(() => resolve()));
      if (this.options.socket) rmSync(this.options.socket, { force: true });
    }
    if (!this.#listening) return;
    this.#listening = false;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeIdleConnections();
    let timer: NodeJS.Timeout | undefined;
    const forced = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.#server.closeAllConnections();
        resolve();
      }, this.options.closeTimeoutMs ?? 2_000);
    });
    await Promise.race([closed, forced]);
    clearTimeout(timer);
    await closed;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    const route = path === undefined ? undefined : this.#routes[path];
    if (route === undefined) return send(res, req, 404, 'text/plain; charset=utf-8', `not found; try ${Object.keys(this.#routes).join(', ')}\n`);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', ALLOW);
      return send(res, req, 405, 'text/plain; charset=utf-8', `method ${req.method ?? ''} not allowed; use GET\n`);
    }
    await route(req, res);
  }

  readonly #routes: Record<string, (req: IncomingMessage, res: ServerResponse) => Promise<void> | void> = {
    '/metrics': async (req, res) => {
      const body = await this.options.registry.metrics();
      send(res, req, 200, this.options.registry.contentType, body);
    },
    '/healthz': (req, res) => {
      const report = this.options.liveness.check();
      sendJson(res, req, report.alive ? 200 : 503, report);
    },
    '/readyz': (req, res) => {
      sendJson(res, req, this.#started ? 200 : 503, { ready: this.#started });
    },
    '/status': (req, res) => {
      sendJson(res, req, 200, this.options.status());
    },
  };
}

function send(res: ServerResponse, req: IncomingMessage, status: number, contentType: string, body: string): void {
  res.statusCode = status;
  res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.setHeader('Cache-Control', 'no-store');
  res.end(req.method === 'HEAD' ? undefined : body);
}

function sendJson(res: ServerResponse, req: IncomingMessage, status: number, value: unknown): void {
  send(res, req, status, 'application/json; charset=utf-8', `${JSON.stringify(value)}\n`);
}
