import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LookupFunction } from 'node:net';
import { rootCertificates } from 'node:tls';
import { Agent, EnvHttpProxyAgent, type Dispatcher } from 'undici';
import type { BoxContext } from '../types.js';
import type { AlertsConfig } from './config.js';
import { ResolverCache, type NameStatus, type ResolveName } from './resolver.js';

export interface AlertDispatcherOptions {
  /** Proxy: undefined or "" = HTTPS_PROXY/HTTP_PROXY from env; "direct" = none; else the proxy URL. */
  proxyUrl?: string;
  /** Hosts reached without the proxy, in addition to NO_PROXY. */
  noProxy?: string[];
  /** Extra CA bundles (PEM files) trusted besides the system's. */
  caFile?: string | string[];
  connectTimeoutMs?: number;
  /** Name resolution for receivers and the proxy (default: the host resolver, uncached). */
  lookup?: LookupFunction;
  /** The environment proxies are read from (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/** Which proxy a dispatcher uses, as /status shows it (never with credentials). */
export interface ProxyChoice {
  httpProxy?: string;
  httpsProxy?: string;
  noProxy: string;
}

/** Reads the proxy choice from options and the environment (curl's conventions: lowercase first). */
export function chooseProxy(opts: Pick<AlertDispatcherOptions, 'proxyUrl' | 'noProxy' | 'env'>): ProxyChoice | undefined {
  const env = opts.env ?? process.env;
  const extra = opts.noProxy ?? [];
  const noProxy = [env.no_proxy ?? env.NO_PROXY ?? '', ...extra].filter(Boolean).join(',');
  if (opts.proxyUrl === 'direct') return undefined;
  if (opts.proxyUrl) return { httpProxy: opts.proxyUrl, httpsProxy: opts.proxyUrl, noProxy };
  const httpProxy = env.http_proxy || env.HTTP_PROXY || undefined;
  const httpsProxy = env.https_proxy || env.HTTPS_PROXY || httpProxy;
  if (!httpProxy && !httpsProxy) return undefined;
  return { ...(httpProxy ? { httpProxy } : {}), ...(httpsProxy ? { httpsProxy } : {}), noProxy };
}

/** Reads CA bundles, adding them to the system's roots; throws with the file and a hint (start-up only). */
export function readCaBundles(files: string[]): string[] | undefined {
  const wanted = files.filter(Boolean);
  if (wanted.length === 0) return undefined;
  const pems = wanted.map((file) => {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new Error(`cannot read the alert CA bundle ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}; fix alerts.network.caFile or the sink's caFile`);
    }
    if (!text.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`the alert CA bundle ${file} holds no PEM certificate; give a PEM file (-----BEGIN CERTIFICATE-----)`);
    return text;
  });
  return [...rootCertificates, ...pems];
}

/**
 * The dispatcher alerts leave through: the host network, directly or through an HTTP(S)
 * proxy (CONNECT), with extra CA bundles and the given name resolution.
 */
export function createAlertDispatcher(opts: AlertDispatcherOptions = {}): Dispatcher {
  const files = opts.caFile === undefined ? [] : Array.isArray(opts.caFile) ? opts.caFile : [opts.caFile];
  const ca = readCaBundles(files);
  const timeout = opts.connectTimeoutMs ?? 10_000;
  const lookup = opts.lookup ? { lookup: opts.lookup } : {};
  const connect = { timeout, ...lookup, ...(ca ? { ca } : {}) };
  const proxy = chooseProxy(opts);
  if (!proxy) return new Agent({ connect, keepAliveTimeout: 30_000 });
  return new EnvHttpProxyAgent({
    ...proxy,
    connect,
    // The proxy is reached with our lookup; the receiver's name is the proxy's to resolve (CONNECT host:port).
    proxyTls: { timeout, ...lookup },
    requestTls: { timeout, ...(ca ? { ca } : {}) },
    keepAliveTimeout: 30_000,
  });
}

/** A proxy URL without credentials, for logs and /status. */
export function redactProxy(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return '[unparseable proxy URL]';
  }
}

