import { z } from 'zod';
import { secretSchema, secretUrlSchema } from '../common/secret.js';

/** What a configuration key holds, as far as env/flag coercion and the docs care. */
export type FieldKind = 'string' | 'number' | 'integer' | 'boolean' | 'enum' | 'secret' | 'list' | 'map' | 'object' | 'other';

/** One key of the configuration schema, its wrappers peeled off. */
export interface FieldInfo {
  /** Key path; `[]` marks "any list item", `<key>` "any map key". */
  path: string[];
  kind: FieldKind;
  /** The schema under optional/default/pipe wrappers. */
  core: z.ZodType;
  optional: boolean;
  hasDefault: boolean;
  defaultValue?: unknown;
  description?: string;
  /** Enum or literal values. */
  values?: readonly (string | number | boolean)[];
  min?: number;
  max?: number;
  /** A human phrase for the values accepted (`meta({ accepted })` wins over what the type implies). */
  accepted: string;
}

/** A zod schema's peeled view: the core plus what its wrappers said. */
interface Peeled {
  core: z.ZodType;
  optional: boolean;
  hasDefault: boolean;
  defaultValue?: unknown;
  description?: string;
  accepted?: string;
  secret: boolean;
}

const SECRET_SCHEMAS: readonly z.ZodType[] = [secretSchema, secretUrlSchema];
const secretDescriptions = new Set(SECRET_SCHEMAS.map((schema) => schema.description).filter((d): d is string => d !== undefined));

/** Removes optional/default/prefault/nullable/readonly/pipe layers, keeping what they said. */
export function peel(schema: z.ZodType): Peeled {
  const out: Peeled = { core: schema, optional: false, hasDefault: false, secret: false };
  let current: z.ZodType = schema;
  for (let depth = 0; depth < 32; depth++) {
    out.description ??= current.description;
    const meta = current.meta() as { accepted?: unknown } | undefined;
    if (out.accepted === undefined && typeof meta?.accepted === 'string') out.accepted = meta.accepted;
    // describe() clones a schema but keeps its definition, so a re-described secret still matches.
    if (SECRET_SCHEMAS.some((secret) => current === secret || current.def === secret.def) || (current.description !== undefined && secretDescriptions.has(current.description))) {
      out.secret = true;
    }
    if (current instanceof z.ZodOptional || current instanceof z.ZodNullable || current instanceof z.ZodReadonly) {
      if (current instanceof z.ZodOptional) out.optional = true;
      current = current.unwrap() as z.ZodType;
    } else if (current instanceof z.ZodDefault || current instanceof z.ZodPrefault) {
      if (!out.hasDefault) {
        out.hasDefault = true;
        out.defaultValue = current.def.defaultValue;
      }
      current = current.unwrap() as z.ZodType;
    } else if (current instanceof z.ZodPipe) {
      current = current.in as z.ZodType;
    } else {
      break;
    }
  }
  out.core = current;
  return out;
}

function kindOf(peeled: Peeled): FieldKind {
  const core = peeled.core;
  if (peeled.secret) return 'secret';
  if (core instanceof z.ZodObject) return 'object';
  if (core instanceof z.ZodString || core instanceof z.ZodStringFormat) return 'string';
  if (core instanceof z.ZodNumber) return core.isInt ? 'integer' : 'number';
  if (core instanceof z.ZodBoolean) return 'boolean';
  if (core instanceof z.ZodEnum || core instanceof z.ZodLiteral) return 'enum';
  if (core instanceof z.ZodArray) return 'list';
  if (core instanceof z.ZodRecord) return 'map';
  return 'other';
}

function valuesOf(core: z.ZodType): readonly (string | number | boolean)[] | undefined {
  if (core instanceof z.ZodEnum) return core.options as (string | number)[];
  if (core instanceof z.ZodLiteral) return [...core.values].filter((v): v is string | number | boolean => ['string', 'number', 'boolean'].includes(typeof v));
  return undefined;
}

function finite(n: number | null | undefined): number | undefined {
  return typeof n === 'number' && Number.isFinite(n) ? n : undefined;
}

function rangeOf(core: z.ZodType): { min?: number; max?: number } {
  if (core instanceof z.ZodNumber) {
    const min = finite(core.minValue);
    const max = finite(core.maxValue);
    // z.int() carries the safe-integer bounds; they say nothing to an operator.
    return {
      ...(min !== undefined && min > Number.MIN_SAFE_INTEGER ? { min } : {}),
      ...(max !== undefined && max < Number.MAX_SAFE_INTEGER ? { max } : {}),
    };
  }
  if (core instanceof z.ZodString || core instanceof z.ZodStringFormat) {
    const min = finite(core.minLength);
    const max = finite(core.maxLength);
    return { ...(min !== undefined ? { min } : {}), ...(max !== undefined ? { max } : {}) };
  }
  return {};
}

