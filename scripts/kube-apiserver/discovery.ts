// Discovery (/version, /api, /apis, group and group-version documents) and OpenAPI v3 (the index
// and one document per group version, with the PATCH operations' fieldValidation parameter that
// kubectl's field-validation probe looks for). Plain JSON only: a client asking for aggregated
// discovery (apidiscovery.k8s.io) gets the legacy documents, with their content type, and falls back.

import { createHash } from 'node:crypto';
import { apiVersionOf, type ResourceDef } from './resources.js';
import type { Registry } from './registry.js';
import type { Schema } from './schema.js';

/** version.Info for a reported Kubernetes version such as `1.30` or `v1.31.4`. */
export function versionInfo(version: string): Record<string, string> {
  const m = version.replace(/^v/, '').match(/^(\d+)\.(\d+)(?:\.(\d+))?(.*)$/);
  if (!m) throw new Error(`not a Kubernetes version: ${version}`);
  const gitVersion = `v${m[1]}.${m[2]}.${m[3] ?? '0'}${m[4] ?? ''}`;
  return {
    major: m[1]!, minor: m[2]!, gitVersion, gitCommit: '0000000000000000000000000000000000000000', gitTreeState: 'clean',
    buildDate: '2025-01-01T00:00:00Z', goVersion: 'go1.22.0', compiler: 'gc', platform: 'linux/amd64',
  };
}

const hash = (s: string) => createHash('sha256').update(s).digest('base64').slice(0, 11);

function apiResources(defs: ResourceDef[]): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const d of defs) {
    const r: Record<string, unknown> = { name: d.resource, singularName: d.singular, namespaced: d.namespaced, kind: d.kind, verbs: d.verbs };
    if (d.shortNames.length) r.shortNames = d.shortNames;
    if (d.categories.length) r.categories = d.categories;
    r.storageVersionHash = hash(`${d.group}/${d.version}/${d.kind}`);
    out.push(r);
    if (d.statusSubresource) out.push({ name: `${d.resource}/status`, singularName: '', namespaced: d.namespaced, kind: d.kind, verbs: ['get', 'patch', 'update'] });
    if (d.group === '' && d.resource === 'pods') out.push({ name: 'pods/eviction', singularName: '', namespaced: true, group: 'policy', version: 'v1', kind: 'Eviction', verbs: ['create'] });
  }
  return out;
}

export class Discovery {
  private cachedGen = -1;
  private docs = new Map<string, string>();
  private index = '';

  constructor(private readonly registry: Registry, private readonly address: () => string) {}

  api(): unknown {
    return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: this.address() }] };
  }

  private group(name: string, versions: string[]): Record<string, unknown> {
    const vs = versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
    return { name, versions: vs, preferredVersion: vs[0] };
  }

  apis(): unknown {
    return { kind: 'APIGroupList', apiVersion: 'v1', groups: this.registry.groups().map((g) => this.group(g.name, g.versions)) };
  }

  apiGroup(name: string): unknown | undefined {
    const g = this.registry.groups().find((x) => x.name === name);
    return g && { kind: 'APIGroup', apiVersion: 'v1', ...this.group(g.name, g.versions) };
  }

  resourceList(group: string, version: string): unknown | undefined {
    const defs = this.registry.groupVersion(group, version);
    if (defs.length === 0) return undefined;
    return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: apiVersionOf({ group, version }), resources: apiResources(defs) };
  }

  /** /openapi/v3: where each group version's document lives (hash changes with the content). */
  openapiIndex(): string {
    this.rebuild();
    return this.index;
  }

  /** /openapi/v3/api/v1, /openapi/v3/apis/<group>/<version>. */
  openapiDoc(gvPath: string): string | undefined {
    this.rebuild();
    return this.docs.get(gvPath);
  }

  private rebuild(): void {
    if (this.cachedGen === this.registry.generation) return;
    const byGv = new Map<string, ResourceDef[]>();
    for (const d of this.registry.all()) {
      const p = d.group ? `apis/${d.group}/${d.version}` : `api/${d.version}`;
      byGv.set(p, [...(byGv.get(p) ?? []), d]);
    }
    this.docs = new Map([...byGv].map(([p, defs]) => [p, JSON.stringify(openapiDoc(defs))]));
    const paths: Record<string, { serverRelativeURL: string }> = {};
    for (const [p, doc] of this.docs) paths[p] = { serverRelativeURL: `/openapi/v3/${p}?hash=${createHash('sha512').update(doc).digest('hex').toUpperCase().slice(0, 128)}` };
    this.index = JSON.stringify({ paths });
    this.cachedGen = this.registry.generation;
  }
}

