/** The class of a configuration mistake: stable, for tests and tools; the message is for people. */
export type ConfigErrorCode =
  | 'unreadable_file'
  | 'bad_yaml'
  | 'unknown_key'
  | 'unknown_env'
  | 'bad_env_value'
  | 'bad_flag'
  | 'wrong_type'
  | 'required'
  | 'out_of_range'
  | 'bad_enum'
  | 'bad_value'
  | 'bad_secret'
  | 'unreadable_secret'
  | 'ambiguous_mode';

/** One configuration mistake: where, what was given, what is accepted, and what to do. */
export interface ConfigError {
  code: ConfigErrorCode;
  /** Key path ("telemetry.listen", "alerts.sinks[0].url"), or "(config file)" / "(environment)". */
  path: string;
  /** What was given, quoted; "[redacted]" for secrets, "(not set)" when absent. */
  given: string;
  /** What the key accepts. */
  accepted: string;
  message: string;
  /** Where the value came from: "file.yaml:3:5", "env CONNWATCH_LOG_LEVEL", "flag --set …". */
  source?: string;
}

/** Renders key paths the way operators write them: dots, and [n] for list items. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? String(segment) : `.${String(segment)}`;
  }
  return out === '' ? '(top level)' : out;
}

/** Shows a given value briefly: scalars as JSON, containers by shape (never their contents). */
export function describeGiven(value: unknown): string {
  if (value === undefined) return '(not set)';
  if (Array.isArray(value)) return `a list of ${value.length} item${value.length === 1 ? '' : 's'}`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value);
    return keys.length === 0 ? 'an empty mapping' : `a mapping with keys ${keys.join(', ')}`;
  }
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j] ?? 0;
      row[j] = Math.min(above + 1, (row[j - 1] ?? 0) + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length] ?? 0;
}

/** The closest candidate to a mistyped name, when one is close enough to be a likely typo. */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  const lower = word.toLowerCase();
  const folded = (s: string): string => s.toLowerCase().replace(/[-_]/g, '');
  const exactish = candidates.find((c) => folded(c) === folded(word));
  if (exactish !== undefined) return exactish;
  let best: { name: string; distance: number } | undefined;
  for (const candidate of candidates) {
    const distance = editDistance(lower, candidate.toLowerCase());
    if (best === undefined || distance < best.distance) best = { name: candidate, distance };
  }
  if (best === undefined) return undefined;
  return best.distance <= Math.max(2, Math.floor(word.length / 3)) ? best.name : undefined;
}

/** The text the CLI prints before exiting 2: one block per mistake. */
export function formatConfigErrors(errors: readonly ConfigError[]): string {
  const lines = [`configuration: ${errors.length} error${errors.length === 1 ? '' : 's'}`];
  for (const error of errors) {
    lines.push(`- ${error.path}${error.source !== undefined ? `  (${error.source})` : ''}`);
    lines.push(`    given:    ${error.given}`);
    lines.push(`    accepted: ${error.accepted}`);
    lines.push(`    ${error.message}`);
  }
  return `${lines.join('\n')}\n`;
}
