import type { z } from 'zod';
import type { Mode } from '../types.js';
import { HEARTBEAT_MAX_AGE_SECONDS, heartbeatCheckCommand } from '../telemetry/heartbeat.js';
import { COMMON_FLAGS, CONFIG_PATH_ENV, envName, SECRET_FILE_SUFFIX } from './overrides.js';
import { configSchema, resolveActionDefaults } from './schema.js';
import type { FieldInfo } from './walk.js';
import { listFields } from './walk.js';

const MODES: Mode[] = ['kubernetes', 'baremetal'];

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');
}

function typeOf(field: FieldInfo): string {
  switch (field.kind) {
    case 'enum': return (field.values ?? []).map((v) => `\`${String(v)}\``).join(' | ');
    case 'string':
      if (field.min === 1 && field.max === undefined) return 'string, non-empty';
      return field.min !== undefined || field.max !== undefined ? `string, length ${field.min ?? 0}..${field.max ?? ''}` : 'string';
    case 'integer':
    case 'number': {
      const range = field.min !== undefined || field.max !== undefined ? ` ${field.min ?? ''}..${field.max ?? ''}` : '';
      return `${field.kind}${range}`;
    }
    default: return field.kind;
  }
}

function defaultOf(field: FieldInfo): string {
  if (!field.hasDefault) return field.optional ? '—' : 'required';
  // A mapping's defaults are its keys' defaults, listed on their own rows.
  if (field.kind === 'object' && field.defaultValue !== null && typeof field.defaultValue === 'object') return '—';
  return `\`${JSON.stringify(field.defaultValue)}\``;
}

function envOf(field: FieldInfo): string {
  if (field.kind === 'object' || field.path.some((s) => s === '[]' || s === '<key>')) return '';
  const name = envName(field.path);
  return field.kind === 'secret' ? `\`${name}\`, \`${name}${SECRET_FILE_SUFFIX}\`` : `\`${name}\``;
}

function row(field: FieldInfo): string {
  const key = field.path.join('.').replace(/\.\[\]/g, '[]').replace(/\.<key>/g, '.<key>');
  return `| \`${key}\` | ${cell(typeOf(field))} | ${cell(defaultOf(field))} | ${envOf(field)} | ${cell(field.description ?? '')} |`;
}

const intro = (): string => `# Configuration reference

Generated from the schema (\`src/config/schema.ts\` and each box's \`config.ts\`) by
\`npm run docs:config\`; a test fails when this file and the schema disagree. Do not edit by hand.

## Where values come from

One YAML file (\`--config FILE\`, or \`$${CONFIG_PATH_ENV}\`), then environment variables, then
flags — later wins. With none of them connwatch runs on the defaults below. Everything is
validated at start against one schema; a mistake (unknown key, wrong type, out-of-range value,
bad enum, unreadable file or secret file, bad YAML, bad environment value) is printed with its
path, where it came from (file:line:column, variable or flag), what was given and what is
accepted, and the process exits 2 without starting anything.

- **File**: YAML 1.2 (\`on\`/\`off\` are strings, as the action settings want). An empty value
  (\`signals:\` with everything commented out) means "the defaults". Unknown keys are errors,
  with a "did you mean".
- **Environment**: every key that is not a mapping of known keys has a variable:
  \`CONNWATCH_\` + the key path upper-cased, dots as \`_\` (\`telemetry.listen\` →
  \`CONNWATCH_TELEMETRY_LISTEN\`). Values are read as the key's type: numbers, booleans
  (\`true/false\`, \`1/0\`, \`yes/no\`, \`on/off\`), enum names; lists as \`a,b\` or YAML/JSON
  (\`[4, 6]\`); mappings as YAML/JSON. The word-split spelling is accepted too
  (\`stateDir\` → \`CONNWATCH_STATEDIR\` or \`CONNWATCH_STATE_DIR\`; setting both is an error).
  An empty variable counts as unset. Unknown \`CONNWATCH_…\`
  variables are errors, except the \`…_SERVICE_HOST\` / \`…_PORT…\` variables Kubernetes injects
  for Services.
- **Flags**: \`--set key.path=value\` (repeatable; values read as for the environment) and the
  shorthands ${Object.entries(COMMON_FLAGS).map(([flag, path]) => `\`--${flag}\` (\`${path.join('.')}\`)`).join(', ')}.
- **Secrets** (type \`secret\`): a string, \`{ value: "…" }\`, or \`{ file: "/path" }\` (read at
  start, trailing newline dropped). In the environment, \`…_FILE=/path\` reads the file. Secrets are
  never printed: errors, logs and \`/status\` show \`[redacted]\`. Prefer files: flags show in \`ps\`.

## Mode

\`mode: auto\` picks \`kubernetes\` only when \`KUBERNETES_SERVICE_HOST\` is set **and** the
service-account token exists (\`/var/run/secrets/kubernetes.io/serviceaccount/token\`); with
neither it is \`baremetal\`. A pod without its token (the variable set, no token) is a
configuration error — set \`automountServiceAccountToken\`, or \`mode: baremetal\` — never a
silent fall-back. The decision and its reason are logged at start.

Action defaults by mode (an explicit \`actions.<name>\` wins):

| action | ${MODES.join(' | ')} |
|---|${MODES.map(() => '---').join('|')}|
${(['restore', 'restartCilium', 'quarantine'] as const).map((a) => `| \`${a}\` | ${MODES.map((m) => `\`${resolveActionDefaults(m)[a]}\``).join(' | ')} |`).join('\n')}

## Liveness without the network

The main loop touches \`telemetry.heartbeatFile\` (default \`<stateDir>/heartbeat\`) every turn.
This check needs only \`sh\` and coreutils — exit 0 while the file is younger than ${HEARTBEAT_MAX_AGE_SECONDS} s
(\`systemd/connwatch-liveness.timer\` runs it every 15 s and restarts the agent when it fails):

\`\`\`sh
${heartbeatCheckCommand('/var/lib/connwatch/heartbeat', HEARTBEAT_MAX_AGE_SECONDS)}
\`\`\`

\`/healthz\` on the telemetry server answers 503 when a loop has not turned for
\`telemetry.staleAfterSeconds\`; \`/readyz\` is 200 once started — nothing more.
`;

/** The whole reference page, deterministic for a given schema. */
export function renderConfigDocs(schema: z.ZodType = configSchema): string {
  const fields = listFields(schema);
  const sections = new Map<string, FieldInfo[]>();
  for (const field of fields) {
    const top = field.path[0] ?? '';
    const group = fields.some((f) => f.path.length === 1 && f.path[0] === top && f.kind === 'object') ? top : '';
    sections.set(group, [...(sections.get(group) ?? []), field]);
  }
  const header = '| key | type | default | env | description |\n|---|---|---|---|---|';
  const parts = [intro(), '## Keys\n'];
  for (const [group, members] of sections) {
    const top = fields.find((f) => f.path.length === 1 && f.path[0] === group);
    parts.push(group === '' ? '### Top level\n' : `### \`${group}\`\n`);
    if (top?.description && group !== '') parts.push(`${top.description}\n`);
    const rows = members.filter((f) => group === '' || f.path.length > 1).map(row);
    parts.push(rows.length > 0 ? `${header}\n${rows.join('\n')}\n` : 'No keys yet.\n');
  }
  return parts.join('\n');
}
