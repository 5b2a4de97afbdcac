// The three patch formats: JSON merge patch (RFC 7386), strategic merge patch (driven by the
// schema's x-kubernetes-patch-strategy / -merge-key, with the $patch, $retainKeys,
// $deleteFromPrimitiveList and $setElementOrder directives) and JSON patch (RFC 6902).

import { ApiError, errors } from './errors.js';
import type { Schema } from './schema.js';

type J = any; // eslint-disable-line @typescript-eslint/no-explicit-any

const isMap = (v: unknown): v is Record<string, J> => v !== null && typeof v === 'object' && !Array.isArray(v);
const clone = <T>(v: T): T => (v === undefined ? v : structuredClone(v));

export function jsonMergePatch(target: J, patch: J): J {
  if (!isMap(patch)) return clone(patch);
  const out: Record<string, J> = isMap(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = jsonMergePatch(out[k], v);
  }
  return out;
}

function child(schema: Schema | undefined, key: string): Schema | undefined {
  if (!schema) return undefined;
  const props = schema.properties as Record<string, Schema> | undefined;
  if (props?.[key]) return props[key];
  if (schema.additionalProperties && typeof schema.additionalProperties === 'object') return schema.additionalProperties as Schema;
  return undefined;
}

function strategyOf(s: Schema | undefined): { merge: boolean; key?: string } {
  const strat = String(s?.['x-kubernetes-patch-strategy'] ?? '');
  const key = s?.['x-kubernetes-patch-merge-key'] as string | undefined;
  return key ? { merge: strat.split(',').includes('merge'), key } : { merge: strat.split(',').includes('merge') };
}

const badSmp = (m: string) => errors.badRequest(m);

export function strategicMergePatch(original: J, patch: J, schema: Schema): J {
  if (!isMap(patch)) throw badSmp('invalid JSON document');
  return mergeMap(isMap(original) ? original : {}, patch, schema);
}

function mergeMap(original: Record<string, J>, patch: Record<string, J>, schema: Schema | undefined): Record<string, J> | undefined {
  const directive = patch.$patch;
  if (directive === 'delete') return undefined;
  if (directive === 'replace') {
    const { $patch: _drop, ...rest } = patch;
    return stripDirectives(rest);
  }
  if (directive !== undefined) throw badSmp(`Unknown patch type: ${directive} in map: ${JSON.stringify(patch)}`);
  const out: Record<string, J> = { ...original };
  const orders = new Map<string, J[]>();
  if (Array.isArray(patch.$retainKeys)) {
    for (const k of Object.keys(out)) if (!patch.$retainKeys.includes(k)) delete out[k];
  }
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$retainKeys') continue;
    if (k.startsWith('$setElementOrder/')) {
      orders.set(k.slice('$setElementOrder/'.length), v);
      continue;
    }
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const field = k.slice('$deleteFromPrimitiveList/'.length);
      if (!Array.isArray(v)) throw badSmp('invalid patch: $deleteFromPrimitiveList must be a list');
      if (Array.isArray(out[field])) out[field] = out[field].filter((x: J) => !v.includes(x));
      continue;
    }
    if (k.startsWith('$')) continue;
    const sub = child(schema, k);
    if (v === null) {
      delete out[k];
    } else if (isMap(v)) {
      const merged = mergeMap(isMap(out[k]) ? out[k] : {}, v, sub);
      if (merged === undefined) delete out[k];
      else out[k] = merged;
    } else if (Array.isArray(v)) {
      out[k] = mergeList(Array.isArray(out[k]) ? out[k] : [], v, sub);
    } else {
      out[k] = v;
    }
  }
  for (const [field, order] of orders) {
    if (Array.isArray(out[field]) && Array.isArray(order)) out[field] = reorder(out[field], order, strategyOf(child(schema, field)).key);
  }
  return out;
}

function mergeList(original: J[], patch: J[], schema: Schema | undefined): J[] {
  const { merge, key } = strategyOf(schema);
  const items = schema?.items as Schema | undefined;
  if (!merge) return stripDirectives(patch);
  if (!key) {
    // A set of primitives: union, keeping the original order first.
    const out = [...original];
    for (const v of patch) if (!out.some((o) => JSON.stringify(o) === JSON.stringify(v))) out.push(v);
    return out;
  }
  if (patch.some((p) => isMap(p) && p.$patch === 'replace')) return stripDirectives(patch.filter((p) => !(isMap(p) && p.$patch === 'replace')));
  const out = [...original];
  for (const p of patch) {
    if (!isMap(p)) throw badSmp(`invalid patch: a list with merge key ${key} holds a non-map`);
    if (p[key] === undefined) throw badSmp(`map: ${JSON.stringify(p)} does not contain declared merge key: ${key}`);
    const i = out.findIndex((o) => isMap(o) && o[key] === p[key]);
    if (p.$patch === 'delete') {
      if (i >= 0) out.splice(i, 1);
      continue;
    }
    if (i >= 0) out[i] = mergeMap(out[i], p, items)!;
    else out.push(mergeMap({}, p, items)!);
  }
  return out;
}

