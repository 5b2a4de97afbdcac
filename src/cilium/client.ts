/**
 * A client for the Cilium agent's local API over its unix socket: health and the endpoint list.
 * Every outside trouble — no socket, refusal, hang, reset, truncation, garbage, a shape Cilium
 * does not publish — resolves `{ ok: false, code, reason, hint }`; it throws only for bugs.
 */
import { stat } from 'node:fs/promises';
import { Client, errors } from 'undici';
import type { z } from 'zod';
import type { CiliumConfig } from './config.js';
import type { CiliumApi, CiliumComponentState, CiliumEndpoint, CiliumErrorCode, CiliumHealth, CiliumHealthStatus, CiliumNodeList, CiliumResult } from '../types.js';
import { clusterNodeStatus, endpointList, healthStatusResponse, statusResponse } from './schema.js';

export type { CiliumApi, CiliumEndpoint, CiliumErrorCode, CiliumHealth, CiliumResult };

/** A controller failing this many times in a row makes the agent unhealthy (one failure is routine: controllers retry). */
export const FAILING_CONTROLLER_RUN = 5;

/** Cilium's own liveness probe asks so: the agent's health must not depend on reaching the API server. */
const LIVENESS_HEADERS = { 'require-k8s-connectivity': 'false' };

/**
 * Endpoint states in which the CNI is done with the pod. Any other state — a known one, or one a
 * newer Cilium added — counts as served: dropping a pod's items from the baseline is what needs
 * evidence, so an unknown state must never be read as "gone".
 */
const GONE_ENDPOINT_STATES: ReadonlySet<string> = new Set(['disconnecting', 'disconnected', 'invalid']);

/** The pod addresses of endpoints the CNI still serves (not disconnecting, disconnected or invalid). */
export function liveEndpointAddresses(endpoints: readonly CiliumEndpoint[]): Set<string> {
  const addresses = new Set<string>();
  for (const entry of endpoints) {
    if (GONE_ENDPOINT_STATES.has(entry.state)) continue;
    for (const address of [...entry.ipv4, ...entry.ipv6]) addresses.add(address.toLowerCase());
  }
  return addresses;
}

type ClientOptions = Pick<CiliumConfig, 'socketPath' | 'connectTimeoutMs' | 'headersTimeoutMs' | 'bodyTimeoutMs' | 'requestTimeoutMs' | 'maxBodyBytes'>;

/** The client over undici on the agent's unix socket. */
export class CiliumClient implements CiliumApi {
  readonly #options: ClientOptions;
  readonly #client: Client;
  #closed = false;

