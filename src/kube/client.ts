/**
 * A small Kubernetes client on undici: one keep-alive pool per endpoint (and one for watches),
 * endpoints tried in order on connection failures, a token bucket, a deadline on every call,
 * retries with backoff and jitter for 429/5xx/connection trouble, and the reachability state.
 * Every outside trouble resolves `{ ok: false, code, reason, hint }`; it throws only for bugs.
 */
import type { Readable } from 'node:stream';
import type { Eviction } from 'kubernetes-types/policy/v1.js';
import type { DeleteOptions, Status } from 'kubernetes-types/meta/v1.js';
import pRetry, { AbortError } from 'p-retry';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { Pool, errors as undiciErrors } from 'undici';
import { sleep as realSleep, type Sleep } from '../common/sleep.js';
import type { Clock } from '../types.js';
import { VERSION } from '../version.js';
import { TokenBucket } from './bucket.js';
import type { KubeConfig } from './config.js';
import {
  CONNECT_FAILURE_CODES,
  KUBE_ERROR_CODES,
  TLS_FAILURE_CODES,
  codeForStatus,
  isRetryable,
  parseRetryAfter,
  rbacHint,
  type KubeErrorCode,
  type KubeFailure,
  type KubeResult,
} from './errors.js';
import type { ReadText } from './kubeconfig.js';
import { requestCounter, type RequestCounter } from './metrics.js';
import { LineSplitter, parseWatchLine } from './ndjson.js';
import { ReachabilityTracker, type Reachability, type ReachabilityView, type Schedule } from './reachability.js';
import { RESOURCES, apiVersionOf, rbacResourceName, resourcePath, type KubeObject, type ObjectRef, type Resource } from './resources.js';
import { TokenSource, readText, resolveClusterAccess, type ClusterAccess } from './source.js';

export type { KubeFailure, KubeResult };

/** The Kubernetes verbs, as RBAC and the request metric name them. */
export type KubeVerb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete';

/** Patch flavours the client sends. */
export type PatchType = 'merge' | 'strategic' | 'json';

const PATCH_CONTENT_TYPES: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  json: 'application/json-patch+json',
};

/** What every call may take. */
export interface CallOptions {
  signal?: AbortSignal;
  /** Deadline of this call including retries (ms); default kube.requestTimeoutMs. */
  timeoutMs?: number;
}

