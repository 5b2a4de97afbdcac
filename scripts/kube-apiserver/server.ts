// The HTTPS server: fault injection first, then bearer-token authentication, authorisation,
// routing to discovery/OpenAPI or to a resource's verb, content negotiation (JSON or a Table)
// and Status objects for every failure. startKubeApiServer() is the one entry point.

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { Api, type ListQuery } from './api.js';
import { Authorizer, authenticate, discoveryRule, mastersRule, type AuthzRule, type RequestAttributes, type UserInfo } from './auth.js';
import { Discovery, versionInfo } from './discovery.js';
import { ApiError, errors } from './errors.js';
import { Faults, type FaultSpec } from './faults.js';
import { openapiV2ContentType, openapiV2Protobuf } from './openapiv2.js';
import { Registry } from './registry.js';
import { apiVersionOf, type ResourceDef } from './resources.js';
import { parseFieldSelector } from './selectors.js';
import { Store } from './store.js';
import { toTable } from './table.js';
import { makeCerts } from './tls.js';
import { prepareWatch, type Watcher } from './watch.js';
import { CallRecorder } from './record.js';

export interface KubeApiServerOptions {
  /** The Kubernetes version /version reports (`1.30`, `v1.31.4`); kubectl's dispatcher picks its binary by it. Default 1.30. */
  version?: string;
  /** Port on 127.0.0.1 (default 0: any free port). */
  port?: number;
  /** Where certificates and the kubeconfig go; default a new temporary directory, removed on close. */
  dir?: string;
  /** Extra bearer tokens and who they are. */
  tokens?: Record<string, UserInfo>;
  /** Extra authorisation rules, after system:masters and discovery. */
  rules?: AuthzRule[];
  /** Watch window in events (default 100 000); smaller forces 410 sooner. */
  historySize?: number;
  /** How often open watches that asked for bookmarks get one (default 5 s). */
  bookmarkIntervalMs?: number;
  /** How long a continue token stays valid (default 5 min). */
  continueTtlMs?: number;
  /** Server-side watch timeout when the client sets none (default 30 min). */
  watchTimeoutMs?: number;
  /** Record every resource request with its identity and answer (`server.calls`; default off, switchable). */
  recordCalls?: boolean;
}

/** The live token table: the admin token, plus any issued later. */
export class Tokens {
  readonly table = new Map<string, UserInfo>();
  constructor(readonly admin: string) {
    this.table.set(admin, { name: 'kubernetes-admin', groups: ['system:masters'] });
  }

  /** Issues a new random token for this user. */
  issue(user: UserInfo): string {
    const t = randomBytes(24).toString('base64url');
    this.table.set(t, user);
    return t;
  }

  set(token: string, user: UserInfo): void {
    this.table.set(token, user);
  }

  revoke(token: string): boolean {
    return this.table.delete(token);
  }
}

export interface KubeApiServer {
  url: string;
  caPem: string;
  /** A kubeconfig for the admin token. */
  kubeconfigPath: string;
  tokens: Tokens;
  faults: Faults;
  store: Store;
  api: Api;
  authorizer: Authorizer;
  /** The call recorder (enabled by recordCalls, or later with `calls.enabled = true`). */
  calls: CallRecorder;
  /** Writes a kubeconfig that authenticates with this token. */
  writeKubeconfig(token: string, path: string): Promise<string>;
  close(): Promise<void>;
}

const JSON_TYPE = 'application/json';

function send(res: ServerResponse, code: number, body: string, headers: Record<string, string | string[]> = {}): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(code, { 'Content-Type': JSON_TYPE, 'Cache-Control': 'no-cache, private', ...headers });
  res.end(body);
}

function sendError(res: ServerResponse, e: ApiError): void {
  const headers: Record<string, string> = {};
  if (e.details?.retryAfterSeconds) headers['Retry-After'] = String(e.details.retryAfterSeconds);
  send(res, e.code, JSON.stringify(e.status()), headers);
}

