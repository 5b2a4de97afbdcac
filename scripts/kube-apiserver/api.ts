// The REST semantics, apart from HTTP: create/get/list/update/patch/delete/evict with
// resourceVersion preconditions (409), status-subresource rules, generation, field validation
// (Strict/Warn/Ignore), pruning, CRD schema validation, finalizers, paged lists with consistent
// continue tokens, and the small controllers a real cluster runs beside the server (CRD
// establishment, PDB status, namespace contents).

import { randomBytes } from 'node:crypto';
import { acceptedStatus } from './crd.js';
import { ApiError, errors, type StatusCause } from './errors.js';
import { jsonMergePatch, jsonPatch, strategicMergePatch } from './patch.js';
import { budgetsFor, checkEviction, pdbStatus } from './pdb.js';
import type { Registry } from './registry.js';
import { apiVersionOf, type ResourceDef } from './resources.js';
import { unknownFields } from './schema.js';
import { parseFieldSelector, parseLabelSelector } from './selectors.js';
import { keyOf, type KObject, type Store } from './store.js';

/** Options a write takes from its query string. */
export interface WriteOptions {
  dryRun?: boolean;
  fieldValidation?: string | null;
}

export interface WriteResult {
  obj: KObject;
  warnings: string[];
  /** 201 for a create, 200 otherwise. */
  code: number;
}

export interface ListQuery {
  labelSelector?: string | null;
  fieldSelector?: string | null;
  limit?: string | null;
  continue?: string | null;
  resourceVersion?: string | null;
  resourceVersionMatch?: string | null;
}

export interface ListResult {
  items: KObject[];
  metadata: { resourceVersion: string; continue?: string; remainingItemCount?: number };
}

export interface ApiOptions {
  /** How long a continue token stays valid (ms). */
  continueTtlMs?: number;
}

const NS = '/namespaces';
const PODS = '/pods';
const PDBS = 'policy/poddisruptionbudgets';
const CRDS = 'apiextensions.k8s.io/customresourcedefinitions';

const nameRe = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const labelRe = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const taintEffects = ['NoSchedule', 'PreferNoSchedule', 'NoExecute'];

const clone = <T>(v: T): T => structuredClone(v);
const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

function randomSuffix(): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  return [...randomBytes(5)].map((b) => alphabet[b % alphabet.length]).join('');
}

/** Everything but metadata and status, to tell whether generation moves. */
function specPart(o: KObject): string {
  const { metadata: _m, status: _s, ...rest } = o;
  return JSON.stringify(rest);
}

export class Api {
  private readonly snapshots = new Map<string, { items: KObject[]; keys: string[]; expires: number }>();
  private readonly dirtyPdbNamespaces = new Set<string>();
  private pdbFlushScheduled = false;
  private readonly continueTtlMs: number;

  constructor(readonly store: Store, readonly registry: Registry, opts: ApiOptions = {}) {
    this.continueTtlMs = opts.continueTtlMs ?? 5 * 60_000;
    for (const name of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
      store.create(NS, { metadata: { name, labels: { 'kubernetes.io/metadata.name': name } }, spec: { finalizers: ['kubernetes'] }, status: { phase: 'Active' } });
    }
  }

  // ---- presentation ----

  /** The object as this resource shows it, with kind and apiVersion. */
  present(def: ResourceDef, stored: KObject): KObject {
    const viewed = def.view ? def.view.fromStored(stored) : stored;
    const { kind: _k, apiVersion: _a, ...rest } = viewed;
    return { kind: def.kind, apiVersion: apiVersionOf(def), ...rest };
  }

  /** The JSON of present(def, stored), from the store's per-version cache where the view is trivial. */
  presentJson(def: ResourceDef, stored: KObject): string {
    if (def.view && !(def.crd && stored.apiVersion === apiVersionOf(def))) return JSON.stringify(this.present(def, stored));
    const json = this.store.serialize(stored);
    if (def.crd) return json;
    return `{"kind":${JSON.stringify(def.kind)},"apiVersion":${JSON.stringify(apiVersionOf(def))},${json.slice(1)}`;
  }

  /** A list item's JSON: typed lists omit kind/apiVersion on items, custom resource lists keep them. */
  itemJson(def: ResourceDef, stored: KObject): string {
    if (!def.typedList || def.view) return this.presentJson(def, stored);
    return this.store.serialize(stored);
  }