/** Selects objects of a kind. */
export interface Selector {
  /** Namespaced resources: one namespace; absent: all namespaces. */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

/** One page of a list. */
export interface ListPage<T> {
  items: T[];
  resourceVersion: string;
  /** Absent on the last page. */
  continue?: string;
}

/** A watch event as the client hands it on (ERROR events end the watch as a failure instead). */
export type WatchEvent<T> = { type: 'ADDED' | 'MODIFIED' | 'DELETED'; object: T; resourceVersion?: string } | { type: 'BOOKMARK'; resourceVersion: string };

/** How one watch request ended when the server closed it normally. */
export interface WatchEnd {
  events: number;
  /** Lines that were not events (skipped). */
  garbage: number;
  /** The last resourceVersion seen (events and bookmarks), to resume from. */
  resourceVersion?: string;
}

/** What the client needs from outside. */
export interface KubeClientDeps {
  clock: Clock;
  log?: Logger;
  /** Where connwatch_kube_requests_total goes; none: not counted. */
  metrics?: Registry;
  sleep?: Sleep;
  readText?: ReadText;
  /** For tests: the reachability timer. */
  schedule?: Schedule;
}

/** The subset of kube settings the client itself uses. */
export type KubeClientSettings = Omit<KubeConfig, 'endpoints' | 'tlsServerName' | 'kubeconfig' | 'tokenFile' | 'caFile' | 'leaderElection'>;

/** Resolves the cluster access (in-cluster, kubeconfig, direct endpoints) and builds the client; a sentence when it cannot. */
export async function createKubeClient(
  cfg: KubeConfig,
  deps: KubeClientDeps,
  env: Record<string, string | undefined> = process.env,
): Promise<{ ok: true; value: KubeClient } | { ok: false; reason: string }> {
  const access = await resolveClusterAccess(cfg, env, deps.readText ?? readText);
  if (!access.ok) return access;
  return { ok: true, value: new KubeClient(access.value, cfg, deps) };
}

interface Target {
  url: string;
  requests: Pool;
  watches: Pool;
}

interface RequestSpec {
  verb: KubeVerb;
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  resource: Resource<KubeObject>;
  ref: ObjectRef;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  /** Retry 429s (not for evictions: there a 429 is a PodDisruptionBudget's refusal, the caller decides when to ask again). */
  retryThrottled?: boolean;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Readable;
  endpoint: string;
}

/** A failure carried through p-retry. */
class Failed extends Error {
  constructor(readonly failure: KubeFailure) {
    super(failure.reason);
  }
}

/** The client: one per process role (the agent, the controller), shared by every box that talks to Kubernetes. */
export class KubeClient implements ReachabilityView {
  /** This pod's namespace (in-cluster) or the kubeconfig context's, when known. */
  readonly namespace: string | undefined;
  /** Which source the access came from. */
  readonly source: ClusterAccess['source'];
  readonly #settings: KubeClientSettings;
  readonly #targets: Target[];
  /** The endpoint that answered last: requests start there and move on in order when it refuses. */
  #preferred = 0;
  readonly #tokens: TokenSource;
  readonly #bucket: TokenBucket;
  readonly #reach: ReachabilityTracker;
  readonly #count: RequestCounter;
  readonly #clock: Clock;
  readonly #sleep: Sleep;
  readonly #log: Logger | undefined;
  readonly #userAgent = `connwatch/${VERSION}`;
  #closed = false;