const warningHeader = (msgs: string[]) => msgs.map((m) => `299 - ${JSON.stringify(m)}`);

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > 3 * 1024 * 1024) throw new ApiError(413, 'RequestEntityTooLarge', 'Request entity too large: limit is 3145728');
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text.trim()) return undefined;
  const type = (req.headers['content-type'] ?? JSON_TYPE).split(';')[0]!.trim();
  try {
    if (type === 'application/yaml') return parseYaml(text);
    return JSON.parse(text);
  } catch (err) {
    throw errors.badRequest(`the request body could not be decoded: ${(err as Error).message}`);
  }
}

/** Whether the client asked for a meta.k8s.io Table (what kubectl get asks for). */
function wantsTable(accept: string | undefined): boolean {
  if (!accept) return false;
  for (const part of accept.split(',')) {
    const [type, ...params] = part.split(';').map((s) => s.trim());
    const p = Object.fromEntries(params.map((x) => x.split('=').map((s) => s.trim()) as [string, string]));
    if (type === JSON_TYPE && p.as === 'Table' && p.g === 'meta.k8s.io' && (p.v === 'v1' || p.v === 'v1beta1')) return true;
    if (type === JSON_TYPE || type === '*/*' || type === 'application/*') return false;
  }
  return false;
}

function acceptsJson(accept: string | undefined): boolean {
  if (!accept) return true;
  return accept.split(',').some((part) => {
    const type = part.split(';')[0]!.trim();
    return type === JSON_TYPE || type === '*/*' || type === 'application/*' || type === '';
  });
}

interface Route {
  def: ResourceDef;
  namespace: string | undefined;
  name: string | undefined;
  subresource: string;
}