export interface AlertNetworkDeps {
  config: AlertsConfig;
  stateDir: string;
  ctx: Pick<BoxContext, 'clock' | 'log'>;
  env?: NodeJS.ProcessEnv;
  /** The resolver behind the cache (tests inject one; default dns.lookup). */
  resolve?: ResolveName;
  /** Called when what /status shows changes (a name falls back to its cached address). */
  onChange?: () => void;
}

/**
 * How alerts leave the host, built from `alerts.network` and the sinks' `caFile`: one
 * dispatcher per distinct CA set, all sharing the proxy choice and the resolver cache.
 */
export class AlertNetwork {
  readonly resolver: ResolverCache | undefined;
  readonly #dispatchers = new Map<string, Dispatcher>();
  readonly #proxy: ProxyChoice | undefined;

  constructor(private readonly deps: AlertNetworkDeps) {
    const net = deps.config.network;
    this.resolver = net.resolverCache
      ? new ResolverCache({
          file: join(deps.stateDir, 'alert-dns.json'),
          clock: deps.ctx.clock,
          log: deps.ctx.log,
          timeoutMs: net.resolverTimeoutMs,
          ...(deps.resolve ? { resolve: deps.resolve } : {}),
          ...(deps.onChange ? { onChange: deps.onChange } : {}),
        })
      : undefined;
    this.#proxy = chooseProxy({ proxyUrl: net.proxy, noProxy: net.noProxy, ...(deps.env ? { env: deps.env } : {}) });
    // Built now so that an unreadable CA bundle stops the start with its path, not the first page.
    for (const caFile of sinkCaFiles(deps.config)) this.dispatcherFor(caFile);
  }

  /** Loads the last-known-good addresses; call before the first delivery. */
  async start(): Promise<void> {
    await this.resolver?.load();
    const proxy = this.#proxy;
    this.deps.ctx.log.info(
      { proxy: proxy ? { http: redactProxy(proxy.httpProxy), https: redactProxy(proxy.httpsProxy), noProxy: proxy.noProxy } : 'direct', resolverCache: this.resolver !== undefined },
      'alerts leave over the host network',
    );
  }

  /** The dispatcher for a sink with the given extra CA bundle (empty = only alerts.network.caFile). */
  dispatcherFor(sinkCaFile: string): Dispatcher {
    const existing = this.#dispatchers.get(sinkCaFile);
    if (existing) return existing;
    const net = this.deps.config.network;
    const made = createAlertDispatcher({
      proxyUrl: net.proxy || (this.#proxy ? undefined : 'direct'),
      noProxy: net.noProxy,
      caFile: [net.caFile, sinkCaFile].filter(Boolean),
      connectTimeoutMs: net.connectTimeoutMs,
      ...(this.resolver ? { lookup: this.resolver.lookup } : {}),
      ...(this.deps.env ? { env: this.deps.env } : {}),
    });
    this.#dispatchers.set(sinkCaFile, made);
    return made;
  }

  /** For /status: the proxy (no credentials) and each receiver name with its addresses' age. */
  snapshot(): { proxy: Record<string, unknown> | 'direct'; names: NameStatus[] } {
    const proxy = this.#proxy;
    return {
      proxy: proxy ? { http: redactProxy(proxy.httpProxy), https: redactProxy(proxy.httpsProxy), noProxy: proxy.noProxy } : 'direct',
      names: this.resolver?.snapshot() ?? [],
    };
  }

  /** Closes every dispatcher (in-flight requests finish) and waits for cache writes. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.#dispatchers.values()].map((d) => d.close()));
    await this.resolver?.flushed();
  }
}

/** The distinct per-sink CA files in a config ("" for sinks without one). */
function sinkCaFiles(config: AlertsConfig): string[] {
  const files = [config.alertmanager.caFile, config.pagerduty?.caFile, config.slack?.caFile, ...config.webhooks.map((w) => w.caFile)];
  return [...new Set(files.map((f) => f ?? ''))];
}
