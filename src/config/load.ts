import { existsSync, readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { Document, Node as YamlNode } from 'yaml';
import type { z } from 'zod';
import type { ConfigError, ConfigErrorCode } from './errors.js';
import { describeGiven, formatPath, suggest } from './errors.js';
import { detectMode } from './mode.js';
import type { ConfigFlags, Override } from './overrides.js';
import { CONFIG_PATH_ENV, envOverrides, flagOverrides } from './overrides.js';
import type { Config } from './schema.js';
import { configSchema, resolveConfig } from './schema.js';
import { fieldInfo, isSecretPath, keysAt, schemaAt } from './walk.js';

/** What start-up hands to loadConfig; the outside world is injectable for tests. */
export interface LoadConfigInput {
  /** `--config`; falls back to $CONNWATCH_CONFIG; neither means embedded defaults only. */
  configPath?: string;
  env?: Readonly<Record<string, string | undefined>>;
  flags?: ConfigFlags;
  hostname?: string;
  /** Where mode detection looks for the service-account token. */
  tokenPath?: string;
  fileExists?: (path: string) => boolean;
}

/** The validated configuration, or every mistake found. */
export type LoadConfigResult =
  | { ok: true; config: Config; modeReason: string; configPath?: string; sources: Record<string, string> }
  | { ok: false; errors: ConfigError[] };

/** A parsed file kept for pointing errors at their line and column. */
interface FileView {
  name: string;
  doc: Document;
  lines: LineCounter;
}

type PlainObject = Record<string, unknown>;

function isPlainObject(value: unknown): value is PlainObject {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Raised when YAML aliases make the document refer to itself. */
class CyclicDocument extends Error {}

/** An empty YAML value ("signals:" with everything commented out) means "defaults", not null. */
function dropNulls(value: unknown, inside: ReadonlySet<unknown> = new Set()): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (inside.has(value)) throw new CyclicDocument('YAML aliases refer to their own ancestor (a cycle)');
  const path = new Set(inside).add(value);
  if (Array.isArray(value)) return value.map((item) => dropNulls(item, path));
  const out: PlainObject = {};
  for (const [key, child] of Object.entries(value)) if (child !== null) out[key] = dropNulls(child, path);
  return out;
}

function readConfigFile(path: string): { ok: true; raw: PlainObject; view: FileView } | { ok: false; errors: ConfigError[] } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    return {
      ok: false,
      errors: [{ code: 'unreadable_file', path: '(config file)', given: JSON.stringify(path), accepted: 'a readable YAML file', message: `cannot read the config file: ${code}; check --config / ${CONFIG_PATH_ENV}`, source: path }],
    };
  }
  const lines = new LineCounter();
  // prettyErrors off: the pretty form quotes source lines, which may hold secrets.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number): string => {
    const pos = lines.linePos(offset);
    return `${path}:${pos.line}:${pos.col}`;
  };
  if (doc.errors.length > 0) {
    return {
      ok: false,
      errors: doc.errors.map((e) => {
        const pos = lines.linePos(e.pos[0]);
        return { code: 'bad_yaml', path: '(config file)', given: `line ${pos.line}, column ${pos.col}`, accepted: 'YAML: a mapping of configuration keys', message: `bad YAML: ${e.message.split('\n')[0]}`, source: at(e.pos[0]) };
      }),
    };
  }
  let raw: unknown;
  try {
    raw = dropNulls(doc.toJS({ maxAliasCount: 100 }) ?? {});
  } catch (err) {
    // Unresolved or cyclic aliases, alias bombs: structure errors yaml reports only on conversion.
    return { ok: false, errors: [{ code: 'bad_yaml', path: '(config file)', given: 'aliases (*name)', accepted: 'YAML: a mapping of configuration keys', message: `bad YAML: ${(err as Error).message.split('\n')[0]}`, source: path }] };
  }
  if (!isPlainObject(raw)) {
    return { ok: false, errors: [{ code: 'bad_yaml', path: '(config file)', given: describeGiven(raw), accepted: 'YAML: a mapping of configuration keys', message: 'the file must be a mapping at its top level (key: value lines)', source: path }] };
  }
  return { ok: true, raw, view: { name: path, doc, lines } };
}

/** Places a value at a key path, replacing whatever non-mapping stood in the way. */
function setAt(target: PlainObject, path: readonly string[], value: unknown): void {
  let node = target;
  for (const segment of path.slice(0, -1)) {
    const next = node[segment];
    if (!isPlainObject(next)) node[segment] = {};
    node = node[segment] as PlainObject;
  }
  const last = path[path.length - 1];
  if (last !== undefined) node[last] = value;
}

function getAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let node = root;
  for (const segment of path) {
    if (Array.isArray(node) && typeof segment === 'number') node = node[segment];
    else if (isPlainObject(node) && typeof segment === 'string') node = node[segment];
    else return undefined;
  }
  return node;
}

/** file:line:col of the deepest YAML node along the path (the key itself where there is one). */
function locate(view: FileView, path: readonly PropertyKey[]): string | undefined {
  let node: unknown = view.doc.contents;
  let offset: number | undefined;
  for (const segment of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
      if (pair === undefined) break;
      offset = (pair.key as YamlNode).range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number') {
      const item = node.items[segment] as YamlNode | undefined;
      if (item === undefined) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else {
      break;
    }
  }
  if (offset === undefined) return undefined;
  const pos = view.lines.linePos(offset);
  return `${view.name}:${pos.line}:${pos.col}`;
}

interface Provenance {
  raw: unknown;
  origins: Map<string, string>;
  view?: FileView;
}