/** The component name the real server gives a kind's schema. */
export function schemaName(d: ResourceDef): string {
  if (d.crd) return `${d.group.split('.').reverse().join('.')}.${d.version}.${d.kind}`;
  if (d.group === 'apiextensions.k8s.io') return `io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.${d.version}.${d.kind}`;
  const g = d.group === '' ? 'core' : d.group.replace(/\.k8s\.io$/, '');
  return `io.k8s.api.${g}.${d.version}.${d.kind}`;
}

function openapiDoc(defs: ResourceDef[]): Record<string, unknown> {
  const paths: Record<string, unknown> = {};
  const schemas: Record<string, unknown> = {};
  const q = (name: string) => ({ name, in: 'query', description: name, schema: { type: 'string' }, style: 'form' });
  for (const d of defs) {
    const gvk = { group: d.group, version: d.version, kind: d.kind };
    const name = schemaName(d);
    const ref = { $ref: `#/components/schemas/${name}` };
    schemas[name] = { ...d.schema, 'x-kubernetes-group-version-kind': [gvk] };
    const base = `/${d.group ? `apis/${d.group}` : 'api'}/${d.version}${d.namespaced ? '/namespaces/{namespace}' : ''}/${d.resource}`;
    const body = { content: { 'application/json': { schema: ref } }, required: true };
    const ok = { '200': { description: 'OK', content: { 'application/json': { schema: ref } } } };
    const op = (action: string, extra: Record<string, unknown> = {}) => ({ operationId: `${action}${d.kind}`, 'x-kubernetes-action': action, 'x-kubernetes-group-version-kind': gvk, responses: ok, ...extra });
    const writeParams = [q('dryRun'), q('fieldManager'), q('fieldValidation')];
    const patchBody = { content: Object.fromEntries(['application/json-patch+json', 'application/merge-patch+json', ...(d.strategicMerge ? ['application/strategic-merge-patch+json'] : [])].map((t) => [t, { schema: { type: 'object' } }])), required: true };
    paths[base] = {
      get: op('list', { parameters: ['labelSelector', 'fieldSelector', 'limit', 'continue', 'resourceVersion', 'resourceVersionMatch', 'timeoutSeconds', 'watch', 'allowWatchBookmarks'].map(q) }),
      post: op('post', { parameters: writeParams, requestBody: body }),
    };
    paths[`${base}/{name}`] = {
      get: op('get'),
      put: op('put', { parameters: writeParams, requestBody: body }),
      patch: op('patch', { parameters: [...writeParams, q('force')], requestBody: patchBody }),
      delete: op('delete', { parameters: [q('dryRun'), q('gracePeriodSeconds'), q('propagationPolicy')] }),
    };
    if (d.statusSubresource) {
      paths[`${base}/{name}/status`] = {
        get: op('get'),
        put: op('put', { parameters: writeParams, requestBody: body }),
        patch: op('patch', { parameters: [...writeParams, q('force')], requestBody: patchBody }),
      };
    }
  }
  return { openapi: '3.0.0', info: { title: 'Kubernetes', version: 'unversioned' }, paths, components: { schemas: schemas as Record<string, Schema> } };
}