/** A short phrase for what a field accepts, for error messages and docs. */
export function describeAccepted(kind: FieldKind, values?: readonly unknown[], min?: number, max?: number): string {
  const range = (unit: string): string =>
    min !== undefined && max !== undefined ? ` from ${min} to ${max}${unit}`
      : min !== undefined ? ` ≥ ${min}${unit}`
        : max !== undefined ? ` ≤ ${max}${unit}` : '';
  switch (kind) {
    case 'string':
      if (min === 1 && max === undefined) return 'a non-empty string';
      return `a string${min !== undefined || max !== undefined ? ` of length${range('')}` : ''}`;
    case 'number': return `a number${range('')}`;
    case 'integer': return `an integer${range('')}`;
    case 'boolean': return 'true or false';
    case 'enum': return `one of: ${(values ?? []).map((v) => String(v)).join(', ')}`;
    case 'secret': return 'a secret: a string, { value: "…" } or { file: "/path" }';
    case 'list': return 'a list';
    case 'map': return 'a mapping';
    case 'object': return 'a mapping of known keys';
    case 'other': return 'see the configuration reference';
  }
}

/** Describes one schema as a FieldInfo at `path`. */
export function fieldInfo(schema: z.ZodType, path: string[]): FieldInfo {
  const peeled = peel(schema);
  const kind = kindOf(peeled);
  const values = valuesOf(peeled.core);
  const { min, max } = rangeOf(peeled.core);
  return {
    path,
    kind,
    core: peeled.core,
    optional: peeled.optional,
    hasDefault: peeled.hasDefault,
    ...(peeled.hasDefault ? { defaultValue: peeled.defaultValue } : {}),
    ...(peeled.description !== undefined ? { description: peeled.description } : {}),
    ...(values !== undefined ? { values } : {}),
    ...(min !== undefined ? { min } : {}),
    ...(max !== undefined ? { max } : {}),
    accepted: peeled.accepted ?? describeAccepted(kind, values, min, max),
  };
}

/** Every key of the schema, depth first, objects before their children; lists/maps of objects are entered. */
export function listFields(schema: z.ZodType, path: string[] = []): FieldInfo[] {
  const out: FieldInfo[] = [];
  const info = fieldInfo(schema, path);
  if (path.length > 0) out.push(info);
  const core = info.core;
  if (core instanceof z.ZodObject) {
    for (const [key, child] of Object.entries(core.shape as Record<string, z.ZodType>)) {
      out.push(...listFields(child, [...path, key]));
    }
  } else if (core instanceof z.ZodArray || core instanceof z.ZodRecord) {
    const element = (core instanceof z.ZodArray ? core.element : core.valueType) as z.ZodType;
    if (peel(element).core instanceof z.ZodObject) {
      out.push(...listFields(element, [...path, core instanceof z.ZodArray ? '[]' : '<key>']).filter((f) => f.path.length > path.length + 1));
    }
  }
  return out;
}

/** The schema at a concrete path (list indices and map keys included), or undefined when no key is there. */
export function schemaAt(schema: z.ZodType, path: readonly PropertyKey[]): z.ZodType | undefined {
  let current: z.ZodType | undefined = schema;
  for (const segment of path) {
    if (current === undefined) return undefined;
    const core: z.ZodType = peel(current).core;
    if (core instanceof z.ZodObject) {
      const shape = core.shape as Record<string, z.ZodType>;
      current = typeof segment === 'string' && Object.hasOwn(shape, segment) ? shape[segment] : undefined;
    } else if (core instanceof z.ZodArray) {
      current = core.element as z.ZodType;
    } else if (core instanceof z.ZodRecord) {
      current = core.valueType as z.ZodType;
    } else {
      return undefined;
    }
  }
  return current;
}

/** Whether a concrete path is a secret or lies inside one. */
export function isSecretPath(schema: z.ZodType, path: readonly PropertyKey[]): boolean {
  for (let n = 1; n <= path.length; n++) {
    const at = schemaAt(schema, path.slice(0, n));
    if (at === undefined) return false;
    if (peel(at).secret) return true;
  }
  return false;
}

/** The known keys of the object at a concrete path (empty when it is not an object). */
export function keysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  const at = schemaAt(schema, path);
  if (at === undefined) return [];
  const core = peel(at).core;
  return core instanceof z.ZodObject ? Object.keys(core.shape as object) : [];
}
