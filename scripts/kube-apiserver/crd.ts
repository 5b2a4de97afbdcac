// CustomResourceDefinitions: what a CRD serves (one ResourceDef per served version), the status
// the real server gives an accepted CRD, and validation of custom objects against the version's
// openAPIV3Schema with ajv, reported as the real server's 422 field causes.

import AjvModule from 'ajv';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { errors, type StatusCause } from './errors.js';
import { allVerbs, type ResourceDef } from './resources.js';
import { objectMeta, str, type Schema } from './schema.js';
import type { KObject } from './store.js';

const Ajv = AjvModule.default;

/** The definitions a CRD serves, or a 422 when the CRD itself is not acceptable. */
export function crdResources(crd: KObject): ResourceDef[] {
  const spec = crd.spec ?? {};
  const names = spec.names ?? {};
  const name = crd.metadata?.name ?? '';
  const causes: StatusCause[] = [];
  if (!spec.group) causes.push({ reason: 'FieldValueRequired', message: 'Required value', field: 'spec.group' });
  if (!names.plural) causes.push({ reason: 'FieldValueRequired', message: 'Required value', field: 'spec.names.plural' });
  if (!names.kind) causes.push({ reason: 'FieldValueRequired', message: 'Required value', field: 'spec.names.kind' });
  if (spec.scope !== 'Namespaced' && spec.scope !== 'Cluster') causes.push({ reason: 'FieldValueNotSupported', message: `Unsupported value: "${spec.scope ?? ''}": supported values: "Cluster", "Namespaced"`, field: 'spec.scope' });
  if (spec.group && names.plural && name !== `${names.plural}.${spec.group}`) causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: "${name}": must be spec.names.plural+"."+spec.group`, field: 'metadata.name' });
  const versions: KObject[] = Array.isArray(spec.versions) ? spec.versions : [];
  if (versions.length === 0) causes.push({ reason: 'FieldValueRequired', message: 'Required value', field: 'spec.versions' });
  if (versions.filter((v) => v.storage).length !== 1) causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(versions.map((v) => v.name))}: must have exactly one version marked as storage version`, field: 'spec.versions' });
  versions.forEach((v, i) => {
    if (!v.schema?.openAPIV3Schema) causes.push({ reason: 'FieldValueRequired', message: 'Required value: schemas are required', field: `spec.versions[${i}].schema.openAPIV3Schema` });
    else if (v.schema.openAPIV3Schema.type !== 'object') causes.push({ reason: 'FieldValueRequired', message: 'Required value: must not be empty at the root', field: `spec.versions[${i}].schema.openAPIV3Schema.type` });
  });
  if (causes.length) throw errors.invalid('apiextensions.k8s.io', 'CustomResourceDefinition', name, causes);
  const storageVersion = versions.find((v) => v.storage)!.name as string;
  return versions.filter((v) => v.served).map((v) => {
    const versionSchema = v.schema.openAPIV3Schema as Schema;
    const schema: Schema = { ...versionSchema, properties: { ...((versionSchema.properties as object) ?? {}), apiVersion: str, kind: str, metadata: objectMeta } };
    const apiVersion = `${spec.group}/${v.name}`;
    const storedApiVersion = `${spec.group}/${storageVersion}`;
    return {
      group: spec.group, version: v.name, resource: names.plural, singular: names.singular ?? String(names.kind).toLowerCase(), kind: names.kind,
      namespaced: spec.scope === 'Namespaced', shortNames: names.shortNames ?? [], categories: names.categories ?? [], verbs: allVerbs,
      storage: `${spec.group}/${names.plural}`, fields: {}, statusSubresource: Boolean(v.subresources?.status), generation: true,
      strategicMerge: false, typedList: false, deleteReturnsObject: true, schema,
      view: { fromStored: (o: KObject) => ({ ...o, apiVersion }), toStored: (o: KObject) => ({ ...o, apiVersion: storedApiVersion }) },
      crd: { name, version: v.name },
    } satisfies ResourceDef;
  });
}

/** The status the real server sets once a CRD's names are accepted and it is established. */
export function acceptedStatus(crd: KObject): KObject {
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const names = crd.spec.names;
  const cond = (type: string, reason: string, message: string) => ({ type, status: 'True', lastTransitionTime: now, reason, message });
  return {
    conditions: [cond('NamesAccepted', 'NoConflicts', 'no conflicts found'), cond('Established', 'InitialNamesAccepted', 'the initial names have been accepted')],
    acceptedNames: { plural: names.plural, singular: names.singular ?? String(names.kind).toLowerCase(), kind: names.kind, listKind: names.listKind ?? `${names.kind}List`, ...(names.shortNames ? { shortNames: names.shortNames } : {}), ...(names.categories ? { categories: names.categories } : {}) },
    storedVersions: [crd.spec.versions.find((v: KObject) => v.storage).name],
  };
}