  private crdOf(def: ResourceDef): KObject | undefined {
    return def.crd ? this.store.get(CRDS, undefined, def.crd.name) : undefined;
  }

  crdObject(def: ResourceDef): KObject | undefined {
    return this.crdOf(def);
  }

  // ---- reads ----

  getStored(def: ResourceDef, ns: string | undefined, name: string): KObject {
    if (def.storage === PDBS) this.flushPdbs();
    const o = this.store.get(def.storage, def.namespaced ? ns : undefined, name);
    if (!o) throw errors.notFound(def.group, def.resource, name);
    return o;
  }

  get(def: ResourceDef, ns: string | undefined, name: string): KObject {
    return this.present(def, this.getStored(def, ns, name));
  }

  /** A list (stored objects), paged with limit/continue as the real server pages a consistent read. */
  list(def: ResourceDef, ns: string | undefined, q: ListQuery): ListResult {
    if (def.storage === PDBS) this.flushPdbs();
    const labels = parseLabelSelector(q.labelSelector);
    const fields = parseFieldSelector(q.fieldSelector, def.fields);
    const filtered = Boolean(q.labelSelector?.trim()) || !fields.empty;
    const match = (o: KObject) => labels(o.metadata.labels) && fields.matches(o);
    const rv = q.resourceVersion ?? '';
    const rvMatch = q.resourceVersionMatch ?? '';
    if (rvMatch && !rv) throw errors.invalid('meta.k8s.io', 'ListOptions', '', [{ reason: 'FieldValueForbidden', message: 'Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided', field: 'resourceVersionMatch' }]);
    if (rvMatch && !['NotOlderThan', 'Exact'].includes(rvMatch)) throw errors.invalid('meta.k8s.io', 'ListOptions', '', [{ reason: 'FieldValueNotSupported', message: `Unsupported value: "${rvMatch}": supported values: "Exact", "NotOlderThan"`, field: 'resourceVersionMatch' }]);
    if (q.continue && rv && rv !== '0') throw errors.badRequest('specifying resource version is not allowed when using continue');
    const current = this.store.rv;
    if (rv && rv !== '0') {
      const asked = Number(rv);
      if (!Number.isInteger(asked)) throw errors.badRequest(`invalid resource version: ${rv}`);
      if (asked > current) throw new ApiError(504, 'Timeout', `Too large resource version: ${asked}, current: ${current}`, { causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }], retryAfterSeconds: 1 });
      if (rvMatch === 'Exact' && asked !== current) throw errors.gone(`too old resource version: ${asked} (${current})`);
    }
    const scope = def.namespaced ? ns : undefined;
    let limit = q.limit ? Number(q.limit) : 0;
    if (!Number.isInteger(limit) || limit < 0) limit = 0;
    // A list at resourceVersion 0 / NotOlderThan is served from the watch cache, which ignores limit.
    if (rv && rvMatch !== 'Exact') limit = 0;

    let snap: { items: KObject[]; keys: string[] };
    let snapRv = current;
    let startAt = 0;
    if (q.continue) {
      const tok = this.decodeContinue(q.continue);
      const key = `${def.storage}|${scope ?? ''}|${tok.rv}`;
      const s = this.snapshots.get(key);
      if (!s || s.expires < Date.now() || tok.rv < this.store.oldestRv) {
        this.snapshots.delete(key);
        const inconsistent = this.encodeContinue(current, tok.start);
        throw new ApiError(410, 'Expired', 'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.', undefined, { continue: inconsistent });
      }
      snap = s;
      snapRv = tok.rv;
      startAt = lowerBound(s.keys, tok.start);
    } else {
      const items = this.store.list(def.storage, scope);
      snap = { items, keys: [] };
    }
    const out: KObject[] = [];
    let i = startAt;
    for (; i < snap.items.length; i++) {
      if (limit && out.length >= limit) break;
      const o = snap.items[i]!;
      if (match(o)) out.push(o);
    }
    const metadata: ListResult['metadata'] = { resourceVersion: String(snapRv) };
    // More keys left to read: hand out a token that resumes after the last key read.
    if (limit && i < snap.items.length) {
      if (!q.continue) {
        const keys = snap.items.map((o) => keyOf(o.metadata.namespace, o.metadata.name));
        this.remember(`${def.storage}|${scope ?? ''}|${snapRv}`, { items: snap.items, keys });
        snap = { items: snap.items, keys };
      }
      const last = snap.items[i - 1]!;
      metadata.continue = this.encodeContinue(snapRv, `${keyOf(last.metadata.namespace, last.metadata.name)}\u0000`);
      if (!filtered) metadata.remainingItemCount = snap.items.length - i;
    }
    return { items: out, metadata };
  }

  private remember(key: string, s: { items: KObject[]; keys: string[] }): void {
    const t = Date.now();
    for (const [k, v] of this.snapshots) if (v.expires < t || this.snapshots.size > 256) this.snapshots.delete(k);
    this.snapshots.set(key, { ...s, expires: t + this.continueTtlMs });
  }

  private encodeContinue(rv: number, start: string): string {
    return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv, start })).toString('base64url');
  }

  private decodeContinue(token: string): { rv: number; start: string } {
    try {
      const t = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
      if (t.v !== 'meta.k8s.io/v1' || typeof t.rv !== 'number' || typeof t.start !== 'string') throw new Error('bad');
      return t;
    } catch {
      throw errors.badRequest(`invalid continue token: ${token}`);
    }
  }

  // ---- writes ----

  private fieldCheck(def: ResourceDef, body: KObject, fieldValidation: string | null | undefined, warnings: string[]): void {
    const mode = fieldValidation || 'Warn';
    if (!['Strict', 'Warn', 'Ignore'].includes(mode)) throw errors.badRequest(`fieldValidation must be one of "Ignore", "Warn", or "Strict", got "${mode}"`);
    const unknown = unknownFields(body, def.schema, true);
    if (unknown.length === 0 || mode === 'Ignore') return;
    const msgs = unknown.map((f) => `unknown field "${f}"`);
    if (mode === 'Strict') throw errors.badRequest(`${def.kind} in version "${def.version}" cannot be handled as a ${def.kind}: strict decoding error: ${msgs.join(', ')}`);
    warnings.push(...msgs);
  }

  private checkKind(def: ResourceDef, body: unknown): asserts body is KObject {
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw errors.badRequest(`Object 'Kind' is missing in '${JSON.stringify(body)}'`);
    const b = body as KObject;
    if (b.kind !== undefined && b.kind !== def.kind) throw errors.badRequest(`the object provided is unrecognized (must be of type ${def.kind}): kind ${b.kind}`);
    if (b.apiVersion !== undefined && b.apiVersion !== apiVersionOf(def)) throw errors.badRequest(`the API version in the data (${b.apiVersion}) does not match the expected API version (${apiVersionOf(def)})`);
    if (!b.metadata || typeof b.metadata !== 'object') b.metadata = {};
  }

  private validate(def: ResourceDef, obj: KObject): void {
    const causes: StatusCause[] = [];
    const name = obj.metadata.name as string;
    const isNs = def.storage === NS;
    if (def.storage !== '/events' && !(isNs ? labelRe : nameRe).test(name)) {
      causes.push({ reason: 'FieldValueInvalid', field: 'metadata.name', message: isNs
        ? `Invalid value: "${name}": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`
        : `Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')` });
    }
    if (def.storage === '/nodes') {
      const seen = new Set<string>();
      (obj.spec?.taints ?? []).forEach((t: KObject, i: number) => {
        if (!taintEffects.includes(t.effect)) causes.push({ reason: 'FieldValueNotSupported', field: `spec.taints[${i}].effect`, message: `Unsupported value: "${t.effect ?? ''}": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"` });
        const k = `${t.key}:${t.effect}`;
        if (seen.has(k)) causes.push({ reason: 'FieldValueDuplicate', field: `spec.taints[${i}]`, message: `Duplicate value: map[string]interface {}{"effect":"${t.effect}", "key":"${t.key}"}: taints must be unique by key and effect pair` });
        seen.add(k);
      });
    }
    if (causes.length) throw errors.invalid(def.group, def.kind, name, causes);
    const v = this.registry.validator(def);
    if (v) v.check(this.present(def, obj));
    if (def.storage === CRDS) this.registry.previewCrd(obj);
  }

  create(def: ResourceDef, ns: string | undefined, body: unknown, opts: WriteOptions = {}): WriteResult {
    this.checkKind(def, body);
    const warnings: string[] = [];
    const obj = clone(body);
    this.fieldCheck(def, obj, opts.fieldValidation, warnings);
    const meta = obj.metadata;
    if (meta.resourceVersion) throw errors.badRequest('resourceVersion should not be set on objects to be created');
    if (!meta.name && meta.generateName) meta.name = `${meta.generateName}${randomSuffix()}`;
    if (!meta.name) throw errors.invalid(def.group, def.kind, '', [{ reason: 'FieldValueRequired', message: 'Required value: name or generateName is required', field: 'metadata.name' }]);
    if (def.namespaced) {
      if (meta.namespace && ns && meta.namespace !== ns) throw errors.badRequest('the namespace of the provided object does not match the namespace sent on the request');
      meta.namespace = ns ?? meta.namespace;
      if (!meta.namespace) throw errors.badRequest('the server could not find the requested resource');
      if (!this.store.get(NS, undefined, meta.namespace)) throw errors.notFound('', 'namespaces', meta.namespace);
    } else delete meta.namespace;
    for (const k of ['uid', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generation', 'selfLink', 'managedFields']) delete meta[k];
    let stored = def.view ? def.view.toStored(obj) : obj;
    if (def.crd) stored = { ...stored, kind: def.kind };
    else {
      delete stored.kind;
      delete stored.apiVersion;
    }
    // PrepareForCreate of each strategy.
    if (def.storage === PODS) stored.status = { phase: 'Pending', qosClass: 'BestEffort' };
    else if (def.storage === PDBS) stored.status = {};
    else if (def.storage === NS) {
      stored.spec = { finalizers: ['kubernetes'] };
      stored.status = { phase: 'Active' };
      stored.metadata.labels = { ...stored.metadata.labels, 'kubernetes.io/metadata.name': meta.name };
    } else if (def.statusSubresource && def.crd) delete stored.status;
    if (def.generation) stored.metadata.generation = 1;
    this.validate(def, stored);
    if (this.store.get(def.storage, stored.metadata.namespace, stored.metadata.name)) throw errors.alreadyExists(def.group, def.resource, stored.metadata.name);
    if (def.storage === CRDS) stored.status = this.crdStatus(stored);
    if (def.storage === PDBS) stored.status = pdbStatus(stored, this.store.list(PODS, stored.metadata.namespace));
    if (opts.dryRun) {
      stored.metadata.uid = crypto.randomUUID();
      stored.metadata.creationTimestamp = now();
      return { obj: this.present(def, stored), warnings, code: 201 };
    }
    this.store.create(def.storage, stored);
    this.afterWrite(def, stored);
    return { obj: this.present(def, stored), warnings, code: 201 };
  }

  private crdStatus(crd: KObject): KObject {
    const defs = this.registry.previewCrd(crd);
    const clash = defs.find((d) => {
      const other = this.registry.find(d.group, d.version, d.resource);
      return other && other.crd?.name !== crd.metadata.name;
    });
    if (clash) throw errors.invalid('apiextensions.k8s.io', 'CustomResourceDefinition', crd.metadata.name, [{ reason: 'FieldValueInvalid', field: 'spec.names.plural', message: `Invalid value: "${clash.resource}": ${clash.resource}.${clash.group} is already served` }]);
    return acceptedStatus(crd);
  }

  /** PUT, to the object (subresource '') or its status. */
  update(def: ResourceDef, ns: string | undefined, name: string, body: unknown, subresource: string, opts: WriteOptions = {}): WriteResult {
    this.checkKind(def, body);
    const warnings: string[] = [];
    const obj = clone(body);
    this.fieldCheck(def, obj, opts.fieldValidation, warnings);
    return this.replace(def, ns, name, obj, subresource, opts, warnings);
  }

  private replace(def: ResourceDef, ns: string | undefined, name: string, obj: KObject, subresource: string, opts: WriteOptions, warnings: string[]): WriteResult {
    const scope = def.namespaced ? ns : undefined;
    const old = this.store.get(def.storage, scope, name);
    if (!old) throw errors.notFound(def.group, def.resource, name);
    if (obj.metadata.name !== undefined && obj.metadata.name !== name) throw errors.badRequest(`the name of the object (${obj.metadata.name}) does not match the name on the URL (${name})`);
    if (def.namespaced && obj.metadata.namespace && obj.metadata.namespace !== ns) throw errors.badRequest('the namespace of the provided object does not match the namespace sent on the request');
    const rv = obj.metadata.resourceVersion;
    if (rv !== undefined && rv !== '' && rv !== old.metadata.resourceVersion) throw errors.conflict(def.group, def.resource, name);
    let next = def.view ? def.view.toStored(obj) : obj;
    if (def.crd) next = { ...next, kind: def.kind };
    else {
      delete next.kind;
      delete next.apiVersion;
    }
    const keep = ['uid', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generation', 'namespace', 'name', 'resourceVersion', 'selfLink'];
    if (subresource === 'status') {
      // Status writes change status alone; everything else stays as it was.
      next = { ...clone(old), status: next.status };
      if (next.status === undefined) delete next.status;
    } else {
      const meta = { ...next.metadata };
      for (const k of keep) {
        if (old.metadata[k] === undefined) delete meta[k];
        else meta[k] = old.metadata[k];
      }
      delete meta.managedFields;
      next.metadata = meta;
      if (def.statusSubresource) {
        if (old.status === undefined) delete next.status;
        else next.status = clone(old.status);
      }
      if (def.storage === NS) next.spec = clone(old.spec);
      if (def.generation && specPart(next) !== specPart(old)) next.metadata.generation = (old.metadata.generation ?? 0) + 1;
    }
    next.metadata.resourceVersion = old.metadata.resourceVersion;
    this.validate(def, next);
    if (def.storage === CRDS) next.status = subresource === 'status' ? next.status : this.crdStatus(next);
    if (def.storage === PDBS) next.status = pdbStatus(next, this.store.list(PODS, next.metadata.namespace), old.status);
    // A write that changes nothing is not a write: the resourceVersion stays.
    if (same(next, old)) return { obj: this.present(def, old), warnings, code: 200 };
    if (opts.dryRun) return { obj: this.present(def, next), warnings, code: 200 };
    if (next.metadata.deletionTimestamp && !(next.metadata.finalizers?.length)) {
      this.store.delete(def.storage, scope, name);
      this.afterDelete(def, next);
      return { obj: this.present(def, next), warnings, code: 200 };
    }
    this.store.update(def.storage, next);
    this.afterWrite(def, next);
    return { obj: this.present(def, next), warnings, code: 200 };
  }

  /** PATCH in one of the three formats; the result goes through the same path as a PUT. */
  patch(def: ResourceDef, ns: string | undefined, name: string, contentType: string, patchBody: unknown, subresource: string, opts: WriteOptions = {}): WriteResult {
    const type = contentType.split(';')[0]!.trim().toLowerCase();
    const accepted = ['application/json-patch+json', 'application/merge-patch+json', ...(def.strategicMerge ? ['application/strategic-merge-patch+json'] : [])];
    if (!accepted.includes(type)) throw errors.unsupportedMediaType(type, accepted);
    const old = this.getStored(def, ns, name);
    const current = this.present(def, old);
    let patched: unknown;
    if (type === 'application/json-patch+json') patched = jsonPatch(current, patchBody);
    else if (type === 'application/merge-patch+json') patched = jsonMergePatch(current, patchBody);
    else patched = strategicMergePatch(current, patchBody, def.schema);
    this.checkKind(def, patched);
    const warnings: string[] = [];
    this.fieldCheck(def, patched, opts.fieldValidation, warnings);
    return this.replace(def, ns, name, patched, subresource, opts, warnings);
  }

  delete(def: ResourceDef, ns: string | undefined, name: string, options: KObject | undefined, opts: WriteOptions = {}): WriteResult {
    const scope = def.namespaced ? ns : undefined;
    const old = this.getStored(def, ns, name);
    const pre = options?.preconditions ?? {};
    if (pre.uid && pre.uid !== old.metadata.uid) throw errors.conflict(def.group, def.resource, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${old.metadata.uid}`);
    if (pre.resourceVersion && pre.resourceVersion !== old.metadata.resourceVersion) throw errors.conflict(def.group, def.resource, name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${old.metadata.resourceVersion}`);
    if (old.metadata.finalizers?.length) {
      if (old.metadata.deletionTimestamp) return { obj: this.present(def, old), warnings: [], code: 202 };
      const next = { ...old, metadata: { ...old.metadata, deletionTimestamp: now(), deletionGracePeriodSeconds: 0 } };
      if (!opts.dryRun) this.store.update(def.storage, next);
      return { obj: this.present(def, next), warnings: [], code: 202 };
    }
    if (opts.dryRun) return { obj: this.deleted(def, old), warnings: [], code: 200 };
    const gone = this.store.delete(def.storage, scope, name)!;
    this.afterDelete(def, gone);
    return { obj: this.deleted(def, gone), warnings: [], code: 200 };
  }

  private deleted(def: ResourceDef, o: KObject): KObject {
    if (def.deleteReturnsObject) return this.present(def, o);
    const details: KObject = { name: o.metadata.name };
    if (def.group) details.group = def.group;
    details.kind = def.resource;
    details.uid = o.metadata.uid;
    return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details };
  }

  /** DELETE on a collection: each matching object, as a list of what was deleted. */
  deleteCollection(def: ResourceDef, ns: string | undefined, q: ListQuery, opts: WriteOptions = {}): KObject {
    const { items } = this.list(def, ns, { labelSelector: q.labelSelector ?? null, fieldSelector: q.fieldSelector ?? null });
    const out = items.map((o) => this.delete(def, o.metadata.namespace, o.metadata.name, undefined, opts).obj);
    return { kind: `${def.kind}List`, apiVersion: apiVersionOf(def), metadata: { resourceVersion: String(this.store.rv) }, items: out };
  }

  /** POST pods/{name}/eviction: 201 and the pod deleted, or 429 when a budget forbids it. */
  evict(ns: string, name: string, body: unknown, opts: WriteOptions = {}): KObject {
    const b = (body ?? {}) as KObject;
    if (b.metadata?.name && b.metadata.name !== name) throw errors.badRequest('name in URL does not match name in Eviction object');
    const podDef = this.registry.find('', 'v1', 'pods')!;
    const pod = this.getStored(podDef, ns, name);
    this.flushPdbs();
    checkEviction(pod, budgetsFor(pod, this.store.list(PDBS, ns)));
    this.delete(podDef, ns, name, b.deleteOptions, opts);
    return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 201 };
  }

  // ---- the controllers beside the server ----

  private afterWrite(def: ResourceDef, o: KObject): void {
    if (def.storage === CRDS) this.registry.serveCrd(o);
    if (def.storage === PODS && this.store.list(PDBS, o.metadata.namespace).length) this.markPdbs(o.metadata.namespace);
  }

  private afterDelete(def: ResourceDef, o: KObject): void {
    if (def.storage === CRDS) {
      const defs = this.registry.unserveCrd(o.metadata.name);
      const storage = defs[0]?.storage;
      if (storage) for (const cr of this.store.list(storage)) this.store.delete(storage, cr.metadata.namespace, cr.metadata.name);
    }
    if (def.storage === NS) {
      const storages = new Set(this.registry.all().filter((d) => d.namespaced).map((d) => d.storage));
      for (const s of storages) for (const x of this.store.list(s, o.metadata.name)) this.store.delete(s, x.metadata.namespace, x.metadata.name);
    }
    if (def.storage === PODS && this.store.list(PDBS, o.metadata.namespace).length) this.markPdbs(o.metadata.namespace);
  }

  private markPdbs(ns: string): void {
    this.dirtyPdbNamespaces.add(ns);
    if (this.pdbFlushScheduled) return;
    this.pdbFlushScheduled = true;
    setImmediate(() => this.flushPdbs());
  }

  /** Recomputes the status of budgets whose pods changed (the disruption controller's sync). */
  flushPdbs(): void {
    this.pdbFlushScheduled = false;
    for (const ns of this.dirtyPdbNamespaces) {
      const pods = this.store.list(PODS, ns);
      for (const pdb of this.store.list(PDBS, ns)) {
        const status = pdbStatus(pdb, pods, pdb.status);
        if (!same(status, pdb.status)) this.store.update(PDBS, { ...pdb, metadata: { ...pdb.metadata }, status });
      }
    }
    this.dirtyPdbNamespaces.clear();
  }
}

/** Deep equality regardless of key order. */
function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === (b as unknown[]).length && a.every((x, i) => same(x, (b as unknown[])[i]));
  const ka = Object.keys(a).filter((k) => (a as KObject)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as KObject)[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => same((a as KObject)[k], (b as KObject)[k]));
}

function lowerBound(a: string[], x: string): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
