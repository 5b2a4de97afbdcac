/**
 * A small HTTP CONNECT proxy on 127.0.0.1 port 0, as corporate egress proxies behave: it
 * tunnels `CONNECT host:port` to the target (only loopback targets), can demand credentials
 * (407), and records every tunnel it was asked for.
 */
import { createServer, type IncomingMessage } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';

export interface Tunnel {
  /** host:port asked for in CONNECT. */
  target: string;
  /** The proxy's answer: 200, 407, 403 or 502. */
  answered: number;
  authorization?: string;
}

export interface ConnectProxy {
  /** e.g. http://127.0.0.1:41234 */
  url: string;
  tunnels: Tunnel[];
  close(): Promise<void>;
}

export interface ConnectProxyOptions {
  /** When set, CONNECT without `Proxy-Authorization: Basic base64(user:pass)` gets 407. */
  credentials?: { user: string; pass: string };
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** Starts the proxy; close() ends every tunnel and the server. */
export async function startConnectProxy(options: ConnectProxyOptions = {}): Promise<ConnectProxy> {
  const tunnels: Tunnel[] = [];
  const sockets = new Set<Socket>();
  const track = (s: Socket): void => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  };
  const wanted = options.credentials ? `Basic ${Buffer.from(`${options.credentials.user}:${options.credentials.pass}`).toString('base64')}` : undefined;

  const server = createServer((_req, res) => {
    // Plain forward-proxying is not what alerts use: they tunnel.
    res.writeHead(405, { 'content-type': 'text/plain' }).end('this proxy only tunnels (CONNECT)');
  });
  server.on('connection', track);
  server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    const target = req.url ?? '';
    const authorization = req.headers['proxy-authorization'];
    const tunnel: Tunnel = { target, answered: 0, ...(authorization ? { authorization } : {}) };
    tunnels.push(tunnel);
    const refuse = (status: number, text: string): void => {
      tunnel.answered = status;
      client.end(`HTTP/1.1 ${status} ${text}\r\n${status === 407 ? 'Proxy-Authenticate: Basic realm="connwatch-test"\r\n' : ''}Content-Length: 0\r\n\r\n`);
    };
    if (wanted && authorization !== wanted) return refuse(407, 'Proxy Authentication Required');
    const split = target.lastIndexOf(':');
    const host = target.slice(0, split);
    const port = Number(target.slice(split + 1));
    if (!LOOPBACK.has(host) || !Number.isInteger(port)) return refuse(403, 'Forbidden');
    const upstream = connect({ host: host.replace(/^\[|\]$/g, ''), port });
    track(upstream);
    upstream.once('connect', () => {
      tunnel.answered = 200;
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.once('error', () => {
      if (tunnel.answered === 0) refuse(502, 'Bad Gateway');
      else client.destroy();
    });
    client.once('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    tunnels,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
