import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import type { ConfigError } from './errors.js';
import { formatPath, suggest } from './errors.js';
import type { FieldInfo } from './walk.js';
import { keysAt, listFields } from './walk.js';

/** Prefix of every configuration environment variable. */
export const ENV_PREFIX = 'CONNWATCH_';

/** Environment variable naming the config file (the `--config` flag wins over it). */
export const CONFIG_PATH_ENV = 'CONNWATCH_CONFIG';

/** Suffix that reads a secret key's value from a file: CONNWATCH_ALERTS_…_ROUTINGKEY_FILE=/path. */
export const SECRET_FILE_SUFFIX = '_FILE';

/**
 * Kubernetes injects `<SERVICE>_SERVICE_HOST`, `<SERVICE>_PORT_…` for every Service in the
 * namespace; a Service named connwatch must not make the agent refuse to start.
 */
const serviceLinkVariable = /^CONNWATCH(_[A-Z0-9_]+)?_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)$/;

/** The env variable for a key path: CONNWATCH_ + the path's segments upper-cased, joined by "_". */
export function envName(path: readonly string[]): string {
  return ENV_PREFIX + path.map((segment) => segment.toUpperCase()).join('_');
}

/** Keys settable by env and `--set`: every key with a concrete path that is not an object of known keys. */
export function settableFields(schema: z.ZodType): FieldInfo[] {
  return listFields(schema).filter((f) => f.kind !== 'object' && !f.path.some((s) => s === '[]' || s === '<key>'));
}

/** A value pulled from env or flags, placed at its key path, with where it came from. */
export interface Override {
  path: string[];
  value: unknown;
  source: string;
}

type Coerced = { ok: true; value: unknown } | { ok: false; reason: string };

const truthy = new Set(['true', '1', 'yes', 'on']);
const falsy = new Set(['false', '0', 'no', 'off']);

/** Turns text from env or a flag into the key's type; the schema validates the result. */
export function coerceText(field: FieldInfo, text: string): Coerced {
  switch (field.kind) {
    case 'string':
    case 'secret':
      return { ok: true, value: text };
    case 'number':
    case 'integer':
      return /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text.trim())
        ? { ok: true, value: Number(text) }
        : { ok: false, reason: `"${text}" is not a number` };
    case 'boolean': {
      const lower = text.trim().toLowerCase();
      if (truthy.has(lower)) return { ok: true, value: true };
      if (falsy.has(lower)) return { ok: true, value: false };
      return { ok: false, reason: `"${text}" is not a boolean (true/false, 1/0, yes/no, on/off)` };
    }
    case 'enum': {
      const match = (field.values ?? []).find((v) => String(v) === text);
      return { ok: true, value: match ?? text };
    }
    case 'list':
    case 'map':
    case 'object':
    case 'other':
      return coerceStructured(field, text);
  }
}

function coerceStructured(field: FieldInfo, text: string): Coerced {
  try {
    const value: unknown = parseYaml(text);
    // "a, b" for a list means two items, each read as a YAML scalar ("4,6" → [4, 6]).
    if (field.kind === 'list' && (typeof value === 'string' || typeof value === 'number')) {
      return { ok: true, value: text.split(',').map((s) => s.trim()).filter((s) => s !== '').map((s): unknown => parseYaml(s)) };
    }
    return { ok: true, value };
  } catch (err) {
    return { ok: false, reason: `not valid YAML/JSON: ${(err as Error).message.split('\n')[0]}` };
  }
}