  constructor(access: ClusterAccess, settings: KubeClientSettings, deps: KubeClientDeps) {
    if (access.endpoints.length === 0) throw new Error('bug: a kube client needs at least one endpoint');
    this.namespace = access.namespace;
    this.source = access.source;
    this.#settings = settings;
    this.#clock = deps.clock;
    this.#sleep = deps.sleep ?? realSleep;
    this.#log = deps.log;
    const tls = {
      ...(access.caPem ? { ca: access.caPem } : {}),
      ...(access.credentials.certPem ? { cert: access.credentials.certPem, key: access.credentials.keyPem } : {}),
      timeout: settings.connectTimeoutMs,
    };
    this.#targets = access.endpoints.map((endpoint) => {
      const connect = { ...tls, ...(endpoint.serverName ? { servername: endpoint.serverName } : {}) };
      return {
        url: endpoint.url,
        requests: new Pool(endpoint.url, {
          connections: settings.connectionsPerEndpoint,
          pipelining: 1,
          keepAliveTimeout: 30_000,
          keepAliveMaxTimeout: 60_000,
          headersTimeout: settings.attemptTimeoutMs,
          bodyTimeout: settings.attemptTimeoutMs,
          connect,
        }),
        watches: new Pool(endpoint.url, {
          connections: settings.maxWatchesPerEndpoint,
          pipelining: 1,
          keepAliveTimeout: 5_000,
          headersTimeout: settings.attemptTimeoutMs,
          // A watch is quiet for minutes; its hard deadline (timeoutSeconds + slack) ends a dead one.
          bodyTimeout: 0,
          connect,
        }),
      };
    });
    this.#tokens = new TokenSource(access.credentials, settings.tokenReloadMs, deps.clock, deps.readText ?? readText);
    this.#bucket = new TokenBucket(settings.qps, settings.burst, deps.clock, this.#sleep);
    this.#reach = new ReachabilityTracker(
      this.#targets.map((t) => t.url),
      settings.unreachableAfterMs,
      deps.clock,
      deps.schedule,
    );
    this.#count = requestCounter(deps.metrics);
  }

  /** The endpoints in the order they are tried. */
  get endpoints(): string[] {
    return this.#targets.map((t) => t.url);
  }

  reachability(): Reachability {
    return this.#reach.reachability();
  }

  onReachabilityChange(listener: (now: Reachability) => void): () => void {
    return this.#reach.onReachabilityChange(listener);
  }

  // ─── operations ─────────────────────────────────────────────────────────────────────────

  /** GET one object. */
  get<T extends KubeObject>(resource: Resource<T>, ref: { namespace?: string; name: string }, options?: CallOptions): Promise<KubeResult<T>> {
    return this.#call<T>({ verb: 'get', method: 'GET', resource, ref: objectRef(ref) }, options);
  }

  /** GET one page of a collection (`limit`, `continue`, selectors). */
  async list<T extends KubeObject>(resource: Resource<T>, selector: Selector & { limit?: number; continue?: string } = {}, options?: CallOptions): Promise<KubeResult<ListPage<T>>> {
    const query = { labelSelector: selector.labelSelector, fieldSelector: selector.fieldSelector, limit: selector.limit, continue: selector.continue };
    const page = await this.#call<{ items?: T[]; metadata?: { resourceVersion?: string; continue?: string } }>(
      { verb: 'list', method: 'GET', resource, ref: collectionRef(selector.namespace), query },
      options,
    );
    if (!page.ok) return page;
    const { items, metadata } = page.value;
    if (!Array.isArray(items)) return this.#garbage('list', resource, 'the list has no items array');
    return { ok: true, value: { items, resourceVersion: metadata?.resourceVersion ?? '', ...(metadata?.continue ? { continue: metadata.continue } : {}) } };
  }

  /** Lists a whole collection page by page (kube.listPageSize); the resourceVersion is the first page's, as the API server keeps one snapshot across pages. */
  async listAll<T extends KubeObject>(resource: Resource<T>, selector: Selector = {}, options?: CallOptions & { pageSize?: number }): Promise<KubeResult<{ items: T[]; resourceVersion: string; pages: number }>> {
    const items: T[] = [];
    let token: string | undefined;
    let resourceVersion = '';
    let pages = 0;
    do {
      const page = await this.list(resource, { ...selector, limit: options?.pageSize ?? this.#settings.listPageSize, ...(token ? { continue: token } : {}) }, options);
      if (!page.ok) return page;
      pages += 1;
      if (pages === 1) resourceVersion = page.value.resourceVersion;
      for (const item of page.value.items) items.push(item);
      token = page.value.continue;
    } while (token);
    return { ok: true, value: { items, resourceVersion, pages } };
  }

  /** POST a new object (its namespace from metadata.namespace). */
  create<T extends KubeObject>(resource: Resource<T>, object: T, options?: CallOptions): Promise<KubeResult<T>> {
    const namespace = resource.namespaced ? object.metadata?.namespace : undefined;
    if (resource.namespaced && !namespace) throw new Error(`bug: create ${resource.plural} without metadata.namespace`);
    return this.#call<T>({ verb: 'create', method: 'POST', resource, ref: collectionRef(namespace), body: withKind(resource, object) }, options);
  }

  /** PUT the whole object; it must carry metadata.resourceVersion, so a concurrent writer's change makes this a `conflict`. */
  update<T extends KubeObject>(resource: Resource<T>, object: T, options?: CallOptions): Promise<KubeResult<T>> {
    return this.#put(resource, object, undefined, options);
  }

  /** PATCH an object: merge-patch, strategic-merge-patch, or JSON patch. */
  patch<T extends KubeObject>(resource: Resource<T>, ref: { namespace?: string; name: string }, patch: unknown, type: PatchType = 'merge', options?: CallOptions): Promise<KubeResult<T>> {
    return this.#call<T>({ verb: 'patch', method: 'PATCH', resource, ref: objectRef(ref), body: patch, contentType: PATCH_CONTENT_TYPES[type] }, options);
  }

  /** GET an object through its status subresource. */
  getStatus<T extends KubeObject>(resource: Resource<T>, ref: { namespace?: string; name: string }, options?: CallOptions): Promise<KubeResult<T>> {
    return this.#call<T>({ verb: 'get', method: 'GET', resource, ref: { ...objectRef(ref), subresource: 'status' } }, options);
  }

  /** PUT the status subresource (with the object's resourceVersion). */
  updateStatus<T extends KubeObject>(resource: Resource<T>, object: T, options?: CallOptions): Promise<KubeResult<T>> {
    return this.#put(resource, object, 'status', options);
  }

  /** PATCH the status subresource. */
  patchStatus<T extends KubeObject>(resource: Resource<T>, ref: { namespace?: string; name: string }, patch: unknown, type: PatchType = 'merge', options?: CallOptions): Promise<KubeResult<T>> {
    return this.#call<T>({ verb: 'patch', method: 'PATCH', resource, ref: { ...objectRef(ref), subresource: 'status' }, body: patch, contentType: PATCH_CONTENT_TYPES[type] }, options);
  }

  /** DELETE an object; preconditions (uid, resourceVersion) make a changed object a `conflict` instead of a deletion. */
  delete<T extends KubeObject>(
    resource: Resource<T>,
    ref: { namespace?: string; name: string },
    deleteOptions: Pick<DeleteOptions, 'preconditions' | 'propagationPolicy' | 'gracePeriodSeconds' | 'dryRun'> = {},
    options?: CallOptions,
  ): Promise<KubeResult<T | Status>> {
    const body = Object.keys(deleteOptions).length > 0 ? { apiVersion: 'v1', kind: 'DeleteOptions', ...deleteOptions } : undefined;
    return this.#call<T | Status>({ verb: 'delete', method: 'DELETE', resource, ref: objectRef(ref), body }, options);
  }

  /**
   * Evicts a pod (policy/v1 Eviction, POST pods/{name}/eviction), which respects its
   * PodDisruptionBudgets. A budget's refusal is a `throttled` failure (HTTP 429) returned at once,
   * not retried: the caller decides when to ask again.
   */
  evict(ref: { namespace: string; name: string }, deleteOptions?: Eviction['deleteOptions'], options?: CallOptions): Promise<KubeResult<Status>> {
    const body: Eviction = { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: ref.name, namespace: ref.namespace }, ...(deleteOptions ? { deleteOptions } : {}) };
    return this.#call<Status>({ verb: 'create', method: 'POST', resource: RESOURCES.pods, ref: { ...objectRef(ref), subresource: 'eviction' }, body, retryThrottled: false }, options);
  }

  /**
   * One watch request from `resourceVersion` with bookmarks: hands each event to `onEvent`
   * (awaited, so a slow consumer slows the stream, never buffers it), and resolves when the
   * server ends it (timeoutSeconds) or it fails (`gone` on 410: list again). Not retried: the
   * watch loop decides.
   */
  async watch<T extends KubeObject>(
    resource: Resource<T>,
    selector: Selector & { name?: string; resourceVersion?: string; timeoutSeconds?: number },
    onEvent: (event: WatchEvent<T>) => void | Promise<void>,
    signal?: AbortSignal,
  ): Promise<KubeResult<WatchEnd>> {
    const timeoutSeconds = selector.timeoutSeconds ?? this.#settings.watch.timeoutSeconds;
    const fieldSelector = [selector.name !== undefined ? `metadata.name=${selector.name}` : undefined, selector.fieldSelector].filter(Boolean).join(',') || undefined;
    const spec: RequestSpec = {
      verb: 'watch',
      method: 'GET',
      resource,
      ref: collectionRef(selector.namespace),
      query: { watch: 1, allowWatchBookmarks: true, timeoutSeconds, resourceVersion: selector.resourceVersion, labelSelector: selector.labelSelector, fieldSelector },
    };
    const deadline = AbortSignal.timeout(timeoutSeconds * 1000 + 30_000);
    const combined = signal ? AbortSignal.any([deadline, signal]) : deadline;
    try {
      await this.#bucket.take(combined);
    } catch {
      return this.#interrupted(spec, signal, deadline, 'waiting for the rate limit');
    }
    const answer = await this.#send(spec, combined, true, signal, deadline);
    if (!answer.ok) return answer;
    if (answer.value.status !== 200) return this.#refusal(spec, answer.value);
    const end: WatchEnd = { events: 0, garbage: 0 };
    const splitter = new LineSplitter(this.#settings.maxBodyBytes);
    const handle = async (line: string): Promise<KubeFailure | undefined> => {
      const parsed = parseWatchLine(line);
      if (parsed === undefined) return undefined;
      if (!parsed.ok) {
        end.garbage += 1;
        this.#log?.warn({ resource: resource.plural, reason: parsed.reason }, 'kube watch: skipped a line that is not an event');
        return undefined;
      }
      const event = parsed.event;
      if (event.type === 'ERROR') {
        const status = event.object;
        const code = codeForStatus(status.code ?? 500);
        return this.#failure(spec, code, `watch ${rbacResourceName(resource)}: ${status.message ?? status.reason ?? 'ERROR event'}`, { status: status.code ?? 0, details: status });
      }
      const rv = event.object.metadata?.resourceVersion;
      if (rv) end.resourceVersion = rv;
      end.events += 1;
      if (event.type === 'BOOKMARK') {
        if (rv) await onEvent({ type: 'BOOKMARK', resourceVersion: rv });
        return undefined;
      }
      await onEvent({ type: event.type, object: event.object as unknown as T, ...(rv ? { resourceVersion: rv } : {}) });
      return undefined;
    };
    try {
      for await (const chunk of answer.value.body as AsyncIterable<Buffer>) {
        const { lines, dropped } = splitter.push(chunk);
        end.garbage += dropped;
        for (const line of lines) {
          const failed = await handle(line);
          if (failed) {
            answer.value.body.destroy();
            return failed;
          }
        }
      }
      const rest = splitter.end();
      if (rest !== undefined) {
        const failed = await handle(rest);
        if (failed) return failed;
      }
      return { ok: true, value: end };
    } catch (err) {
      const failure = this.#classify(spec, err, signal, deadline, answer.value.endpoint);
      // The server (or a dead connection) ended the stream mid-way: what arrived stands, resume from it.
      return failure.code === 'aborted' ? failure : { ...failure, reason: `${failure.reason} after ${end.events} events` };
    }
  }

  /** Closes every connection; calls in flight resolve as failures. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#reach.close();
    await Promise.all(this.#targets.flatMap((t) => [t.requests.destroy().catch(() => undefined), t.watches.destroy().catch(() => undefined)]));
  }

  // ─── the request path ───────────────────────────────────────────────────────────────────

  #put<T extends KubeObject>(resource: Resource<T>, object: T, subresource: string | undefined, options?: CallOptions): Promise<KubeResult<T>> {
    const name = object.metadata?.name;
    if (!name) throw new Error(`bug: update ${resource.plural} without metadata.name`);
    if (!object.metadata?.resourceVersion) throw new Error(`bug: update ${resource.plural}/${name} without metadata.resourceVersion (read it first)`);
    const ref: ObjectRef = { ...objectRef({ name, ...(resource.namespaced ? { namespace: object.metadata.namespace } : {}) }), ...(subresource ? { subresource } : {}) };
    return this.#call<T>({ verb: 'update', method: 'PUT', resource, ref, body: withKind(resource, object) }, options);
  }

  /** One call: rate limit, deadline, retries (p-retry), one token re-read on 401. */
  async #call<T>(spec: RequestSpec, options: CallOptions = {}): Promise<KubeResult<T>> {
    if (this.#closed) return this.#failure(spec, 'closed', `${describe(spec)}: the client is closed`);
    const timeoutMs = options.timeoutMs ?? this.#settings.requestTimeoutMs;
    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = options.signal ? AbortSignal.any([deadline, options.signal]) : deadline;
    let last: KubeFailure | undefined;
    let reloaded = false;
    const { retry } = this.#settings;
    try {
      return await pRetry(
        async () => {
          let result = await this.#attempt<T>(spec, signal, options.signal, deadline);
          if (!result.ok && result.code === 'unauthorized' && !reloaded && this.#tokens.bearer) {
            // A rotated token: re-read the file once and try once more, never in a loop.
            reloaded = true;
            await this.#tokens.reload();
            result = await this.#attempt<T>(spec, signal, options.signal, deadline);
          }
          if (result.ok) return result;
          last = result;
          const retryable = isRetryable(result.code) && !(result.code === 'throttled' && spec.retryThrottled === false);
          throw retryable ? new Failed(result) : new AbortError(new Failed(result));
        },
        {
          retries: retry.retries,
          minTimeout: retry.minDelayMs,
          maxTimeout: retry.maxDelayMs,
          factor: 2,
          randomize: true,
          signal,
          unref: true,
          onFailedAttempt: async ({ error, retriesLeft }) => {
            if (!(error instanceof Failed) || retriesLeft === 0) return;
            const { failure } = error;
            this.#log?.debug({ request: describe(spec), code: failure.code, reason: failure.reason, retriesLeft }, 'kube request failed; retrying');
            // Honour Retry-After (capped); p-retry's own backoff comes on top of it.
            if (failure.retryAfterMs !== undefined) await this.#sleep(Math.min(failure.retryAfterMs, retry.maxRetryAfterMs), signal);
          },
        },
      );
    } catch (err) {
      if (err instanceof Failed) return err.failure;
      if (signal.aborted) {
        if (options.signal?.aborted) return this.#failure(spec, 'aborted', `${describe(spec)}: aborted`);
        if (last) return { ...last, reason: `${last.reason} (no success within the call's ${timeoutMs} ms deadline)` };
        return this.#failure(spec, 'timeout', `${describe(spec)}: no answer within ${timeoutMs} ms`);
      }
      throw err;
    }
  }

  /** One attempt: a token from the bucket, the endpoints in order, the whole body read and parsed. */
  async #attempt<T>(spec: RequestSpec, callSignal: AbortSignal, callerSignal: AbortSignal | undefined, callDeadline: AbortSignal): Promise<KubeResult<T>> {
    try {
      await this.#bucket.take(callSignal);
    } catch {
      return this.#interrupted(spec, callerSignal, callDeadline, 'waiting for the rate limit');
    }
    const attemptDeadline = AbortSignal.timeout(this.#settings.attemptTimeoutMs);
    const signal = AbortSignal.any([callSignal, attemptDeadline]);
    const answer = await this.#send(spec, signal, false, callerSignal, attemptDeadline, callDeadline);
    if (!answer.ok) return answer;
    if (answer.value.status < 200 || answer.value.status >= 300) return this.#refusal(spec, answer.value);
    let text: string | undefined;
    try {
      text = await readLimited(answer.value.body, this.#settings.maxBodyBytes);
    } catch (err) {
      return this.#classify(spec, err, callerSignal, attemptDeadline, answer.value.endpoint, callDeadline);
    }
    if (text === undefined) return this.#failure(spec, 'too-large', `${describe(spec)}: the answer exceeds ${this.#settings.maxBodyBytes} bytes`);
    try {
      return { ok: true, value: (text === '' ? {} : JSON.parse(text)) as T };
    } catch {
      return this.#failure(spec, 'garbage', `${describe(spec)}: the answer is not JSON (${preview(text)})`, { status: answer.value.status });
    }
  }

  /** Sends to the preferred endpoint, moving on in order while connections fail; records reachability and the metric. */
  async #send(
    spec: RequestSpec,
    signal: AbortSignal,
    watch: boolean,
    callerSignal: AbortSignal | undefined,
    ...deadlines: AbortSignal[]
  ): Promise<KubeResult<Answer>> {
    const token = await this.#tokens.token();
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': this.#userAgent };
    if (token) headers.authorization = `Bearer ${token}`;
    let payload: string | undefined;
    if (spec.body !== undefined) {
      payload = JSON.stringify(spec.body);
      headers['content-type'] = spec.contentType ?? 'application/json';
    }
    const path = resourcePath(spec.resource, spec.ref) + queryString(spec.query);
    const metricResource = spec.ref.subresource ? `${spec.resource.plural}/${spec.ref.subresource}` : spec.resource.plural;
    const refusals: string[] = [];
    const first = this.#preferred;
    for (let i = 0; i < this.#targets.length; i++) {
      const index = (first + i) % this.#targets.length;
      const target = this.#targets[index]!;
      try {
        const response = await (watch ? target.watches : target.requests).request({ path, method: spec.method, headers, body: payload, signal });
        this.#reach.answered(target.url);
        this.#preferred = index;
        this.#count(spec.verb, metricResource, String(response.statusCode));
        return { ok: true, value: { status: response.statusCode, headers: response.headers, body: response.body, endpoint: target.url } };
      } catch (err) {
        const failure = this.#classify(spec, err, callerSignal, deadlines[0], target.url, deadlines[1]);
        this.#count(spec.verb, metricResource, failure.code);
        if (failure.code !== 'unreachable') return failure;
        const why = errorCode(err) ?? 'connect failed';
        this.#reach.connectFailed(target.url, why);
        refusals.push(`${target.url}: ${why}`);
      }
    }
    return this.#failure(spec, 'unreachable', `${describe(spec)}: no endpoint accepts connections (${refusals.join('; ')})`);
  }

  /** A non-2xx answer as a failure: the server's Status, Retry-After, and the RBAC hint for 401/403. */
  async #refusal(spec: RequestSpec, answer: Answer): Promise<KubeFailure> {
    const text = await readLimited(answer.body, 64 * 1024).catch(() => undefined);
    let details: Status | undefined;
    try {
      const parsed = text ? (JSON.parse(text) as Status) : undefined;
      if (parsed && typeof parsed === 'object') details = parsed;
    } catch {
      // not a Status: the status code says enough
    }
    const code = codeForStatus(answer.status);
    const retryAfterMs = parseRetryAfter(answer.headers['retry-after'], this.#clock.now());
    const message = details?.message ?? (text ? preview(text) : '');
    const extra: Partial<KubeFailure> = { status: answer.status, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}), ...(details ? { details } : {}) };
    let hint: string | undefined;
    const resource = rbacResourceName(spec.resource, spec.ref.subresource);
    if (code === 'forbidden') hint = rbacHint(spec.verb, resource);
    if (code === 'unauthorized') {
      hint = this.#tokens.bearer
        ? `the token is refused even after re-reading it${this.#tokens.lastError ? ` (${this.#tokens.lastError})` : ''}: is the service account deleted, or the token file stale? ${rbacHint(spec.verb, resource)}`
        : `the client certificate is refused, or no credentials are configured: check the kubeconfig user`;
    }
    return this.#failure(spec, code, `${describe(spec)}: HTTP ${answer.status}${message ? ` ${message}` : ''}`, extra, hint);
  }

  /** What a thrown error means; `deadline`/`callDeadline` tell a hang cut by our deadline from the caller's abort. */
  #classify(spec: RequestSpec, err: unknown, callerSignal: AbortSignal | undefined, deadline: AbortSignal | undefined, endpoint: string, callDeadline?: AbortSignal): KubeFailure {
    const code = errorCode(err);
    const where = `${describe(spec)} via ${endpoint}`;
    if (callerSignal?.aborted) return this.#failure(spec, 'aborted', `${where}: aborted`);
    if (deadline?.aborted || callDeadline?.aborted) return this.#failure(spec, 'timeout', `${where}: no whole answer before the deadline`);
    if (this.#closed || err instanceof undiciErrors.ClientDestroyedError || err instanceof undiciErrors.ClientClosedError) return this.#failure(spec, 'closed', `${where}: the client is closed`);
    if (err instanceof undiciErrors.ConnectTimeoutError || (code && CONNECT_FAILURE_CODES.has(code))) return this.#failure(spec, 'unreachable', `${where}: cannot connect (${code})`);
    if (code && (TLS_FAILURE_CODES.has(code) || /^ERR_(SSL|TLS)_|CERT/.test(code))) return this.#failure(spec, 'tls', `${where}: TLS refused (${code}: ${(err as Error).message})`);
    if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError) return this.#failure(spec, 'timeout', `${where}: ${(err as Error).message}`);
    return this.#failure(spec, 'reset', `${where}: the connection broke (${code ?? (err as Error).message ?? String(err)})`);
  }

  #interrupted(spec: RequestSpec, callerSignal: AbortSignal | undefined, deadline: AbortSignal, doing: string): KubeFailure {
    if (callerSignal?.aborted) return this.#failure(spec, 'aborted', `${describe(spec)}: aborted while ${doing}`);
    if (deadline.aborted) return this.#failure(spec, 'timeout', `${describe(spec)}: the deadline passed while ${doing}`);
    return this.#failure(spec, 'aborted', `${describe(spec)}: aborted while ${doing}`);
  }

  #garbage(verb: KubeVerb, resource: Resource<KubeObject>, what: string): KubeFailure {
    return { ok: false, code: 'garbage', reason: `${verb} ${rbacResourceName(resource)}: ${what}`, hint: KUBE_ERROR_CODES.garbage.hint };
  }

  #failure(spec: RequestSpec, code: KubeErrorCode, reason: string, extra: Partial<KubeFailure> = {}, hint?: string): KubeFailure {
    void spec;
    return { ok: false, code, reason, hint: hint ?? KUBE_ERROR_CODES[code].hint, ...extra };
  }
}

