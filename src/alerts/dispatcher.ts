import { readFileSync } from 'node:fs';
import { Agent, ProxyAgent, type Dispatcher } from 'undici';

export interface AlertDispatcherOptions {
  /** HTTP(S) proxy for outbound alerts; empty = direct. */
  proxyUrl?: string;
  /** Extra CA bundle (PEM) for receivers behind a private CA; empty = the system's. */
  caFile?: string;
  connectTimeoutMs?: number;
}

/** The dispatcher alerts leave through: the host network, an optional proxy and CA bundle. */
export function createAlertDispatcher(opts: AlertDispatcherOptions = {}): Dispatcher {
  const ca = opts.caFile ? readFileSync(opts.caFile, 'utf8') : undefined;
  const connect = { timeout: opts.connectTimeoutMs ?? 10_000, ...(ca ? { ca } : {}) };
  if (opts.proxyUrl) return new ProxyAgent({ uri: opts.proxyUrl, connect, ...(ca ? { requestTls: { ca } } : {}) });
  return new Agent({ connect, keepAliveTimeout: 30_000 });
}