export async function startKubeApiServer(opts: KubeApiServerOptions = {}): Promise<KubeApiServer> {
  const ownDir = !opts.dir;
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'connwatch-kube-')));
  let certs: Awaited<ReturnType<typeof makeCerts>>;
  try {
    certs = await makeCerts(dir);
  } catch (e) {
    if (ownDir) await rm(dir, { recursive: true, force: true });
    throw new Error(`kube test API server: making certificates with openssl failed (is openssl installed? scripts/deps.sh installs it): ${(e as Error).message}`);
  }
  const info = versionInfo(opts.version ?? '1.30');
  const store = new Store({ historySize: opts.historySize ?? 100_000 });
  const registry = new Registry();
  const api = new Api(store, registry, { continueTtlMs: opts.continueTtlMs ?? 5 * 60_000 });
  const tokens = new Tokens(randomBytes(24).toString('base64url'));
  for (const [t, u] of Object.entries(opts.tokens ?? {})) tokens.set(t, u);
  const authorizer = new Authorizer([mastersRule, discoveryRule, ...(opts.rules ?? [])]);
  const faults = new Faults();
  const calls = new CallRecorder(opts.recordCalls ?? false);
  const watchers = new Set<Watcher>();
  const hung = new Set<ServerResponse>();
  const sockets = new Set<Socket>();
  let address = '127.0.0.1:0';
  const discovery = new Discovery(registry, () => address);
  const defaultWatchTimeout = opts.watchTimeoutMs ?? 30 * 60_000;

  function route(path: string): Route | undefined {
    const seg = path.split('/').filter(Boolean).map(decodeURIComponent);
    let group: string;
    let version: string;
    let rest: string[];
    if (seg[0] === 'api' && seg.length >= 3) {
      group = '';
      version = seg[1]!;
      rest = seg.slice(2);
    } else if (seg[0] === 'apis' && seg.length >= 4) {
      group = seg[1]!;
      version = seg[2]!;
      rest = seg.slice(3);
    } else return undefined;
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      const nsDef = registry.find(group, version, rest[2]!);
      if (nsDef?.namespaced) {
        namespace = rest[1];
        rest = rest.slice(2);
      }
    }
    if (rest.length > 3) return undefined;
    const def = registry.find(group, version, rest[0]!);
    if (!def) return undefined;
    if (namespace !== undefined && !def.namespaced) return undefined;
    return { def, namespace, name: rest[1], subresource: rest[2] ?? '' };
  }

  function verbOf(method: string, r: Route, q: URLSearchParams): string {
    switch (method) {
      case 'GET': case 'HEAD':
        if (r.name) return 'get';
        return q.get('watch') === 'true' || q.get('watch') === '1' ? 'watch' : 'list';
      case 'POST': return 'create';
      case 'PUT': return 'update';
      case 'PATCH': return 'patch';
      case 'DELETE': return r.name ? 'delete' : 'deletecollection';
      default: return method.toLowerCase();
    }
  }

  const user = (req: IncomingMessage) => authenticate(req.headers.authorization, tokens.table);

  async function handleFaultsAdmin(req: IncomingMessage, res: ServerResponse, u: UserInfo, path: string): Promise<void> {
    // The fault table is for the one admin token, not for anyone in system:masters.
    if (req.headers.authorization?.match(/^Bearer\s+(\S+)/i)?.[1] !== tokens.admin) {
      throw authorizer.forbidden({ verb: req.method!.toLowerCase(), apiGroup: '', resource: '', subresource: '', namespace: '', name: '', path }, u);
    }
    const id = path.split('/')[2];
    if (req.method === 'GET') return send(res, 200, JSON.stringify({ faults: faults.list() }));
    if (req.method === 'POST') {
      const body = (await readBody(req)) as FaultSpec;
      if (!body || typeof body.path !== 'string' || !['latency', 'throttle', 'error', 'reset', 'hang'].includes(body.kind)) throw errors.badRequest('a fault needs path and kind (latency | throttle | error | reset | hang)');
      return send(res, 201, JSON.stringify({ id: faults.add(body) }));
    }
    if (req.method === 'DELETE') {
      if (id) {
        if (!faults.remove(id)) throw errors.notFound('', 'faults', id);
      } else faults.clear();
      return send(res, 200, JSON.stringify({ faults: faults.list() }));
    }
    throw errors.methodNotAllowed(req.method ?? '');
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://localhost');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    if (path !== '/_faults' && !path.startsWith('/_faults/')) {
      const f = faults.match(method, path);
      if (f) {
        switch (f.kind) {
          case 'latency':
            await new Promise((r) => setTimeout(r, f.delayMs ?? 1000));
            break;
          case 'throttle':
            return sendError(res, errors.tooManyRequests('Too many requests, please try again later.', f.retryAfterSeconds ?? 1));
          case 'error':
            return sendError(res, new ApiError(f.status ?? 500, f.status === 503 ? 'ServiceUnavailable' : 'InternalError', f.status === 503 ? 'the server is currently unable to handle the request' : 'Internal error occurred: injected fault', {}));
          case 'reset': {
            const sock = req.socket as Socket & { _parent?: Socket };
            (sock._parent ?? sock).resetAndDestroy();
            return;
          }
          case 'hang':
            hung.add(res);
            res.on('close', () => hung.delete(res));
            return;
        }
      }
    }
    const u = user(req);
    if (path === '/_faults' || path.startsWith('/_faults/')) return handleFaultsAdmin(req, res, u, path);

    const r = route(path);
    if (!r) {
      const attrs: RequestAttributes = { verb: method.toLowerCase(), apiGroup: '', resource: '', subresource: '', namespace: '', name: '', path };
      if (!authorizer.allows(attrs, u)) throw authorizer.forbidden(attrs, u);
      if (method !== 'GET') throw errors.methodNotAllowed(method);
      return nonResource(path, res);
    }

    const q = url.searchParams;
    const verb = verbOf(method, r, q);
    const { def } = r;
    let name = r.name ?? '';
    // For list and watch the authoriser sees the name a metadata.name field selector pins.
    if (!r.name && (verb === 'list' || verb === 'watch')) name = parseFieldSelector(q.get('fieldSelector'), def.fields).name ?? '';
    const attrs: RequestAttributes = { verb, apiGroup: def.group, resource: def.resource, subresource: r.subresource, namespace: r.namespace ?? '', name };
    const allowed = authorizer.allows(attrs, u);
    calls.record(attrs, u, allowed);
    if (!allowed) throw authorizer.forbidden(attrs, u);

    if (r.subresource && !(r.subresource === 'status' && def.statusSubresource) && !(r.subresource === 'eviction' && def.storage === '/pods')) throw errors.notFoundPath();
    if (r.subresource === 'eviction' && method !== 'POST') throw errors.methodNotAllowed(method);
    if (r.subresource === 'status' && !['GET', 'PUT', 'PATCH'].includes(method)) throw errors.methodNotAllowed(method);
    if (def.namespaced && r.name && r.namespace === undefined) throw errors.notFoundPath();

    const accept = req.headers.accept;
    if (!acceptsJson(accept)) throw errors.notAcceptable([JSON_TYPE, 'application/yaml']);
    const table = wantsTable(accept);
    const write = { dryRun: q.get('dryRun') === 'All', fieldValidation: q.get('fieldValidation') };
    const ct = req.headers['content-type'] ?? JSON_TYPE;
    const bodyType = ct.split(';')[0]!.trim();
    if ((method === 'POST' || method === 'PUT') && ![JSON_TYPE, 'application/yaml', '*/*'].includes(bodyType)) throw errors.unsupportedMediaType(bodyType, [JSON_TYPE, 'application/yaml', 'application/vnd.kubernetes.protobuf']);

    const answer = (code: number, obj: unknown, warnings: string[] = []) =>
      send(res, code, JSON.stringify(obj), warnings.length ? { Warning: warningHeader(warnings) } : {});

    switch (verb) {
      case 'get': {
        const stored = api.getStored(def, r.namespace, r.name!);
        if (table) {
          return answer(200, toTable(def, [stored], { resourceVersion: stored.metadata.resourceVersion }, api.crdObject(def), q.get('includeObject')));
        }
        return send(res, 200, api.presentJson(def, stored));
      }
      case 'list': {
        const lq: ListQuery = { labelSelector: q.get('labelSelector'), fieldSelector: q.get('fieldSelector'), limit: q.get('limit'), continue: q.get('continue'), resourceVersion: q.get('resourceVersion'), resourceVersionMatch: q.get('resourceVersionMatch') };
        const result = api.list(def, r.namespace, lq);
        if (table) return answer(200, toTable(def, result.items, result.metadata, api.crdObject(def), q.get('includeObject')));
        const body = `{"kind":${JSON.stringify(`${def.kind}List`)},"apiVersion":${JSON.stringify(apiVersionOf(def))},"metadata":${JSON.stringify(result.metadata)},"items":[${result.items.map((o) => api.itemJson(def, o)).join(',')}]}`;
        return send(res, 200, body);
      }
      case 'watch': {
        const start = prepareWatch(api, def, r.namespace, {
          resourceVersion: q.get('resourceVersion'), resourceVersionMatch: q.get('resourceVersionMatch'), labelSelector: q.get('labelSelector'), fieldSelector: q.get('fieldSelector'),
          allowWatchBookmarks: q.get('allowWatchBookmarks'), timeoutSeconds: q.get('timeoutSeconds'), sendInitialEvents: q.get('sendInitialEvents'),
        }, defaultWatchTimeout);
        let w: Watcher | undefined = undefined;
        w = start(res, () => { if (w) watchers.delete(w); });
        if (!res.writableEnded) watchers.add(w);
        return;
      }
      case 'create': {
        const body = await readBody(req);
        if (r.subresource === 'eviction') return answer(201, api.evict(r.namespace!, r.name!, body, write));
        if (r.name) throw errors.methodNotAllowed(method);
        const out = api.create(def, r.namespace, body, write);
        return answer(out.code, out.obj, out.warnings);
      }
      case 'update': {
        const out = api.update(def, r.namespace, r.name!, await readBody(req), r.subresource, write);
        return answer(out.code, out.obj, out.warnings);
      }
      case 'patch': {
        const type = ct.split(';')[0]!.trim();
        if (type === 'application/apply-patch+yaml') throw errors.unsupportedMediaType(type, ['application/json-patch+json', 'application/merge-patch+json', ...(def.strategicMerge ? ['application/strategic-merge-patch+json'] : [])]);
        const body = await readBody(req);
        const out = api.patch(def, r.namespace, r.name!, type, body, r.subresource, write);
        return answer(out.code, out.obj, out.warnings);
      }
      case 'delete': {
        const out = api.delete(def, r.namespace, r.name!, (await readBody(req)) as Record<string, unknown> | undefined, write);
        return answer(out.code, out.obj);
      }
      case 'deletecollection':
        return answer(200, api.deleteCollection(def, r.namespace, { labelSelector: q.get('labelSelector'), fieldSelector: q.get('fieldSelector') }, write));
      default:
        throw errors.methodNotAllowed(method);
    }
  }

  function nonResource(path: string, res: ServerResponse): void {
    if (path === '/version') return send(res, 200, JSON.stringify(info));
    if (path === '/api') return send(res, 200, JSON.stringify(discovery.api()));
    if (path === '/apis') return send(res, 200, JSON.stringify(discovery.apis()));
    if (path === '/healthz' || path === '/livez' || path === '/readyz') {
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('ok');
      return;
    }
    if (path === '/openapi/v3') return send(res, 200, discovery.openapiIndex());
    if (path === '/openapi/v2') {
      res.writeHead(200, { 'Content-Type': openapiV2ContentType });
      res.end(openapiV2Protobuf(info.gitVersion!));
      return;
    }
    if (path.startsWith('/openapi/v3/')) {
      const doc = discovery.openapiDoc(path.slice('/openapi/v3/'.length));
      if (doc) return send(res, 200, doc, { 'Cache-Control': 'public, immutable' });
      throw errors.notFoundPath();
    }
    const seg = path.split('/').filter(Boolean);
    if (seg[0] === 'api' && seg.length === 2) {
      const l = discovery.resourceList('', seg[1]!);
      if (l) return send(res, 200, JSON.stringify(l));
    }
    if (seg[0] === 'apis' && seg.length === 2) {
      const g = discovery.apiGroup(seg[1]!);
      if (g) return send(res, 200, JSON.stringify(g));
    }
    if (seg[0] === 'apis' && seg.length === 3) {
      const l = discovery.resourceList(seg[1]!, seg[2]!);
      if (l) return send(res, 200, JSON.stringify(l));
    }
    throw errors.notFoundPath();
  }

  const server: Server = createServer({ key: certs.keyPem, cert: certs.certPem, keepAlive: true }, (req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (e instanceof ApiError) return sendError(res, e);
      sendError(res, errors.internal((e as Error).message ?? String(e)));
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
    });
  } catch (e) {
    if (ownDir) await rm(dir, { recursive: true, force: true });
    throw e;
  }
  const port = (server.address() as { port: number }).port;
  address = `127.0.0.1:${port}`;
  const url = `https://127.0.0.1:${port}`;

  const bookmarkTimer = setInterval(() => {
    for (const w of watchers) if (w.bookmarks) w.bookmark();
  }, opts.bookmarkIntervalMs ?? 5000);
  bookmarkTimer.unref();

  async function writeKubeconfig(token: string, path: string): Promise<string> {
    const ca = Buffer.from(certs.caPem).toString('base64');
    await writeFile(path, [
      'apiVersion: v1', 'kind: Config', 'clusters:', '- name: connwatch-test', '  cluster:', `    server: ${url}`, `    certificate-authority-data: ${ca}`,
      'users:', '- name: user', '  user:', `    token: ${token}`, 'contexts:', '- name: connwatch-test', '  context:', '    cluster: connwatch-test', '    user: user', '    namespace: default',
      'current-context: connwatch-test', '',
    ].join('\n'), { mode: 0o600 });
    return path;
  }
  const kubeconfigPath = await writeKubeconfig(tokens.admin, join(dir, 'kubeconfig'));

  let closed = false;
  return {
    url, caPem: certs.caPem, kubeconfigPath, tokens, faults, store, api, authorizer, calls, writeKubeconfig,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(bookmarkTimer);
      for (const w of [...watchers]) w.end();
      for (const res of hung) res.destroy();
      const done = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await done;
      if (ownDir) await rm(dir, { recursive: true, force: true });
    },
  };
}
