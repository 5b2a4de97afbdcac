// Label selectors (=, ==, !=, in, notin, exists, !exists, gt, lt), field selectors (=, ==, !=)
// and metav1.LabelSelector objects, parsed as k8s.io/apimachinery parses them.

import { errors } from './errors.js';
import type { FieldGetter } from './resources.js';
import type { KObject } from './store.js';

type Labels = Record<string, string> | undefined;

interface Requirement { key: string; op: 'in' | 'notin' | 'exists' | '!' | '=' | '!=' | 'gt' | 'lt'; values: string[] }

/** A parsed label selector; matches everything when empty. */
export type LabelMatcher = (labels: Labels) => boolean;

const keyRe = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const valueRe = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function bad(msg: string): never {
  throw errors.badRequest(`unable to parse requirement: ${msg}`);
}

function checkKey(k: string): string {
  if (!keyRe.test(k) || k.length > 317) bad(`<nil>: Invalid value: "${k}": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`);
  return k;
}

function checkValue(v: string): string {
  if (v.length > 63 || !valueRe.test(v)) bad(`values[0][${v}]: Invalid value: "${v}": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`);
  return v;
}

/** Splits on commas outside parentheses. */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

export function parseLabelSelector(sel: string | null | undefined): LabelMatcher {
  if (!sel || !sel.trim()) return () => true;
  const reqs: Requirement[] = splitTop(sel).map((raw) => {
    const part = raw.trim();
    if (!part) bad(`found '', expected: identifier`);
    let m: RegExpMatchArray | null;
    if ((m = part.match(/^!\s*(\S+)$/))) return { key: checkKey(m[1]!), op: '!', values: [] };
    if ((m = part.match(/^(\S+?)\s+(in|notin)\s*\((.*)\)$/))) {
      const values = m[3]!.split(',').map((v) => checkValue(v.trim()));
      return { key: checkKey(m[1]!), op: m[2] as 'in' | 'notin', values };
    }
    if ((m = part.match(/^([^=!<>\s]+)\s*(==|=|!=|>|<)\s*(.*)$/))) {
      const op = m[2] === '!=' ? '!=' : m[2] === '>' ? 'gt' : m[2] === '<' ? 'lt' : '=';
      const v = m[3]!.trim();
      if ((op === 'gt' || op === 'lt') && !/^-?\d+$/.test(v)) bad(`for 'Gt', 'Lt' operators, the value must be an integer`);
      return { key: checkKey(m[1]!), op, values: [op === 'gt' || op === 'lt' ? v : checkValue(v)] };
    }
    if (/^\S+$/.test(part)) return { key: checkKey(part), op: 'exists', values: [] };
    return bad(`found '${part}', expected: in, notin, =, ==, !=, gt, lt`);
  });
  return (labels) => reqs.every((r) => matchReq(r, labels));
}

function matchReq(r: Requirement, labels: Labels): boolean {
  const has = labels !== undefined && Object.prototype.hasOwnProperty.call(labels, r.key);
  const v = has ? labels![r.key]! : undefined;
  switch (r.op) {
    case 'exists': return has;
    case '!': return !has;
    case '=': return has && v === r.values[0];
    case '!=': return !has || v !== r.values[0];
    case 'in': return has && r.values.includes(v!);
    case 'notin': return !has || !r.values.includes(v!);
    case 'gt': return has && /^-?\d+$/.test(v!) && Number(v) > Number(r.values[0]);
    case 'lt': return has && /^-?\d+$/.test(v!) && Number(v) < Number(r.values[0]);
  }
}

/** A parsed field selector; matches everything when empty. Fields outside the resource's set → 400. */
export interface FieldMatcher {
  matches(obj: KObject): boolean;
  /** The value of `metadata.name=` when the selector pins one name (authorisation reads it). */
  name?: string;
  empty: boolean;
}

export function parseFieldSelector(sel: string | null | undefined, fields: Record<string, FieldGetter>): FieldMatcher {
  if (!sel || !sel.trim()) return { matches: () => true, empty: true };
  const terms: { get: FieldGetter; op: '=' | '!='; value: string; field: string }[] = [];
  for (const raw of splitEscaped(sel, ',')) {
    const m = raw.match(/^((?:[^=!\\]|\\.)*?)(==|=|!=)(.*)$/);
    if (!m) throw errors.badRequest(`invalid selector: '${sel}'; can't understand '${raw}'`);
    const field = m[1]!.trim();
    const value = unescape(m[3]!);
    const get: FieldGetter | undefined =
      field === 'metadata.name' ? (o) => o.metadata.name : field === 'metadata.namespace' ? (o) => o.metadata.namespace ?? '' : fields[field];
    if (!get) throw errors.badRequest(`field label not supported: ${field}`);
    terms.push({ get, op: m[2] === '!=' ? '!=' : '=', value, field });
  }
  const nameTerm = terms.find((t) => t.field === 'metadata.name' && t.op === '=');
  const out: FieldMatcher = {
    matches: (o) => terms.every((t) => (t.op === '=' ? t.get(o) === t.value : t.get(o) !== t.value)),
    empty: false,
  };
  if (nameTerm) out.name = nameTerm.value;
  return out;
}

function splitEscaped(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (ch === '\\' && i + 1 < s.length) {
      cur += ch + s[++i];
    } else if (ch === sep) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

function unescape(s: string): string {
  return s.replace(/\\(.)/g, '$1');
}

/** metav1.LabelSelector (matchLabels + matchExpressions); a null selector matches nothing, an empty one everything. */
export function labelSelectorObject(sel: KObject | null | undefined): LabelMatcher {
  if (!sel) return () => false;
  const reqs: Requirement[] = [];
  for (const [k, v] of Object.entries((sel.matchLabels ?? {}) as Record<string, string>)) reqs.push({ key: k, op: '=', values: [v] });
  for (const e of (sel.matchExpressions ?? []) as { key: string; operator: string; values?: string[] }[]) {
    const op = ({ In: 'in', NotIn: 'notin', Exists: 'exists', DoesNotExist: '!' } as const)[e.operator as 'In'];
    if (!op) throw errors.badRequest(`"${e.operator}" is not a valid label selector operator`);
    reqs.push({ key: e.key, op, values: e.values ?? [] });
  }
  return (labels) => reqs.every((r) => matchReq(r, labels));
}
