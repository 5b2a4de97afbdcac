import type { Alert } from '../types.js';

/** The variables a dedup-key template may use. */
export const TEMPLATE_VARIABLES = ['site', 'node', 'cause', 'severity', 'id'] as const;
type TemplateVariable = (typeof TEMPLATE_VARIABLES)[number];

/** PagerDuty's documented limit on dedup_key. */
export const MAX_KEY_LENGTH = 255;

const PLACEHOLDER = /\{\{\s*([^}]*?)\s*\}\}/g;

/** Why a template is unusable, or undefined when it is fine (checked at config load). */
export function templateProblem(template: string): string | undefined {
  if (template === '') return undefined;
  const unknown = [...template.matchAll(PLACEHOLDER)]
    .map((m) => m[1] ?? '')
    .filter((name) => !(TEMPLATE_VARIABLES as readonly string[]).includes(name));
  if (unknown.length > 0) {
    return `unknown template variable(s) ${unknown.map((u) => `{{${u}}}`).join(', ')}; accepted: ${TEMPLATE_VARIABLES.map((v) => `{{${v}}}`).join(', ')}`;
  }
  if (!/\{\{[^}]*\}\}/.test(template)) return 'a dedup-key template needs at least one variable, e.g. {{site}}/{{node}}/{{cause}}';
  return undefined;
}

/** Renders a dedup key for an alert; over-long keys keep their head and end in a short hash. */
export function renderKey(template: string, alert: Pick<Alert, TemplateVariable>): string {
  const key = template.replace(PLACEHOLDER, (_all, name: string) => String(alert[name as TemplateVariable] ?? ''));
  if (key.length <= MAX_KEY_LENGTH) return key;
  const tail = `#${fnv1a(key)}`;
  return key.slice(0, MAX_KEY_LENGTH - tail.length) + tail;
}

function fnv1a(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, '0');
}