/** openAPIV3Schema → plain JSON Schema for ajv (int-or-string, nullable, no k8s extensions). */
function toJsonSchema(s: unknown): unknown {
  if (Array.isArray(s)) return s.map(toJsonSchema);
  if (!s || typeof s !== 'object') return s;
  const src = s as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(src)) {
    if (k.startsWith('x-kubernetes-') || k === 'nullable' || k === 'format' || k === 'description' || k === 'example' || k === 'externalDocs') continue;
    if (k === 'properties' || k === 'patternProperties' || k === 'definitions') {
      out[k] = Object.fromEntries(Object.entries(v as object).map(([pk, pv]) => [pk, toJsonSchema(pv)]));
    } else out[k] = toJsonSchema(v);
  }
  if (src['x-kubernetes-int-or-string']) {
    delete out.type;
    out.anyOf = [{ type: 'integer' }, { type: 'string' }, ...((out.anyOf as unknown[]) ?? [])];
  }
  if (src.nullable === true && typeof out.type === 'string') out.type = [out.type, 'null'];
  return out;
}

const typeName = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : Number.isInteger(v) ? 'integer' : typeof v);
const show = (v: unknown) => (typeof v === 'string' ? `"${v}"` : JSON.stringify(v));

function fieldPath(instancePath: string): string {
  return instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

function valueAt(obj: unknown, instancePath: string): unknown {
  let cur = obj;
  for (const p of instancePath.split('/').slice(1)) cur = cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[p.replace(/~1/g, '/').replace(/~0/g, '~')] : undefined;
  return cur;
}

function cause(e: ErrorObject, obj: unknown): StatusCause | undefined {
  const at = fieldPath(e.instancePath);
  const v = valueAt(obj, e.instancePath);
  const inBody = at || '<root>';
  switch (e.keyword) {
    case 'required': {
      const f = at ? `${at}.${(e.params as { missingProperty: string }).missingProperty}` : (e.params as { missingProperty: string }).missingProperty;
      return { reason: 'FieldValueRequired', message: 'Required value', field: f };
    }
    case 'type':
      return { reason: 'FieldValueTypeInvalid', message: `Invalid value: "${typeName(v)}": ${inBody} in body must be of type ${(e.params as { type: string }).type}: ${show(v)}`, field: at };
    case 'enum':
      return { reason: 'FieldValueNotSupported', message: `Unsupported value: ${show(v)}: supported values: ${((e.params as { allowedValues: unknown[] }).allowedValues).map(show).join(', ')}`, field: at };
    case 'minimum': case 'exclusiveMinimum':
      return { reason: 'FieldValueInvalid', message: `Invalid value: ${show(v)}: ${inBody} in body should be greater than or equal to ${(e.params as { limit: number }).limit}`, field: at };
    case 'maximum': case 'exclusiveMaximum':
      return { reason: 'FieldValueInvalid', message: `Invalid value: ${show(v)}: ${inBody} in body should be less than or equal to ${(e.params as { limit: number }).limit}`, field: at };
    case 'pattern':
      return { reason: 'FieldValueInvalid', message: `Invalid value: ${show(v)}: ${inBody} in body should match '${(e.params as { pattern: string }).pattern}'`, field: at };
    case 'maxLength':
      return { reason: 'FieldValueTooLong', message: `Too long: may not be more than ${(e.params as { limit: number }).limit} bytes`, field: at };
    case 'minLength':
      return { reason: 'FieldValueInvalid', message: `Invalid value: ${show(v)}: ${inBody} in body should be at least ${(e.params as { limit: number }).limit} chars long`, field: at };
    case 'maxItems':
      return { reason: 'FieldValueTooMany', message: `Too many: ${Array.isArray(v) ? v.length : 0}: must have at most ${(e.params as { limit: number }).limit} items`, field: at };
    case 'anyOf': case 'if': case 'then':
      return undefined; // the branch errors say it
    default:
      return { reason: 'FieldValueInvalid', message: `Invalid value: ${show(v)}: ${inBody} in body ${e.message ?? 'is invalid'}`, field: at };
  }
}

/** Validates custom objects of one CRD version; compiled once per CRD write. */
export class CrValidator {
  private readonly validate: ValidateFunction;

  constructor(private readonly def: ResourceDef) {
    const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false });
    const schema = toJsonSchema(def.schema) as Record<string, unknown>;
    // metadata is validated as ObjectMeta by the server, not by the CRD's schema.
    const props = { ...(schema.properties as Record<string, unknown>) };
    delete props.metadata;
    this.validate = ajv.compile({ ...schema, properties: props });
  }

  /** Throws the 422 Invalid the real server answers, with one cause per violation. */
  check(obj: KObject): void {
    const ok: boolean = this.validate(obj as unknown);
    if (ok) return;
    const seen = new Set<string>();
    const causes: StatusCause[] = [];
    for (const e of this.validate.errors ?? []) {
      const c = cause(e, obj);
      if (!c) continue;
      const k = `${c.field}|${c.message}`;
      if (!seen.has(k)) causes.push(c);
      seen.add(k);
    }
    if (causes.length === 0) causes.push({ reason: 'FieldValueInvalid', message: 'Invalid value: object does not match its schema', field: '<root>' });
    throw errors.invalid(this.def.group, this.def.kind, String(obj.metadata?.name ?? ''), causes);
  }
}