function reorder(list: J[], order: J[], key: string | undefined): J[] {
  const id = (v: J) => (key && isMap(v) ? v[key] : v);
  const orderIds = order.map((o) => id(o));
  const pos = new Map(orderIds.map((v, i) => [JSON.stringify(v), i]));
  const ranked = list.map((v, i) => ({ v, i, p: pos.get(JSON.stringify(id(v))) ?? Number.MAX_SAFE_INTEGER }));
  ranked.sort((a, b) => a.p - b.p || a.i - b.i);
  return ranked.map((r) => r.v);
}

function stripDirectives<T>(v: T): T {
  if (Array.isArray(v)) return v.map(stripDirectives) as T;
  if (!isMap(v)) return v;
  const out: Record<string, J> = {};
  for (const [k, x] of Object.entries(v)) if (!k.startsWith('$')) out[k] = stripDirectives(x);
  return out as T;
}

// ---- RFC 6902 ----

function pointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw patchError(`invalid JSON pointer: ${path}`);
  return path.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function patchError(message: string): ApiError {
  return new ApiError(422, 'Invalid', message);
}

function parentOf(doc: J, parts: string[]): { parent: J; last: string } {
  let cur = doc;
  for (const p of parts.slice(0, -1)) {
    if (cur === null || typeof cur !== 'object') throw patchError(`doc is missing path: "/${parts.join('/')}"`);
    cur = Array.isArray(cur) ? cur[Number(p)] : cur[p];
    if (cur === undefined) throw patchError(`doc is missing path: "/${parts.join('/')}": missing value`);
  }
  return { parent: cur, last: parts[parts.length - 1]! };
}

function getAt(doc: J, path: string): J {
  let cur = doc;
  for (const p of pointer(path)) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = Array.isArray(cur) ? cur[Number(p)] : cur[p];
  }
  return cur;
}

function addAt(doc: J, path: string, value: J): J {
  const parts = pointer(path);
  if (parts.length === 0) return value;
  const { parent, last } = parentOf(doc, parts);
  if (Array.isArray(parent)) {
    const i = last === '-' ? parent.length : Number(last);
    if (!Number.isInteger(i) || i < 0 || i > parent.length) throw patchError(`add operation does not apply: doc is missing path: "${path}"`);
    parent.splice(i, 0, value);
  } else if (isMap(parent)) parent[last] = value;
  else throw patchError(`add operation does not apply: doc is missing path: "${path}"`);
  return doc;
}

function removeAt(doc: J, path: string): J {
  const parts = pointer(path);
  const { parent, last } = parentOf(doc, parts);
  if (Array.isArray(parent)) {
    const i = Number(last);
    if (!(i >= 0 && i < parent.length)) throw patchError(`remove operation does not apply: doc is missing path: "${path}"`);
    parent.splice(i, 1);
  } else if (isMap(parent) && last in parent) delete parent[last];
  else throw patchError(`remove operation does not apply: doc is missing path: "${path}"`);
  return doc;
}

export function jsonPatch(doc: J, ops: J): J {
  if (!Array.isArray(ops)) throw badSmp('json: cannot unmarshal object into Go value of type jsonpatch.Patch');
  let out = clone(doc);
  for (const op of ops) {
    switch (op?.op) {
      case 'add': out = addAt(out, op.path, clone(op.value)); break;
      case 'remove': out = removeAt(out, op.path); break;
      case 'replace':
        if (getAt(out, op.path) === undefined) throw patchError(`replace operation does not apply: doc is missing key: ${op.path}: missing value`);
        out = addAt(removeAt(out, op.path), op.path, clone(op.value));
        break;
      case 'move': { const v = getAt(out, op.from); out = addAt(removeAt(out, op.from), op.path, v); break; }
      case 'copy': out = addAt(out, op.path, clone(getAt(out, op.from))); break;
      case 'test':
        if (JSON.stringify(getAt(out, op.path)) !== JSON.stringify(op.value)) throw patchError(`testing value ${op.path} failed: test failed`);
        break;
      default: throw badSmp(`Unexpected kind: ${op?.op}`);
    }
  }
  return out;
}
