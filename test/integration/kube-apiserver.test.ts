// The test API server's semantics (issue 14), over real HTTPS with the server's own CA.

import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ownNode, serviceAccountUser } from '../../scripts/kube-apiserver/auth.js';
import { startKubeApiServer, type KubeApiServer } from '../../scripts/kube-apiserver/server.js';

type J = any; // eslint-disable-line @typescript-eslint/no-explicit-any

interface Reply { status: number; headers: Record<string, string | string[] | undefined>; body: J; text: string }

let server: KubeApiServer;
let agent: Agent;
let agentToken: string;

async function call(method: string, path: string, opts: { body?: unknown; token?: string | null; type?: string; accept?: string; signal?: AbortSignal } = {}): Promise<Reply> {
  const headers: Record<string, string> = { accept: opts.accept ?? 'application/json' };
  const token = opts.token === undefined ? server.tokens.admin : opts.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (opts.body !== undefined) headers['content-type'] = opts.type ?? 'application/json';
  const res = await request(`${server.url}${path}`, {
    method: method as 'GET', headers, dispatcher: agent, ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.body !== undefined ? { body: typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body) } : {}),
  });
  const text = await res.body.text();
  let body: J;
  try { body = JSON.parse(text); } catch { body = undefined; }
  return { status: res.statusCode, headers: res.headers, body, text };
}

const ready = (status: 'True' | 'False') => ({ type: 'Ready', status, reason: 'KubeletReady', message: 'kubelet is posting ready status', lastHeartbeatTime: '2025-01-01T00:00:00Z', lastTransitionTime: '2025-01-01T00:00:00Z' });

async function mkNode(name: string): Promise<J> {
  const r = await call('POST', '/api/v1/nodes', { body: { apiVersion: 'v1', kind: 'Node', metadata: { name }, spec: {}, status: { conditions: [ready('True')] } } });
  expect(r.status).toBe(201);
  return r.body;
}

/** Reads a watch stream line by line until `until` says stop or the server ends it. */
async function watch(path: string, until: (events: J[]) => boolean, timeoutMs = 5000): Promise<J[]> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  const events: J[] = [];
  try {
    const res = await request(`${server.url}${path}`, { headers: { authorization: `Bearer ${server.tokens.admin}` }, dispatcher: agent, signal: ac.signal });
    expect(res.statusCode).toBe(200);
    let buf = '';
    for await (const chunk of res.body) {
      buf += chunk.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        events.push(JSON.parse(buf.slice(0, i)));
        buf = buf.slice(i + 1);
      }
      if (until(events)) break;
    }
    ac.abort(); // the dropped connection
  } catch (e) {
    if ((e as Error).name !== 'AbortError') throw e;
  } finally {
    clearTimeout(timer);
  }
  return events;
}

beforeAll(async () => {
  agentToken = 'agent-node-a';
  server = await startKubeApiServer({
    version: '1.30',
    historySize: 1000,
    bookmarkIntervalMs: 100,
    tokens: { [agentToken]: serviceAccountUser('connwatch', 'agent', 'node-a') },
    rules: [
      // The agent reads and writes only its own Node (and its status), and lists nothing.
      { users: ['system:serviceaccount:connwatch:agent'], verbs: ['get', 'watch', 'list', 'patch', 'update'], resources: ['nodes', 'nodes/status'], when: ownNode },
    ],
  });
  agent = new Agent({ connect: { ca: server.caPem } });
});

afterAll(async () => {
  await agent?.close();
  await server?.close();
});