/** The word-split spelling people also type: stateDir → CONNWATCH_STATEDIR's alias CONNWATCH_STATE_DIR. */
export function envAlias(path: readonly string[]): string {
  return ENV_PREFIX + path.map((segment) => segment.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_');
}

/** Canonical names, plus word-split aliases where they differ and name one key only. */
function fieldByEnvName(schema: z.ZodType): { index: Map<string, FieldInfo>; canonical: string[] } {
  const fields = settableFields(schema);
  const index = new Map<string, FieldInfo>(fields.map((f) => [envName(f.path), f]));
  const canonical = [...index.keys()];
  const aliasCount = new Map<string, number>();
  for (const f of fields) aliasCount.set(envAlias(f.path), (aliasCount.get(envAlias(f.path)) ?? 0) + 1);
  for (const f of fields) {
    const alias = envAlias(f.path);
    if (!index.has(alias) && aliasCount.get(alias) === 1) index.set(alias, f);
  }
  return { index, canonical };
}

/** Reads every CONNWATCH_ variable; unknown names and uncoercible values are errors. Empty means unset. */
export function envOverrides(schema: z.ZodType, env: Readonly<Record<string, string | undefined>>): { overrides: Override[]; errors: ConfigError[] } {
  const { index, canonical } = fieldByEnvName(schema);
  const overrides: Override[] = [];
  const errors: ConfigError[] = [];
  const setBy = new Map<string, string>();
  for (const [name, text] of Object.entries(env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (!name.startsWith(ENV_PREFIX) || text === undefined || text === '' || name === CONFIG_PATH_ENV) continue;
    const direct = index.get(name);
    const fileOf = name.endsWith(SECRET_FILE_SUFFIX) ? index.get(name.slice(0, -SECRET_FILE_SUFFIX.length)) : undefined;
    const field = direct ?? (fileOf?.kind === 'secret' ? fileOf : undefined);
    const source = `env ${name}`;
    if (field === undefined) {
      if (serviceLinkVariable.test(name)) continue;
      const hint = suggest(name, [...canonical, CONFIG_PATH_ENV]);
      errors.push({
        code: 'unknown_env',
        path: '(environment)',
        given: name,
        accepted: `a ${ENV_PREFIX}… variable from the configuration reference (docs/configuration.md)`,
        message: `unknown environment variable ${name}${hint !== undefined ? ` — did you mean ${hint}?` : ''}`,
        source,
      });
      continue;
    }
    const key = formatPath(field.path);
    const earlier = setBy.get(key);
    if (earlier !== undefined) {
      errors.push({ code: 'bad_env_value', path: key, given: `${earlier} and ${name}`, accepted: 'one variable per key', message: `${earlier} and ${name} both set ${key}; keep one`, source });
      continue;
    }
    setBy.set(key, name);
    if (field === fileOf && direct === undefined) {
      overrides.push({ path: field.path, value: { file: text }, source });
      continue;
    }
    const coerced = coerceText(field, text);
    if (coerced.ok) overrides.push({ path: field.path, value: coerced.value, source });
    else errors.push({ code: 'bad_env_value', path: key, given: field.kind === 'secret' ? '[redacted]' : JSON.stringify(text), accepted: field.accepted, message: `bad value in ${name}: ${coerced.reason}`, source });
  }
  return { overrides, errors };
}

/** Flags the CLI offers as shorthands for common keys (each is also `--set <path>=…`). */
export const COMMON_FLAGS = {
  'log-level': ['log', 'level'],
  'state-dir': ['stateDir'],
  mode: ['mode'],
  listen: ['telemetry', 'listen'],
  node: ['node'],
  site: ['site'],
} as const satisfies Record<string, readonly string[]>;

/** The configuration flags as `node:util` parseArgs options, for the CLI to spread into its own. */
export const CONFIG_PARSE_ARGS_OPTIONS = {
  config: { type: 'string', short: 'c' },
  set: { type: 'string', multiple: true },
  'log-level': { type: 'string' },
  'state-dir': { type: 'string' },
  mode: { type: 'string' },
  listen: { type: 'string' },
  node: { type: 'string' },
  site: { type: 'string' },
} as const;

/** Configuration flags as parsed from argv. */
export type ConfigFlags = { set?: readonly string[] } & { [flag in keyof typeof COMMON_FLAGS]?: string };

function unknownKeyError(schema: z.ZodType, path: string[], source: string, given: string): ConfigError {
  let known = 0;
  while (known < path.length - 1 && keysAt(schema, path.slice(0, known + 1)).length > 0) known++;
  const keys = keysAt(schema, path.slice(0, known));
  const wrong = path[known] ?? '';
  const hint = suggest(wrong, keys);
  return {
    code: 'unknown_key',
    path: formatPath(path),
    given,
    accepted: keys.length > 0 ? `keys at ${formatPath(path.slice(0, known))}: ${keys.join(', ')}` : `a key path from the configuration reference`,
    message: `unknown key "${wrong}"${hint !== undefined ? ` — did you mean "${hint}"?` : ''}`,
    source,
  };
}

/** Reads the shorthand flags and every `--set path=value`; later flags win over earlier ones. */
export function flagOverrides(schema: z.ZodType, flags: ConfigFlags): { overrides: Override[]; errors: ConfigError[] } {
  const byPath = new Map(settableFields(schema).map((f) => [f.path.join('.'), f]));
  const overrides: Override[] = [];
  const errors: ConfigError[] = [];
  const take = (path: string[], text: string, source: string): void => {
    const field = byPath.get(path.join('.'));
    if (field === undefined) {
      errors.push(unknownKeyError(schema, path, source, JSON.stringify(path.join('.'))));
      return;
    }
    const coerced = coerceText(field, text);
    if (coerced.ok) overrides.push({ path: field.path, value: coerced.value, source });
    else errors.push({ code: 'bad_flag', path: formatPath(field.path), given: field.kind === 'secret' ? '[redacted]' : JSON.stringify(text), accepted: field.accepted, message: `bad flag value: ${coerced.reason}`, source });
  };
  for (const [flag, path] of Object.entries(COMMON_FLAGS)) {
    const text = flags[flag as keyof typeof COMMON_FLAGS];
    if (text !== undefined) take([...path], text, `flag --${flag}`);
  }
  for (const assignment of flags.set ?? []) {
    const eq = assignment.indexOf('=');
    const key = eq < 0 ? assignment : assignment.slice(0, eq);
    if (eq <= 0) {
      errors.push({ code: 'bad_flag', path: key === '' ? '(flags)' : key, given: JSON.stringify(key), accepted: '--set <key.path>=<value>', message: 'missing "=": write --set log.level=debug', source: '--set' });
      continue;
    }
    take(key.split('.'), assignment.slice(eq + 1), `flag --set ${key}`);
  }
  return { overrides, errors };
}