function objectRef(ref: { namespace?: string; name: string }): ObjectRef {
  return ref.namespace ? { namespace: ref.namespace, name: ref.name } : { name: ref.name };
}

function collectionRef(namespace: string | undefined): ObjectRef {
  return namespace ? { namespace } : {};
}

/** The object with apiVersion and kind filled in from its resource. */
function withKind<T extends KubeObject>(resource: Resource<T>, object: T): T {
  return { ...object, apiVersion: object.apiVersion ?? apiVersionOf(resource), kind: object.kind ?? resource.kind };
}

function describe(spec: RequestSpec): string {
  const target = spec.ref.name !== undefined ? `${spec.ref.namespace ? `${spec.ref.namespace}/` : ''}${spec.ref.name}` : spec.ref.namespace ? `in ${spec.ref.namespace}` : '';
  return `${spec.verb} ${rbacResourceName(spec.resource, spec.ref.subresource)}${target ? ` ${target}` : ''}`;
}

function queryString(query: RequestSpec['query']): string {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined && value !== '') params.set(key, String(value));
  const text = params.toString();
  return text ? `?${text}` : '';
}

function errorCode(err: unknown): string | undefined {
  const seen = new Set<unknown>();
  // undici wraps some socket errors (cause); the innermost code is the one that says what happened.
  for (let e: unknown = err; e && typeof e === 'object' && !seen.has(e); e = (e as { cause?: unknown }).cause) {
    seen.add(e);
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && !code.startsWith('UND_ERR_')) return code;
    if (typeof code === 'string' && code === 'UND_ERR_CONNECT_TIMEOUT') return code;
  }
  const top = (err as { code?: unknown } | undefined)?.code;
  return typeof top === 'string' ? top : undefined;
}

/** Reads a body up to a limit; undefined when over it (the rest is discarded). */
async function readLimited(body: Readable, limit: number): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      body.destroy();
      return undefined;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function preview(text: string): string {
  const start = text.slice(0, 120).replace(/\s+/g, ' ');
  return text.length > 120 ? `"${start}…"` : `"${start}"`;
}
