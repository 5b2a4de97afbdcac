// Call recording: every resource request the authoriser saw, per identity, with its answer. The
// RBAC test (issue 19) derives the least privilege from these records and proves the shipped RBAC
// grants exactly that: nothing the code uses is missing, nothing granted goes unused.

import { nodeNameClaim, type RequestAttributes, type UserInfo } from './auth.js';

/** One authorised (or refused) resource request. */
export interface CallRecord {
  user: string;
  groups: string[];
  /** The node-name claim of the user's token, when it has one. */
  nodeName?: string;
  verb: string;
  apiGroup: string;
  resource: string;
  subresource: string;
  /** '' for cluster-scoped requests and for lists/watches across all namespaces. */
  namespace: string;
  /** The object's name; for list/watch the name a metadata.name field selector pins; '' for none (create, an unpinned list). */
  name: string;
  allowed: boolean;
}

/** Records calls while enabled; bounded so that a long test cannot grow it without end. */
export class CallRecorder {
  readonly calls: CallRecord[] = [];
  enabled: boolean;

  constructor(enabled = false, readonly max = 200_000) {
    this.enabled = enabled;
  }

  record(attrs: RequestAttributes, user: UserInfo, allowed: boolean): void {
    if (!this.enabled || attrs.path !== undefined || this.calls.length >= this.max) return;
    const node = user.extra?.[nodeNameClaim]?.[0];
    this.calls.push({
      user: user.name, groups: user.groups ?? [], ...(node ? { nodeName: node } : {}),
      verb: attrs.verb, apiGroup: attrs.apiGroup, resource: attrs.resource, subresource: attrs.subresource, namespace: attrs.namespace, name: attrs.name, allowed,
    });
  }

  clear(): void {
    this.calls.length = 0;
  }

  /** The calls of one user (by name). */
  of(user: string): CallRecord[] {
    return this.calls.filter((c) => c.user === user);
  }

  /**
   * What each identity did, deduplicated: `verb group/resource[/sub] ns=<ns> name=<pattern>`, the
   * name as a pattern — `<own node>` when it is the token's node-name claim, `<own node>.*` for a
   * name that starts with it (Events about the node), `*` when none was pinned, else the name.
   */
  summary(): Map<string, string[]> {
    const out = new Map<string, Set<string>>();
    for (const c of this.calls) {
      let s = out.get(c.user);
      if (!s) out.set(c.user, (s = new Set()));
      s.add(describeCall(c));
    }
    return new Map([...out].map(([u, set]) => [u, [...set].sort()]));
  }
}

/** The name as a pattern (see summary()). */
export function namePattern(c: Pick<CallRecord, 'name' | 'nodeName'>): string {
  if (!c.name) return '*';
  if (c.nodeName && c.name === c.nodeName) return '<own node>';
  if (c.nodeName && c.name.startsWith(`${c.nodeName}.`)) return '<own node>.*';
  return c.name;
}

/** One line per distinct call shape. */
export function describeCall(c: CallRecord): string {
  const res = `${c.apiGroup || 'core'}/${c.resource}${c.subresource ? `/${c.subresource}` : ''}`;
  return `${c.verb} ${res} ns=${c.namespace || '-'} name=${namePattern(c)}${c.allowed ? '' : ' DENIED'}`;
}
