/**
 * Helpers for the deployment tests (issue 19): the kustomize base rendered by the real kubectl, and
 * the ValidatingAdmissionPolicy evaluated as the API server's admission evaluates it — match
 * constraints, match conditions, variables, validations (failurePolicy Fail: an evaluation error
 * denies) — with @marcbachmann/cel-js. The policy uses only standard CEL (`in`, `size`, `has`,
 * comparisons), no Kubernetes library functions, so none needs registering. JSON integers become
 * CEL ints (BigInt), as the API server's typed objects are.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { evaluate } from '@marcbachmann/cel-js';
import { parseAllDocuments } from 'yaml';

export const ROOT = resolve(import.meta.dirname, '../../..');
export const BASE = join(ROOT, 'deploy/kubernetes');

/** A rendered Kubernetes object. */
export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [k: string]: unknown };

/** `kubectl kustomize DIR` with the real kubectl, parsed. */
export function kustomize(dir: string = BASE): K8sObject[] {
  const home = mkdtempSync(join(tmpdir(), 'cw-kustomize-'));
  try {
    const text = execFileSync('/usr/bin/kubectl', ['kustomize', dir], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home }, timeout: 30_000 });
    return parseAllDocuments(text).map((d) => d.toJS() as K8sObject).filter(Boolean);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

/** JSON → CEL values: integers become BigInt (CEL int); everything else as is. */
export function celValue(v: unknown): unknown {
  if (typeof v === 'number') return Number.isInteger(v) ? BigInt(v) : v;
  if (Array.isArray(v)) return v.map(celValue);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, celValue(x)]));
  return v;
}

/** admission.k8s.io/v1 AdmissionRequest, the fields a policy reads. */
export interface AdmissionRequest {
  operation: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
  name: string;
  namespace: string;
  resource: { group: string; version: string; resource: string };
  subResource: string;
  kind: { group: string; version: string; kind: string };
  userInfo: { username: string; uid?: string; groups: string[]; extra?: Record<string, string[]> };
  dryRun?: boolean;
}

export interface Admission {
  request: AdmissionRequest;
  object: Record<string, unknown> | null;
  oldObject: Record<string, unknown> | null;
}

export interface PolicyResult {
  /** The policy applies to this request (match constraints and match conditions). */
  matched: boolean;
  allowed: boolean;
  messages: string[];
}

type Policy = {
  spec: {
    failurePolicy?: 'Fail' | 'Ignore';
    matchConstraints: { resourceRules: { apiGroups: string[]; apiVersions: string[]; resources: string[]; operations: string[] }[] };
    matchConditions?: { name: string; expression: string }[];
    variables?: { name: string; expression: string }[];
    validations: { expression: string; message?: string; messageExpression?: string; reason?: string }[];
  };
};

const matches = (list: string[], v: string) => list.includes('*') || list.includes(v);

/** Evaluates a ValidatingAdmissionPolicy (bound with validationActions [Deny]) on one request. */
export function evaluatePolicy(policy: Policy, a: Admission): PolicyResult {
  const { spec } = policy;
  const r = a.request;
  const res = r.subResource ? `${r.resource.resource}/${r.subResource}` : r.resource.resource;
  const ruleMatch = spec.matchConstraints.resourceRules.some((rule) =>
    matches(rule.apiGroups, r.resource.group) && matches(rule.apiVersions, r.resource.version) && matches(rule.resources, res) && (matches(rule.operations, r.operation)));
  if (!ruleMatch) return { matched: false, allowed: true, messages: [] };
  const ctx: Record<string, unknown> = { request: celValue({ ...r, userInfo: { extra: {}, ...r.userInfo } }), object: celValue(a.object), oldObject: celValue(a.oldObject), variables: {} };
  const fail = (m: string): PolicyResult => (spec.failurePolicy === 'Ignore' ? { matched: true, allowed: true, messages: [m] } : { matched: true, allowed: false, messages: [m] });
  try {
    for (const c of spec.matchConditions ?? []) if (evaluate(c.expression, ctx) !== true) return { matched: false, allowed: true, messages: [] };
    const vars = ctx.variables as Record<string, unknown>;
    for (const v of spec.variables ?? []) vars[v.name] = evaluate(v.expression, ctx);
    const messages: string[] = [];
    for (const v of spec.validations) {
      if (evaluate(v.expression, ctx) === true) continue;
      messages.push(v.messageExpression ? String(evaluate(v.messageExpression, ctx)) : (v.message ?? `failed expression: ${v.expression}`));
    }
    return { matched: true, allowed: messages.length === 0, messages };
  } catch (e) {
    return fail(`expression evaluation failed: ${(e as Error).message}`);
  }
}

/** Every bound policy is evaluated; a request passes when each policy that matches it allows it. */
export function evaluatePolicies(policies: Policy[], a: Admission): PolicyResult {
  const results = policies.map((p) => evaluatePolicy(p, a)).filter((r) => r.matched);
  return { matched: results.length > 0, allowed: results.every((r) => r.allowed), messages: results.flatMap((r) => r.messages) };
}

const NODE_CLAIM = 'authentication.kubernetes.io/node-name';

/** A service account's user info as the token authenticator builds it (with the node claim when given). */
export function saUser(namespace: string, name: string, node?: string): AdmissionRequest['userInfo'] {
  return {
    username: `system:serviceaccount:${namespace}:${name}`,
    groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
    ...(node ? { extra: { [NODE_CLAIM]: [node], 'authentication.kubernetes.io/pod-name': [`connwatch-agent-${node}`] } } : {}),
  };
}

/** The resource, version and kind of the requests the agent makes. */
export const RESOURCE_OF: Record<string, { group: string; version: string; resource: string; kind: string }> = {
  'connwatch.io/connwatchnodes': { group: 'connwatch.io', version: 'v1alpha1', resource: 'connwatchnodes', kind: 'ConnwatchNode' },
  'core/events': { group: '', version: 'v1', resource: 'events', kind: 'Event' },
  'core/nodes': { group: '', version: 'v1', resource: 'nodes', kind: 'Node' },
};
