/**
 * Where the API server is and how to prove who we are: in-cluster (service-account token file,
 * cluster CA, KUBERNETES_SERVICE_HOST/PORT), a kubeconfig, and the configured direct endpoints
 * that take precedence over either's server. Resolved once at start; the token file is re-read
 * while running.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Clock } from '../types.js';
import type { KubeConfig } from './config.js';
import { parseKubeconfig, type ReadText } from './kubeconfig.js';

/** How requests authenticate: a bearer token (inline or from a file, re-read), and/or a client certificate. */
export interface KubeCredentials {
  token?: string;
  tokenFile?: string;
  certPem?: string;
  keyPem?: string;
}

/** One API-server endpoint to try. */
export interface Endpoint {
  /** Origin, "https://10.0.0.1:6443". */
  url: string;
  /** TLS server name to check the certificate against; absent: the URL's host. */
  serverName?: string;
}

/** Everything needed to reach and authenticate to the cluster. */
export interface ClusterAccess {
  source: 'in-cluster' | 'kubeconfig';
  /** Tried in order. */
  endpoints: Endpoint[];
  /** PEM bundle of the cluster CA; absent: the system's CAs. */
  caPem?: string;
  credentials: KubeCredentials;
  /** This pod's namespace (in-cluster) or the context's, when known. */
  namespace?: string;
}

export const readText: ReadText = (path) => readFile(path, 'utf8');

/** Resolves where and how to reach the API server; a sentence saying what is missing when it cannot. */
export async function resolveClusterAccess(
  cfg: Pick<KubeConfig, 'endpoints' | 'tlsServerName' | 'kubeconfig' | 'tokenFile' | 'caFile'>,
  env: Record<string, string | undefined> = process.env,
  read: ReadText = readText,
): Promise<{ ok: true; value: ClusterAccess } | { ok: false; reason: string }> {
  const direct: Endpoint[] = cfg.endpoints.map((entry) =>
    typeof entry === 'string' ? { url: new URL(entry).origin, serverName: cfg.tlsServerName } : { url: new URL(entry.url).origin, serverName: entry.serverName ?? cfg.tlsServerName },
  );
  if (cfg.kubeconfig) {
    let text: string;
    try {
      text = await read(cfg.kubeconfig);
    } catch (err) {
      return { ok: false, reason: `kube.kubeconfig ${cfg.kubeconfig}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})` };
    }
    const parsed = await parseKubeconfig(text, cfg.kubeconfig, read);
    if (!parsed.ok) return parsed;
    const kc = parsed.value;
    const endpoints = direct.length > 0 ? direct : [{ url: kc.server, ...(kc.serverName ? { serverName: kc.serverName } : {}) }];
    return { ok: true, value: { source: 'kubeconfig', endpoints, credentials: kc.credentials, ...(kc.caPem ? { caPem: kc.caPem } : {}), ...(kc.namespace ? { namespace: kc.namespace } : {}) } };
  }

  let endpoints = direct;
  if (endpoints.length === 0) {
    const host = env.KUBERNETES_SERVICE_HOST;
    const port = env.KUBERNETES_SERVICE_PORT || '443';
    if (!host) {
      return { ok: false, reason: 'no API server to talk to: set kube.endpoints (direct API-server URLs) or kube.kubeconfig, or run in a pod (KUBERNETES_SERVICE_HOST is not set)' };
    }
    endpoints = [{ url: `https://${host.includes(':') ? `[${host}]` : host}:${port}` }];
  }
  let caPem: string;
  try {
    caPem = await read(cfg.caFile);
  } catch (err) {
    return { ok: false, reason: `kube.caFile ${cfg.caFile}: cannot read the cluster CA (${(err as NodeJS.ErrnoException).code ?? String(err)}); is the service-account volume mounted?` };
  }
  try {
    await read(cfg.tokenFile);
  } catch (err) {
    return { ok: false, reason: `kube.tokenFile ${cfg.tokenFile}: cannot read the service-account token (${(err as NodeJS.ErrnoException).code ?? String(err)}); is automountServiceAccountToken off?` };
  }
  let namespace = env.POD_NAMESPACE;
  if (!namespace) namespace = (await read(join(dirname(cfg.tokenFile), 'namespace')).catch(() => '')).trim() || undefined;
  return { ok: true, value: { source: 'in-cluster', endpoints, caPem, credentials: { tokenFile: cfg.tokenFile }, ...(namespace ? { namespace } : {}) } };
}

/**
 * The bearer token for each request: inline, or read from a file and re-read when older than
 * `reloadMs` (kubelet rotates projected tokens) and at once after a 401. A failed re-read keeps
 * the last token (the next 401 says so).
 */
export class TokenSource {
  #token: string | undefined;
  #readAt = -Infinity;
  #reading: Promise<void> | undefined;
  #lastError: string | undefined;

  constructor(
    private readonly credentials: KubeCredentials,
    private readonly reloadMs: number,
    private readonly clock: Pick<Clock, 'monotonic'>,
    private readonly read: ReadText = readText,
  ) {
    this.#token = credentials.token;
  }

  /** Whether requests carry a bearer token at all. */
  get bearer(): boolean {
    return this.credentials.token !== undefined || this.credentials.tokenFile !== undefined;
  }

  /** Why the last re-read failed, if it did. */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  /** The token to send now (re-read from its file when due). */
  async token(): Promise<string | undefined> {
    if (this.credentials.tokenFile && this.clock.monotonic() - this.#readAt >= this.reloadMs) await this.#reread();
    return this.#token;
  }

  /** Re-reads the file now (after a 401); resolves whether the token changed. */
  async reload(): Promise<boolean> {
    if (!this.credentials.tokenFile) return false;
    const before = this.#token;
    await this.#reread();
    return this.#token !== before;
  }

  #reread(): Promise<void> {
    // Concurrent callers share one read.
    this.#reading ??= (async () => {
      try {
        const text = (await this.read(this.credentials.tokenFile!)).trim();
        if (text) this.#token = text;
        this.#lastError = text ? undefined : `${this.credentials.tokenFile} is empty`;
      } catch (err) {
        this.#lastError = `${this.credentials.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`;
      } finally {
        this.#readAt = this.clock.monotonic();
        this.#reading = undefined;
      }
    })();
    return this.#reading;
  }
}