function sourceOf(prov: Provenance, path: readonly PropertyKey[]): string {
  for (let n = path.length; n > 0; n--) {
    const origin = prov.origins.get(formatPath(path.slice(0, n)));
    if (origin !== undefined) return origin;
  }
  return (prov.view && locate(prov.view, path)) ?? 'defaults';
}

function issueToErrors(schema: z.ZodType, issue: z.core.$ZodIssue, prov: Provenance): ConfigError[] {
  const path = issue.path;
  if (issue.code === 'unrecognized_keys') {
    const keys = keysAt(schema, path);
    const parent = schemaAt(schema, path);
    // Inside a union (a secret's { value } / { file } forms) there is no key list; say what the union takes.
    const acceptedHere = keys.length > 0 ? `keys at ${formatPath(path)}: ${keys.join(', ')}` : parent !== undefined ? fieldInfo(parent, path.map(String)).accepted : 'see the configuration reference';
    return issue.keys.map((key) => {
      const hint = suggest(key, keys);
      return {
        code: 'unknown_key' as const,
        path: formatPath([...path, key]),
        given: `key ${JSON.stringify(key)}`,
        accepted: acceptedHere,
        message: `unknown key "${key}"${hint !== undefined ? ` — did you mean "${hint}"?` : ''}`,
        source: sourceOf(prov, [...path, key]),
      };
    });
  }
  const at = schemaAt(schema, path);
  const field = at === undefined ? undefined : fieldInfo(at, path.map(String));
  const value = getAt(prov.raw, path);
  const secret = isSecretPath(schema, path);
  const given = secret && value !== undefined ? '[redacted]' : describeGiven(value);
  let accepted = field?.accepted ?? 'see the configuration reference';
  let message: string;
  let code: ConfigErrorCode;
  switch (issue.code) {
    case 'invalid_type':
      code = value === undefined ? 'required' : 'wrong_type';
      message = value === undefined ? 'required, not set' : `wrong type: expected ${issue.expected}`;
      break;
    case 'invalid_value':
      code = 'bad_enum';
      accepted = `one of: ${issue.values.map((v) => String(v)).join(', ')}`;
      message = 'not one of the accepted values';
      break;
    case 'too_small':
    case 'too_big': {
      const bound = issue.code === 'too_small' ? issue.minimum : issue.maximum;
      const side = issue.code === 'too_small' ? 'below the minimum' : 'above the maximum';
      code = 'out_of_range';
      message = `out of range: ${side} ${String(bound)}${issue.origin === 'string' || issue.origin === 'array' ? ` (${issue.origin === 'string' ? 'length' : 'items'})` : ''}`;
      break;
    }
    case 'invalid_union':
      code = value === undefined ? 'required' : secret ? 'bad_secret' : 'wrong_type';
      message = value === undefined ? 'required, not set' : 'matches none of the accepted forms';
      break;
    default:
      // Custom checks (secret files, host:port) write operator-ready messages; a secret's only custom check reads its file.
      code = secret && issue.code === 'custom' ? 'unreadable_secret' : 'bad_value';
      message = issue.message;
  }
  return [{ code, path: formatPath(path), given, accepted, message, source: sourceOf(prov, path) }];
}

function applyOverrides(raw: PlainObject, overrides: readonly Override[], origins: Map<string, string>): void {
  for (const o of overrides) {
    setAt(raw, o.path, o.value);
    origins.set(formatPath(o.path), o.source);
  }
}

/**
 * Builds the configuration: YAML file < CONNWATCH_ env < flags, validated against the one
 * schema, then the mode decided and mode-dependent defaults filled. Never throws for a bad
 * configuration; returns every mistake with its path, what was given and what is accepted.
 */
export function loadConfig(input: LoadConfigInput = {}, schema: typeof configSchema = configSchema): LoadConfigResult {
  const env = input.env ?? {};
  const configPath = input.configPath ?? (env[CONFIG_PATH_ENV] || undefined);
  const errors: ConfigError[] = [];
  let raw: PlainObject = {};
  let view: FileView | undefined;
  let fileUsable = true;
  if (configPath !== undefined) {
    const file = readConfigFile(configPath);
    if (file.ok) ({ raw, view } = file);
    else {
      errors.push(...file.errors);
      fileUsable = false;
    }
  }
  const origins = new Map<string, string>();
  const fromEnv = envOverrides(schema, env);
  const fromFlags = flagOverrides(schema, input.flags ?? {});
  errors.push(...fromEnv.errors, ...fromFlags.errors);
  // Without the file, validating the rest would report defaults the file might have replaced.
  if (!fileUsable) return { ok: false, errors };
  applyOverrides(raw, fromEnv.overrides, origins);
  applyOverrides(raw, fromFlags.overrides, origins);

  const parsed = schema.safeParse(raw);
  const prov: Provenance = { raw, origins, ...(view ? { view } : {}) };
  if (!parsed.success) errors.push(...parsed.error.issues.flatMap((issue) => issueToErrors(schema, issue, prov)));
  if (errors.length > 0 || !parsed.success) return { ok: false, errors };

  const decision = detectMode({
    configured: parsed.data.mode,
    env,
    ...(input.tokenPath !== undefined ? { tokenPath: input.tokenPath } : {}),
    fileExists: input.fileExists ?? existsSync,
  });
  if (!decision.ok) {
    return { ok: false, errors: [{ code: 'ambiguous_mode', path: 'mode', given: '"auto"', accepted: 'kubernetes, baremetal, or auto where unambiguous', message: `${decision.reason}: ${decision.hint}`, source: sourceOf(prov, ['mode']) }] };
  }
  const config = resolveConfig(parsed.data, decision.mode, input.hostname ?? osHostname());
  return { ok: true, config, modeReason: decision.reason, ...(configPath !== undefined ? { configPath } : {}), sources: Object.fromEntries(origins) };
}