describe('kube test API server over HTTPS', () => {
  it('serves /version, discovery and OpenAPI v3 with verbs, short names and fieldValidation', async () => {
    expect((await call('GET', '/version')).body).toMatchObject({ major: '1', minor: '30', gitVersion: 'v1.30.0' });
    const core = (await call('GET', '/api/v1')).body;
    expect(core.kind).toBe('APIResourceList');
    expect(core.resources.find((r: J) => r.name === 'nodes')).toMatchObject({ namespaced: false, kind: 'Node', shortNames: ['no'], singularName: 'node', verbs: expect.arrayContaining(['patch', 'watch']) });
    expect(core.resources.find((r: J) => r.name === 'pods/eviction')).toMatchObject({ group: 'policy', version: 'v1', kind: 'Eviction', verbs: ['create'] });
    const groups = (await call('GET', '/apis')).body.groups.map((g: J) => g.name);
    expect(groups).toEqual(expect.arrayContaining(['coordination.k8s.io', 'events.k8s.io', 'policy', 'apiextensions.k8s.io']));
    const index = (await call('GET', '/openapi/v3')).body;
    const doc = (await call('GET', index.paths['api/v1'].serverRelativeURL)).body;
    const patch = doc.paths['/api/v1/nodes/{name}'].patch;
    expect(patch['x-kubernetes-group-version-kind']).toEqual({ group: '', version: 'v1', kind: 'Node' });
    expect(patch.parameters.map((p: J) => p.name)).toContain('fieldValidation');
  });

  it('answers 409 Conflict to a write with a stale resourceVersion, and moves resourceVersion on every write', async () => {
    const node = await mkNode('stale-1');
    const rv0 = Number(node.metadata.resourceVersion);
    const first = await call('PUT', '/api/v1/nodes/stale-1', { body: { ...node, metadata: { ...node.metadata, labels: { a: '1' } } } });
    expect(first.status).toBe(200);
    expect(Number(first.body.metadata.resourceVersion)).toBeGreaterThan(rv0);
    const stale = await call('PUT', '/api/v1/nodes/stale-1', { body: { ...node, metadata: { ...node.metadata, labels: { a: '2' } } } });
    expect(stale.status).toBe(409);
    expect(stale.body).toMatchObject({ kind: 'Status', status: 'Failure', reason: 'Conflict', code: 409, details: { name: 'stale-1', kind: 'nodes' } });
    expect(stale.body.message).toBe('Operation cannot be fulfilled on nodes "stale-1": the object has been modified; please apply your changes to the latest version and try again');
    const patched = await call('PATCH', '/api/v1/nodes/stale-1', { type: 'application/merge-patch+json', body: { metadata: { resourceVersion: node.metadata.resourceVersion, labels: { b: '1' } } } });
    expect(patched.status).toBe(409);
    // A no-op write is not a write.
    const same = await call('PATCH', '/api/v1/nodes/stale-1', { type: 'application/merge-patch+json', body: { metadata: { labels: { a: '1' } } } });
    expect(same.body.metadata.resourceVersion).toBe(first.body.metadata.resourceVersion);
    expect((await call('POST', '/api/v1/nodes', { body: { metadata: { name: 'stale-1' } } })).body).toMatchObject({ reason: 'AlreadyExists', code: 409 });
    expect((await call('GET', '/api/v1/nodes/nope')).body).toMatchObject({ reason: 'NotFound', code: 404, message: 'nodes "nope" not found' });
  });

  it('merges status.conditions by type with a strategic merge patch, and keeps status out of main-resource writes', async () => {
    await mkNode('smp-1');
    const cond = { type: 'PodNetworkUnavailable', status: 'True', reason: 'RulesMissing', message: 'networkd removed the CNI rules' };
    const r = await call('PATCH', '/api/v1/nodes/smp-1/status', { type: 'application/strategic-merge-patch+json', body: { status: { conditions: [cond] } } });
    expect(r.status).toBe(200);
    expect(r.body.status.conditions.map((c: J) => c.type)).toEqual(['Ready', 'PodNetworkUnavailable']);
    const flip = await call('PATCH', '/api/v1/nodes/smp-1/status', { type: 'application/strategic-merge-patch+json', body: { status: { conditions: [{ type: 'PodNetworkUnavailable', status: 'False' }] } } });
    expect(flip.body.status.conditions).toEqual([ready('True'), { ...cond, status: 'False' }]);
    // The same patch as a JSON merge patch replaces the list.
    const merge = await call('PATCH', '/api/v1/nodes/smp-1/status', { type: 'application/merge-patch+json', body: { status: { conditions: [cond] } } });
    expect(merge.body.status.conditions).toEqual([cond]);
    // $patch: delete removes one condition by key.
    const del = await call('PATCH', '/api/v1/nodes/smp-1/status', { type: 'application/strategic-merge-patch+json', body: { status: { conditions: [{ type: 'PodNetworkUnavailable', $patch: 'delete' }] } } });
    expect(del.body.status.conditions).toEqual([]);
    // Writing status through the main resource changes nothing there; /status ignores labels.
    const main = await call('PATCH', '/api/v1/nodes/smp-1', { type: 'application/strategic-merge-patch+json', body: { metadata: { labels: { x: 'y' } }, status: { conditions: [cond] } } });
    expect(main.body.status.conditions).toEqual([]);
    expect(main.body.metadata.labels).toEqual({ x: 'y' });
    const st = await call('PATCH', '/api/v1/nodes/smp-1/status', { type: 'application/merge-patch+json', body: { metadata: { labels: { x: 'z' } } } });
    expect(st.body.metadata.labels).toEqual({ x: 'y' });
    // Server-side apply is not implemented: answered as a server that does not accept the type.
    const apply = await call('PATCH', '/api/v1/nodes/smp-1', { type: 'application/apply-patch+yaml', body: 'metadata: {}' });
    expect(apply.status).toBe(415);
  });

  it('replaces spec.taints as a whole list, so writers keep others\' taints by read-modify-write with a retry on 409', async () => {
    await mkNode('taint-1');
    const other = { key: 'operator.example/maintenance', effect: 'NoSchedule' };
    const ours = { key: 'connwatch.io/pod-network-unavailable', value: 'true', effect: 'NoSchedule' };
    await call('PATCH', '/api/v1/nodes/taint-1', { type: 'application/strategic-merge-patch+json', body: { spec: { taints: [other] } } });
    // A patch naming only our taint would drop the operator's (no merge key on taints).
    const blind = await call('PATCH', '/api/v1/nodes/taint-1', { type: 'application/strategic-merge-patch+json', body: { spec: { taints: [ours] }, metadata: { resourceVersion: '1' } } });
    expect(blind.status).toBe(409);
    const read = (await call('GET', '/api/v1/nodes/taint-1')).body;
    // Someone else writes in between: our PUT of the read copy conflicts, the re-read one succeeds.
    await call('PATCH', '/api/v1/nodes/taint-1', { type: 'application/merge-patch+json', body: { metadata: { annotations: { touched: 'yes' } } } });
    const put1 = await call('PUT', '/api/v1/nodes/taint-1', { body: { ...read, spec: { ...read.spec, taints: [...read.spec.taints, ours] } } });
    expect(put1.status).toBe(409);
    const again = (await call('GET', '/api/v1/nodes/taint-1')).body;
    const put2 = await call('PUT', '/api/v1/nodes/taint-1', { body: { ...again, spec: { ...again.spec, taints: [...again.spec.taints, ours] } } });
    expect(put2.status).toBe(200);
    expect(put2.body.spec.taints).toEqual([other, ours]);
    expect(put2.body.metadata.annotations).toEqual({ touched: 'yes' });
    const bad = await call('PATCH', '/api/v1/nodes/taint-1', { type: 'application/merge-patch+json', body: { spec: { taints: [{ key: 'k', effect: 'Sometimes' }] } } });
    expect(bad.status).toBe(422);
    expect(bad.body.details.causes[0]).toMatchObject({ field: 'spec.taints[0].effect', reason: 'FieldValueNotSupported' });
  });

  it('resumes a watch from its last resourceVersion after a dropped connection, and re-lists after 410 Gone', async () => {
    const list = (await call('GET', '/api/v1/namespaces/default/configmaps?labelSelector=w%3D1')).body;
    const rv0 = list.metadata.resourceVersion;
    const mk = (name: string) => call('POST', '/api/v1/namespaces/default/configmaps', { body: { metadata: { name, labels: { w: '1' } }, data: { a: name } } });
    await mk('w-1');
    const first = await watch(`/api/v1/namespaces/default/configmaps?watch=true&labelSelector=w%3D1&resourceVersion=${rv0}&allowWatchBookmarks=true`, (ev) => ev.some((e) => e.type === 'ADDED'));
    const seen = first.filter((e) => e.type !== 'BOOKMARK');
    expect(seen.map((e) => [e.type, e.object.metadata.name])).toEqual([['ADDED', 'w-1']]);
    expect(seen[0].object.kind).toBe('ConfigMap');
    const lastRv = seen[0].object.metadata.resourceVersion;
    // While disconnected: one update, one new, one delete.
    await call('PATCH', '/api/v1/namespaces/default/configmaps/w-1', { type: 'application/merge-patch+json', body: { data: { a: 'changed' } } });
    await mk('w-2');
    await call('DELETE', '/api/v1/namespaces/default/configmaps/w-1');
    const resumed = await watch(`/api/v1/namespaces/default/configmaps?watch=true&labelSelector=w%3D1&resourceVersion=${lastRv}&allowWatchBookmarks=true`, (ev) => ev.some((e) => e.type === 'BOOKMARK'));
    expect(resumed.filter((e) => e.type !== 'BOOKMARK').map((e) => [e.type, e.object.metadata.name])).toEqual([['MODIFIED', 'w-1'], ['ADDED', 'w-2'], ['DELETED', 'w-1']]);
    const bookmark = resumed.find((e) => e.type === 'BOOKMARK');
    expect(bookmark.object).toMatchObject({ kind: 'ConfigMap', apiVersion: 'v1', metadata: { resourceVersion: String(server.store.rv) } });
    // The window moves on: the old resourceVersion is gone.
    server.store.compact();
    const gone = await watch(`/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=${lastRv}`, () => false);
    expect(gone).toHaveLength(1);
    expect(gone[0]).toMatchObject({ type: 'ERROR', object: { kind: 'Status', status: 'Failure', reason: 'Expired', code: 410 } });
    expect(gone[0].object.message).toMatch(/^too old resource version: \d+ \(\d+\)$/);
    // Re-list, then watch from the list's resourceVersion.
    const relist = (await call('GET', '/api/v1/namespaces/default/configmaps?labelSelector=w%3D1')).body;
    expect(relist.items.map((i: J) => i.metadata.name)).toEqual(['w-2']);
    expect(relist.items[0].kind).toBeUndefined(); // typed lists carry no kind on items
    setTimeout(() => void mk('w-3'), 50);
    const after = await watch(`/api/v1/namespaces/default/configmaps?watch=true&labelSelector=w%3D1&resourceVersion=${relist.metadata.resourceVersion}`, (ev) => ev.length >= 1);
    expect(after.map((e) => [e.type, e.object.metadata.name])).toEqual([['ADDED', 'w-3']]);
    // Without a resourceVersion the watch starts with the current state; timeoutSeconds ends it.
    const t0 = Date.now();
    const initial = await watch('/api/v1/namespaces/default/configmaps?watch=true&labelSelector=w%3D1&timeoutSeconds=1', () => false);
    expect(initial.map((e) => [e.type, e.object.metadata.name])).toEqual([['ADDED', 'w-2'], ['ADDED', 'w-3']]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
  });

  it('refuses an eviction a PodDisruptionBudget forbids with 429, and evicts when the budget allows', async () => {
    await call('POST', '/api/v1/namespaces', { body: { metadata: { name: 'evict' } } });
    const mkPod = async (name: string) => {
      await call('POST', '/api/v1/namespaces/evict/pods', { body: { metadata: { name, labels: { app: 'web' } }, spec: { nodeName: 'node-a', containers: [{ name: 'c', image: 'x' }] } } });
      const r = await call('PUT', `/api/v1/namespaces/evict/pods/${name}/status`, { body: { metadata: { name }, status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] } } });
      expect(r.status).toBe(200);
    };
    await mkPod('web-1');
    await mkPod('web-2');
    const pdb = await call('POST', '/apis/policy/v1/namespaces/evict/poddisruptionbudgets', { body: { metadata: { name: 'web' }, spec: { minAvailable: 2, selector: { matchLabels: { app: 'web' } } } } });
    expect(pdb.body.status).toMatchObject({ disruptionsAllowed: 0, currentHealthy: 2, desiredHealthy: 2, expectedPods: 2, observedGeneration: 1 });
    const eviction = (name: string) => ({ apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name, namespace: 'evict' } });
    const refused = await call('POST', '/api/v1/namespaces/evict/pods/web-1/eviction', { body: eviction('web-1') });
    expect(refused.status).toBe(429);
    expect(refused.body).toMatchObject({ reason: 'TooManyRequests', message: "Cannot evict pod as it would violate the pod's disruption budget.", details: { causes: [{ reason: 'DisruptionBudget', message: 'The disruption budget web needs 2 healthy pods and has 2 currently' }] } });
    expect((await call('GET', '/api/v1/namespaces/evict/pods/web-1')).status).toBe(200);
    await mkPod('web-3');
    const pdb3 = (await call('GET', '/apis/policy/v1/namespaces/evict/poddisruptionbudgets/web')).body;
    expect(pdb3.status).toMatchObject({ disruptionsAllowed: 1, currentHealthy: 3 });
    const ok = await call('POST', '/api/v1/namespaces/evict/pods/web-1/eviction', { body: eviction('web-1') });
    expect(ok.status).toBe(201);
    expect(ok.body).toMatchObject({ kind: 'Status', status: 'Success' });
    expect((await call('GET', '/api/v1/namespaces/evict/pods/web-1')).status).toBe(404);
    // maxUnavailable as a percentage rounds up: 50% of 2 pods → 1 unavailable → 1 desired healthy.
    const pct = await call('PUT', '/apis/policy/v1/namespaces/evict/poddisruptionbudgets/web', { body: { ...pdb3, metadata: { ...pdb3.metadata, resourceVersion: undefined }, spec: { maxUnavailable: '50%', selector: pdb3.spec.selector } } });
    expect(pct.body.metadata.generation).toBe(2);
    expect(pct.body.status).toMatchObject({ desiredHealthy: 1, currentHealthy: 2, disruptionsAllowed: 1, expectedPods: 2, observedGeneration: 2 });
  });

  it('answers 401 without a known token and 403, worded as the real server, for another node\'s object', async () => {
    const none = await call('GET', '/api/v1/nodes', { token: null });
    expect(none.status).toBe(401);
    expect(none.body).toEqual({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
    expect((await call('GET', '/api/v1/nodes', { token: 'not-a-token' })).status).toBe(401);
    await mkNode('node-a');
    await mkNode('node-b');
    const own = await call('PATCH', '/api/v1/nodes/node-a/status', { token: agentToken, type: 'application/strategic-merge-patch+json', body: { status: { conditions: [{ type: 'PodNetworkUnavailable', status: 'False' }] } } });
    expect(own.status).toBe(200);
    const other = await call('PATCH', '/api/v1/nodes/node-b/status', { token: agentToken, type: 'application/strategic-merge-patch+json', body: { status: { conditions: [{ type: 'PodNetworkUnavailable', status: 'True' }] } } });
    expect(other.status).toBe(403);
    expect(other.body).toMatchObject({ kind: 'Status', reason: 'Forbidden', code: 403, details: { name: 'node-b', kind: 'nodes' } });
    expect(other.body.message).toBe('nodes "node-b" is forbidden: User "system:serviceaccount:connwatch:agent" cannot patch resource "nodes/status" in API group "" at the cluster scope');
    const list = await call('GET', '/api/v1/nodes', { token: agentToken });
    expect(list.body.message).toBe('nodes is forbidden: User "system:serviceaccount:connwatch:agent" cannot list resource "nodes" in API group "" at the cluster scope');
    // A list pinned to its own name by metadata.name is allowed, as the real request-info does.
    const pinned = await call('GET', '/api/v1/nodes?fieldSelector=metadata.name%3Dnode-a', { token: agentToken });
    expect(pinned.status).toBe(200);
    expect(pinned.body.items.map((n: J) => n.metadata.name)).toEqual(['node-a']);
    const cm = await call('GET', '/api/v1/namespaces/default/configmaps', { token: agentToken });
    expect(cm.body.message).toBe('configmaps is forbidden: User "system:serviceaccount:connwatch:agent" cannot list resource "configmaps" in API group "" in the namespace "default"');
  });

  it('injects faults per route, switchable while running: 429 with Retry-After, 500, reset, hang, latency', async () => {
    const f429 = server.faults.add({ method: 'GET', path: '/api/v1/namespaces/*/configmaps', kind: 'throttle', retryAfterSeconds: 3 });
    const t = await call('GET', '/api/v1/namespaces/default/configmaps');
    expect(t.status).toBe(429);
    expect(t.headers['retry-after']).toBe('3');
    expect(t.body).toMatchObject({ kind: 'Status', reason: 'TooManyRequests', code: 429, details: { retryAfterSeconds: 3 } });
    expect((await call('GET', '/api/v1/nodes')).status).toBe(200); // other routes untouched
    server.faults.remove(f429);
    expect((await call('GET', '/api/v1/namespaces/default/configmaps')).status).toBe(200);

    server.faults.add({ path: '/api/v1/nodes/**', kind: 'error', times: 1 });
    const e = await call('GET', '/api/v1/nodes/node-a');
    expect(e.status).toBe(500);
    expect(e.body).toMatchObject({ reason: 'InternalError', code: 500 });
    expect((await call('GET', '/api/v1/nodes/node-a')).status).toBe(200); // times: 1

    server.faults.add({ path: '/api/v1/nodes/node-a', kind: 'reset', times: 1 });
    await expect(call('GET', '/api/v1/nodes/node-a')).rejects.toMatchObject({ code: expect.stringMatching(/ECONNRESET|UND_ERR_SOCKET/) });

    const hang = server.faults.add({ path: '/api/v1/nodes/node-a', kind: 'hang' });
    const t0 = Date.now();
    await expect(call('GET', '/api/v1/nodes/node-a', { signal: AbortSignal.timeout(300) })).rejects.toMatchObject({ name: expect.stringMatching(/AbortError|TimeoutError/) });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(280);
    server.faults.remove(hang);

    // The admin endpoint: only the admin token, from any process.
    const denied = await call('POST', '/_faults', { token: agentToken, body: { path: '/api', kind: 'error' } });
    expect(denied.status).toBe(403);
    const added = await call('POST', '/_faults', { body: { method: 'GET', path: 'apis/coordination.k8s.io/**'.replace(/^/, '/'), kind: 'latency', delayMs: 200 } });
    expect(added.status).toBe(201);
    const t1 = Date.now();
    expect((await call('GET', '/apis/coordination.k8s.io/v1/leases')).status).toBe(200);
    expect(Date.now() - t1).toBeGreaterThanOrEqual(190);
    expect((await call('GET', '/_faults')).body.faults).toHaveLength(1);
    await call('DELETE', `/_faults/${added.body.id}`);
    expect(server.faults.list()).toEqual([]);
  });

  it('pages lists with limit/continue from one consistent snapshot, with remainingItemCount only when unfiltered', async () => {
    await call('POST', '/api/v1/namespaces', { body: { metadata: { name: 'paging' } } });
    for (let i = 0; i < 25; i++) {
      await call('POST', '/api/v1/namespaces/paging/configmaps', { body: { metadata: { name: `cm-${String(i).padStart(2, '0')}`, labels: { even: String(i % 2 === 0) } } } });
    }
    const p1 = (await call('GET', '/api/v1/namespaces/paging/configmaps?limit=10')).body;
    expect(p1.items).toHaveLength(10);
    expect(p1.metadata).toMatchObject({ remainingItemCount: 15, continue: expect.any(String) });
    // A write between pages does not show: the pages come from the first page's resourceVersion.
    await call('POST', '/api/v1/namespaces/paging/configmaps', { body: { metadata: { name: 'cm-00a' } } });
    const p2 = (await call('GET', `/api/v1/namespaces/paging/configmaps?limit=10&continue=${encodeURIComponent(p1.metadata.continue)}`)).body;
    expect(p2.items.map((i: J) => i.metadata.name)[0]).toBe('cm-10');
    expect(p2.metadata.remainingItemCount).toBe(5);
    expect(p2.metadata.resourceVersion).toBe(p1.metadata.resourceVersion);
    const p3 = (await call('GET', `/api/v1/namespaces/paging/configmaps?limit=10&continue=${encodeURIComponent(p2.metadata.continue)}`)).body;
    expect(p3.items).toHaveLength(5);
    expect(p3.metadata.continue).toBeUndefined();
    expect(p3.metadata.remainingItemCount).toBeUndefined();
    const sel = (await call('GET', '/api/v1/namespaces/paging/configmaps?limit=5&labelSelector=even%3Dtrue')).body;
    expect(sel.items.every((i: J) => i.metadata.labels.even === 'true')).toBe(true);
    expect(sel.metadata.continue).toEqual(expect.any(String));
    expect(sel.metadata.remainingItemCount).toBeUndefined();
    server.store.compact();
    const expired = await call('GET', `/api/v1/namespaces/paging/configmaps?limit=10&continue=${encodeURIComponent(p1.metadata.continue)}`);
    expect(expired.status).toBe(410);
    expect(expired.body).toMatchObject({ reason: 'Expired', code: 410, metadata: { continue: expect.any(String) } });
    // Selectors as the real parser reads them; unknown field labels are a 400.
    const q = async (s: string) => (await call('GET', `/api/v1/namespaces/paging/configmaps?labelSelector=${encodeURIComponent(s)}`)).body.items.length;
    expect(await q('even in (true)')).toBe(13);
    expect(await q('even notin (true)')).toBe(13); // 12 odd + cm-00a without the label
    expect(await q('!even')).toBe(1);
    expect(await q('even,even!=false')).toBe(13);
    const bad = await call('GET', '/api/v1/namespaces/paging/configmaps?fieldSelector=data.x%3D1');
    expect(bad.status).toBe(400);
    expect(bad.body.message).toBe('field label not supported: data.x');
  });

  it('serves a CRD at once, validates its objects against openAPIV3Schema (422) and keeps spec and status apart', async () => {
    const crd = {
      apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: 'widgets.example.com' },
      spec: {
        group: 'example.com', scope: 'Namespaced', names: { plural: 'widgets', singular: 'widget', kind: 'Widget', shortNames: ['wd'] },
        versions: [{ name: 'v1', served: true, storage: true, subresources: { status: {} }, schema: { openAPIV3Schema: { type: 'object', properties: {
          spec: { type: 'object', required: ['size'], properties: { size: { type: 'integer', minimum: 1 }, mode: { type: 'string', enum: ['a', 'b'] } } },
          status: { type: 'object', properties: { phase: { type: 'string' } } },
        } } } }],
      },
    };
    const made = await call('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', { body: crd });
    expect(made.status).toBe(201);
    expect(made.body.status.conditions.find((c: J) => c.type === 'Established').status).toBe('True');
    const res = (await call('GET', '/apis/example.com/v1')).body.resources;
    expect(res.map((r: J) => r.name)).toEqual(['widgets', 'widgets/status']);
    const base = '/apis/example.com/v1/namespaces/default/widgets';
    const bad = await call('POST', base, { body: { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' }, spec: { size: 'big', mode: 'c' } } });
    expect(bad.status).toBe(422);
    expect(bad.body).toMatchObject({ reason: 'Invalid', details: { name: 'w', group: 'example.com', kind: 'Widget' } });
    expect(bad.body.details.causes).toEqual(expect.arrayContaining([
      { reason: 'FieldValueTypeInvalid', message: 'Invalid value: "string": spec.size in body must be of type integer: "big"', field: 'spec.size' },
      { reason: 'FieldValueNotSupported', message: 'Unsupported value: "c": supported values: "a", "b"', field: 'spec.mode' },
    ]));
    const missing = await call('POST', base, { body: { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' }, spec: {} } });
    expect(missing.body.message).toBe('Widget.example.com "w" is invalid: spec.size: Required value');
    const strict = await call('POST', `${base}?fieldValidation=Strict`, { body: { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' }, spec: { size: 1, extra: true } } });
    expect(strict.status).toBe(400);
    expect(strict.body.message).toContain('strict decoding error: unknown field "spec.extra"');
    const warn = await call('POST', base, { body: { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' }, spec: { size: 1, extra: true }, status: { phase: 'Set' } } });
    expect(warn.status).toBe(201);
    expect(warn.headers.warning).toBe('299 - "unknown field \\"spec.extra\\""');
    expect(warn.body.spec).toEqual({ size: 1 }); // pruned
    expect(warn.body.status).toBeUndefined(); // status comes only through /status
    expect(warn.body.metadata.generation).toBe(1);
    const st = await call('PATCH', `${base}/w/status`, { type: 'application/merge-patch+json', body: { spec: { size: 9 }, status: { phase: 'Ready' } } });
    expect(st.body).toMatchObject({ spec: { size: 1 }, status: { phase: 'Ready' }, metadata: { generation: 1 } });
    const sp = await call('PATCH', `${base}/w`, { type: 'application/merge-patch+json', body: { spec: { size: 2 }, status: { phase: 'Ignored' } } });
    expect(sp.body).toMatchObject({ spec: { size: 2 }, status: { phase: 'Ready' }, metadata: { generation: 2 } });
    expect((await call('PATCH', `${base}/w`, { type: 'application/strategic-merge-patch+json', body: { spec: { size: 3 } } })).status).toBe(415);
    const list = (await call('GET', base)).body;
    expect(list).toMatchObject({ kind: 'WidgetList', apiVersion: 'example.com/v1' });
    expect(list.items[0]).toMatchObject({ kind: 'Widget', apiVersion: 'example.com/v1' });
    // Deleting the CRD takes its objects and its group with it.
    await call('DELETE', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com');
    expect((await call('GET', '/apis/example.com/v1')).status).toBe(404);
  });

  it('serves core and events.k8s.io Events from one storage, selectable by involvedObject fields', async () => {
    const ev = await call('POST', '/apis/events.k8s.io/v1/namespaces/default/events', { body: {
      metadata: { name: 'e1' }, eventTime: '2025-01-01T00:00:00.000000Z', reportingController: 'connwatch.io/agent', reportingInstance: 'node-a', action: 'Restore',
      reason: 'RulesRestored', regarding: { kind: 'Node', name: 'node-a', uid: 'node-a' }, note: 'put back 3 rules', type: 'Normal',
    } });
    expect(ev.status).toBe(201);
    const core = (await call('GET', '/api/v1/events?fieldSelector=involvedObject.kind%3DNode%2CinvolvedObject.name%3Dnode-a')).body;
    expect(core.items).toHaveLength(1);
    expect(core.items[0]).toMatchObject({ reason: 'RulesRestored', message: 'put back 3 rules', reportingComponent: 'connwatch.io/agent', involvedObject: { name: 'node-a' } });
    expect((await call('GET', '/api/v1/events?fieldSelector=involvedObject.name%3Dnode-b')).body.items).toHaveLength(0);
    // events.k8s.io/v1 names the same fields regarding.* (its field-label conversion).
    const v1 = (await call('GET', '/apis/events.k8s.io/v1/namespaces/default/events?fieldSelector=regarding.name%3Dnode-a%2CreportingController%3Dconnwatch.io%2Fagent')).body;
    expect(v1.items.map((e: J) => [e.note, e.regarding.name])).toEqual([['put back 3 rules', 'node-a']]);
  });
});
