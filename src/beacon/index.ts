/**
 * `connwatch beacon`: a tiny responder on the pod network for clusters where Cilium launches no
 * health endpoints. `GET /ping` answers with the node and pod address it runs on; asked for
 * another node (`?node=`), it refuses (409), so a probe that reaches a stale or reassigned address
 * never counts as that node's pod network answering. Loads nothing but node:http.
 */
import { createServer, type Server } from 'node:http';
import { parseHostPort, formatHostPort } from '../common/hostport.js';
import { EXIT } from '../exit.js';
import type { CliIO } from '../types.js';

export interface BeaconOptions {
  node: string;
  podIp: string;
  listen: string;
}

/** The beacon's HTTP server (not listening yet). */
export function createBeacon(options: Pick<BeaconOptions, 'node' | 'podIp'>): Server {
  const body = JSON.stringify({ node: options.node, podIP: options.podIp });
  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://beacon');
    res.setHeader('content-type', 'application/json');
    res.setHeader('connection', 'close');
    if (req.method !== 'GET' || url.pathname !== '/ping') {
      res.writeHead(404).end(JSON.stringify({ error: 'GET /ping is the only route' }));
      return;
    }
    const asked = url.searchParams.get('node');
    if (asked !== null && asked !== options.node) {
      res.writeHead(409).end(JSON.stringify({ error: `this beacon runs on node ${options.node}, not ${asked}`, node: options.node }));
      return;
    }
    res.writeHead(200).end(body);
  });
}

/** Reads the beacon's options from flags and the downward API's environment. */
export function beaconOptions(values: Record<string, unknown>, env: NodeJS.ProcessEnv): { ok: true; value: BeaconOptions } | { ok: false; reason: string } {
  const node = (values.node as string | undefined) ?? env.NODE_NAME;
  if (!node) return { ok: false, reason: 'no node name: pass --node or set NODE_NAME (the downward API: spec.nodeName); a beacon never guesses it' };
  const podIp = (values['pod-ip'] as string | undefined) ?? env.POD_IP ?? '';
  const listen = (values.listen as string | undefined) ?? env.CONNWATCH_BEACON_LISTEN ?? '[::]:4241';
  const parsed = parseHostPort(listen);
  if (!parsed.ok) return { ok: false, reason: `--listen: ${parsed.reason}` };
  return { ok: true, value: { node, podIp, listen: formatHostPort(parsed.value) } };
}

/** `connwatch beacon`: serves until SIGTERM/SIGINT. */
export async function runBeaconCommand(values: Record<string, unknown>, io: CliIO): Promise<number> {
  const options = beaconOptions(values, process.env);
  if (!options.ok) {
    io.stderr(`connwatch beacon: ${options.reason}\n`);
    return EXIT.usage;
  }
  const { node, podIp, listen } = options.value;
  const server = createBeacon({ node, podIp });
  const { host, port } = (parseHostPort(listen) as { ok: true; value: { host: string; port: number } }).value;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
  } catch (err) {
    io.stderr(`connwatch beacon: cannot listen on ${listen}: ${(err as Error).message}; pass --listen with a free address\n`);
    return EXIT.usage;
  }
  io.stdout(JSON.stringify({ msg: 'connwatch beacon listening', listen, node, podIP: podIp }) + '\n');
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      server.close(() => resolve());
      server.closeAllConnections();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  return EXIT.ok;
}
