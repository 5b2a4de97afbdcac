/**
 * Reads a kubeconfig (for running outside the cluster): the current context's cluster (server,
 * certificate-authority or -data, tls-server-name) and user (token, tokenFile, client-certificate
 * and -key or their -data). Unsupported, refused with a sentence rather than half-working: exec
 * credential plugins, auth-provider, username/password, impersonation (`as`), proxy-url,
 * insecure-skip-tls-verify, and http:// servers.
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import type { KubeCredentials } from './source.js';

/** What a kubeconfig contributes to reaching the cluster. */
export interface KubeconfigAccess {
  server: string;
  serverName?: string;
  /** PEM of the CA that signs the server's certificate; absent: the system's CAs. */
  caPem?: string;
  credentials: KubeCredentials;
  /** The context's namespace, when it names one. */
  namespace?: string;
  context: string;
}

/** Reads a file as text; injected for tests. */
export type ReadText = (path: string) => Promise<string>;

type Parsed = { ok: true; value: KubeconfigAccess } | { ok: false; reason: string };

/** Parses a kubeconfig's text; `path` resolves relative file references the way kubectl does (against the file's folder). */
export async function parseKubeconfig(text: string, path: string, readText: ReadText, contextName?: string): Promise<Parsed> {
  const { parse } = await import('yaml'); // only a kubeconfig user pays for the YAML parser
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    return fail(path, `not YAML (${(err as Error).message.split('\n')[0]})`);
  }
  if (!isRecord(doc)) return fail(path, 'not a kubeconfig (the top level is not a mapping)');
  const wanted = contextName ?? str(doc['current-context']);
  if (!wanted) return fail(path, 'no current-context: set one (kubectl config use-context NAME)');
  const context = named(doc.contexts, wanted, 'context');
  if (!context) return fail(path, `context "${wanted}" is not in contexts`);
  const clusterName = str(context.cluster);
  const userName = str(context.user);
  if (!clusterName) return fail(path, `context "${wanted}" names no cluster`);
  const cluster = named(doc.clusters, clusterName, 'cluster');
  if (!cluster) return fail(path, `cluster "${clusterName}" (of context "${wanted}") is not in clusters`);

  const server = str(cluster.server);
  if (!server) return fail(path, `cluster "${clusterName}" has no server`);
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    return fail(path, `cluster "${clusterName}": server "${server}" is not a URL`);
  }
  if (url.protocol !== 'https:') return fail(path, `cluster "${clusterName}": server "${server}" is not https:// (connwatch only talks TLS to an API server)`);
  for (const key of ['insecure-skip-tls-verify', 'proxy-url']) {
    if (cluster[key] !== undefined && cluster[key] !== false) return fail(path, `cluster "${clusterName}": ${key} is not supported (give the cluster's CA; reach the server directly)`);
  }
  const base = dirname(path);
  const file = (ref: string) => (isAbsolute(ref) ? ref : resolve(base, ref));
  const access: KubeconfigAccess = { server: url.origin, credentials: {}, context: wanted };
  const serverName = str(cluster['tls-server-name']);
  if (serverName) access.serverName = serverName;
  const namespace = str(context.namespace);
  if (namespace) access.namespace = namespace;
  try {
    const caData = str(cluster['certificate-authority-data']);
    const caFile = str(cluster['certificate-authority']);
    if (caData) access.caPem = fromBase64(caData);
    else if (caFile) access.caPem = await readText(file(caFile));
  } catch (err) {
    return fail(path, `cluster "${clusterName}": cannot read its certificate-authority (${codeOf(err)})`);
  }

  if (userName) {
    const user = named(doc.users, userName, 'user');
    if (!user) return fail(path, `user "${userName}" (of context "${wanted}") is not in users`);
    for (const key of ['exec', 'auth-provider', 'username', 'password', 'as', 'as-groups', 'as-uid', 'as-user-extra']) {
      if (user[key] !== undefined) {
        return fail(path, `user "${userName}": ${key} is not supported (connwatch takes a token, a token file, or a client certificate and key — e.g. a service-account token: kubectl create token)`);
      }
    }
    try {
      const certPem = str(user['client-certificate-data']) ? fromBase64(str(user['client-certificate-data'])!) : str(user['client-certificate']) ? await readText(file(str(user['client-certificate'])!)) : undefined;
      const keyPem = str(user['client-key-data']) ? fromBase64(str(user['client-key-data'])!) : str(user['client-key']) ? await readText(file(str(user['client-key'])!)) : undefined;
      if ((certPem === undefined) !== (keyPem === undefined)) return fail(path, `user "${userName}": a client certificate needs both the certificate and its key`);
      const token = str(user.token);
      const tokenFile = str(user.tokenFile);
      if (token) access.credentials.token = token;
      else if (tokenFile) access.credentials.tokenFile = file(tokenFile);
      if (certPem !== undefined && keyPem !== undefined) Object.assign(access.credentials, { certPem, keyPem });
    } catch (err) {
      return fail(path, `user "${userName}": cannot read a credential file (${codeOf(err)})`);
    }
  }
  return { ok: true, value: access };
}

function fail(path: string, what: string): { ok: false; reason: string } {
  return { ok: false, reason: `kubeconfig ${path}: ${what}` };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** The `key` mapping of the entry named `name` in a kubeconfig list ({ name, cluster: {…} }). */
function named(list: unknown, name: string, key: string): Record<string, unknown> | undefined {
  if (!Array.isArray(list)) return undefined;
  for (const entry of list) {
    if (isRecord(entry) && entry.name === name) return isRecord(entry[key]) ? entry[key] : {};
  }
  return undefined;
}

function fromBase64(data: string): string {
  return Buffer.from(data, 'base64').toString('utf8');
}

function codeOf(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? String(err);
}