  constructor(options: ClientOptions) {
    this.#options = options;
    this.#client = new Client('http://localhost', {
      socketPath: options.socketPath,
      connect: { timeout: options.connectTimeoutMs },
      headersTimeout: options.headersTimeoutMs,
      bodyTimeout: options.bodyTimeoutMs,
      keepAliveTimeout: 2_000,
      pipelining: 1,
    });
  }

  async healthz(signal?: AbortSignal): Promise<CiliumResult<CiliumHealth>> {
    const response = await this.#getJson('/v1/healthz', statusResponse, signal, LIVENESS_HEADERS);
    if (!response.ok) return response;
    const body = response.value;
    const state = body.cilium?.state;
    if (state === undefined) {
      return this.#fail('shape', 'GET /v1/healthz: the answer has no cilium.state', 'is this a Cilium agent socket? check cilium.socketPath');
    }
    const components: Record<string, CiliumComponentState | undefined> = {
      kvstore: body.kvstore?.state,
      containerRuntime: body['container-runtime']?.state,
      kubernetes: body.kubernetes?.state,
      ciliumHealth: body.cluster?.ciliumHealth?.state,
    };
    const nodeCidrs = (body.cluster?.nodes ?? []).flatMap((node) => {
      const address = node['primary-address'];
      return [address?.ipv4?.['alloc-range'], address?.ipv6?.['alloc-range']].filter((cidr): cidr is string => Boolean(cidr));
    });
    const failingControllers = (body.controllers ?? [])
      .filter((c) => (c.status?.['consecutive-failure-count'] ?? 0) >= FAILING_CONTROLLER_RUN)
      .map((c) => `${c.name ?? '(unnamed)'}: ${c.status?.['last-failure-msg'] ?? 'failing'}`);
    const health: CiliumHealth = { healthy: state === 'Ok' && failingControllers.length === 0, state, components, nodeCidrs, failingControllers };
    if (body.cilium?.msg) health.msg = body.cilium.msg;
    return { ok: true, value: health };
  }

  async endpoints(signal?: AbortSignal): Promise<CiliumResult<CiliumEndpoint[]>> {
    const response = await this.#getJson('/v1/endpoint', endpointList, signal);
    if (!response.ok) return response;
    return {
      ok: true,
      value: response.value.map((entry) => {
        const addressing = entry.status.networking?.addressing ?? [];
        const ids = entry.status['external-identifiers'];
        const pod = ids?.['k8s-pod-name'] ? `${ids['k8s-namespace'] ?? ''}/${ids['k8s-pod-name']}` : ids?.['pod-name'];
        const result: CiliumEndpoint = {
          id: entry.id,
          state: entry.status.state,
          ipv4: addressing.flatMap((pair) => (pair.ipv4 ? [pair.ipv4] : [])),
          ipv6: addressing.flatMap((pair) => (pair.ipv6 ? [pair.ipv6] : [])),
        };
        if (pod) result.pod = pod;
        return result;
      }),
    };
  }

  async clusterNodes(signal?: AbortSignal): Promise<CiliumResult<CiliumNodeList>> {
    const response = await this.#getJson('/v1/cluster/nodes', clusterNodeStatus, signal);
    if (!response.ok) return response;
    const body = response.value;
    const nodes = (body['nodes-added'] ?? []).flatMap((node) => {
      if (!node.name) return [];
      const health = node['health-endpoint-address'];
      const addresses = [health?.ipv4, health?.ipv6].flatMap((a) => (a?.ip && a.enabled !== false ? [a.ip] : []));
      return [{ name: node.name, health: addresses }];
    });
    return { ok: true, value: { self: body.self ?? '', nodes } };
  }

  /** cilium-health's view (call it on a client made for the health socket). */
  async healthStatus(signal?: AbortSignal): Promise<CiliumResult<CiliumHealthStatus>> {
    const response = await this.#getJson('/v1beta/status', healthStatusResponse, signal);
    if (!response.ok) return response;
    const nodes = response.value.nodes ?? [];
    const failed = (s?: { status?: string | undefined }): boolean => Boolean(s?.status);
    const failing = nodes
      .filter((n) => {
        const host = n.host?.['primary-address'];
        const ep = n['health-endpoint'];
        const epPath = ep?.['primary-address'] ?? ep;
        return failed(host?.icmp) || failed(host?.http) || failed(epPath?.icmp) || failed(epPath?.http);
      })
      .map((n) => n.name ?? '(unnamed)');
    return { ok: true, value: { local: response.value.local?.name ?? '', nodes: nodes.length, failing } };
  }

  async socketInstance(): Promise<string | undefined> {
    try {
      const info = await stat(this.#options.socketPath, { bigint: true });
      return `${info.dev}:${info.ino}:${info.ctimeNs}`;
    } catch {
      return undefined;
    }
  }

  /** Closes the connection; in-flight calls resolve as failures. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#client.destroy().catch(() => undefined);
  }

  async #getJson<S extends z.ZodType>(path: string, schema: S, signal?: AbortSignal, headers?: Record<string, string>): Promise<CiliumResult<z.infer<S>>> {
    const text = await this.#get(path, signal, headers);
    if (!text.ok) return text;
    let json: unknown;
    try {
      json = JSON.parse(text.value);
    } catch {
      return this.#fail('garbage', `GET ${path}: the answer is not JSON (${describeStart(text.value)})`, 'is this a Cilium agent socket? check cilium.socketPath');
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue ? `${issue.path.join('.') || '(top)'}: ${issue.message}` : 'invalid';
      return this.#fail('shape', `GET ${path}: not Cilium's published shape (${where})`, 'a Cilium version connwatch does not know? report it with the cilium version');
    }
    return { ok: true, value: parsed.data };
  }

  async #get(path: string, callerSignal?: AbortSignal, headers?: Record<string, string>): Promise<CiliumResult<string>> {
    if (this.#closed) return this.#fail('closed', `GET ${path}: the client is closed`, 'the agent is stopping');
    const deadline = AbortSignal.timeout(this.#options.requestTimeoutMs);
    const signal = callerSignal ? AbortSignal.any([deadline, callerSignal]) : deadline;
    try {
      const response = await this.#client.request({ path, method: 'GET', signal, headers: { accept: 'application/json', ...headers } });
      const body = await readLimited(response.body, this.#options.maxBodyBytes);
      if (body === undefined) {
        return this.#fail('too-large', `GET ${path}: the answer exceeds ${this.#options.maxBodyBytes} bytes`, 'raise cilium.maxBodyBytes if the node really has that many endpoints');
      }
      if (response.statusCode !== 200) {
        return this.#fail('http-status', `GET ${path}: HTTP ${response.statusCode} ${describeStart(body)}`, 'cilium-agent answered but is not ready; see `cilium status`');
      }
      return { ok: true, value: body };
    } catch (err) {
      return this.#classify(path, err, deadline, callerSignal);
    }
  }

  #classify(path: string, err: unknown, deadline: AbortSignal, callerSignal?: AbortSignal): CiliumResult<never> {
    const code = (err as { code?: string }).code;
    const socket = this.#options.socketPath;
    const unreachableHint = `is cilium-agent running? socket ${socket}`;
    if (callerSignal?.aborted) return this.#fail('aborted', `GET ${path}: aborted`, 'the agent is stopping');
    if (deadline.aborted) return this.#fail('timeout', `GET ${path}: no complete answer within ${this.#options.requestTimeoutMs} ms`, `${unreachableHint} (it may be hung)`);
    if (err instanceof errors.HeadersTimeoutError || err instanceof errors.BodyTimeoutError || err instanceof errors.ConnectTimeoutError) {
      return this.#fail('timeout', `GET ${path}: ${(err as Error).message}`, `${unreachableHint} (it may be hung)`);
    }
    if (code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'EACCES' || code === 'ENOTSOCK') {
      return this.#fail('unreachable', `GET ${path}: cannot connect (${code})`, unreachableHint);
    }
    if (err instanceof errors.ResponseContentLengthMismatchError || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH') {
      return this.#fail('truncated', `GET ${path}: the answer was cut short`, `${unreachableHint} (did it restart mid-answer?)`);
    }
    if (err instanceof errors.SocketError || code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET') {
      return this.#fail('reset', `GET ${path}: the connection broke (${(err as Error).message})`, `${unreachableHint} (did it restart?)`);
    }
    if (err instanceof errors.ClientDestroyedError || err instanceof errors.ClientClosedError) {
      return this.#fail('closed', `GET ${path}: the client is closed`, 'the agent is stopping');
    }
    return this.#fail('garbage', `GET ${path}: ${(err as Error).message ?? String(err)}`, unreachableHint);
  }

  #fail(code: CiliumErrorCode, reason: string, hint: string): { ok: false; code: CiliumErrorCode; reason: string; hint: string } {
    return { ok: false, code, reason, hint };
  }
}

/** Reads a body up to a limit; undefined when over it (the rest is discarded). */
async function readLimited(body: AsyncIterable<Buffer> & { destroy?: (err?: Error) => unknown }, limit: number): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > limit) {
      body.destroy?.();
      return undefined;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function describeStart(text: string): string {
  const start = text.slice(0, 60).replace(/\s+/g, ' ');
  return text.length > 60 ? `"${start}…"` : `"${start}"`;
}
