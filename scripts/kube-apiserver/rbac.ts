// RBAC objects (ClusterRole, Role, ClusterRoleBinding, RoleBinding) → this server's authorisation
// table, with the RBAC authoriser's semantics: a ClusterRoleBinding grants its role everywhere, a
// RoleBinding only inside its namespace (a ClusterRole bound by one too); resourceNames restrict
// get/update/patch/delete and list/watch pinned by a metadata.name field selector, never create
// or an unpinned list; `*` matches anything. Each granted (verb, group, resource, name) is one
// atom, so a test can drop one at a time and see which recorded call it was needed for.

import type { AuthzRule } from './auth.js';

type Obj = { apiVersion?: string; kind?: string; metadata?: { name?: string; namespace?: string }; rules?: PolicyRule[]; subjects?: Subject[]; roleRef?: { kind: string; name: string } };
interface PolicyRule { verbs?: string[]; apiGroups?: string[]; resources?: string[]; resourceNames?: string[]; nonResourceURLs?: string[] }
interface Subject { kind: string; name: string; namespace?: string }

/** One granted permission: a verb on one group/resource (`pods/eviction` included), optionally one name, in one scope, to some subjects. */
export interface RbacAtom {
  /** `ClusterRoleBinding/x → ClusterRole/y` or `RoleBinding/ns/x → Role/y`. */
  source: string;
  users: string[];
  groups: string[];
  /** Set for RoleBindings: the grant holds only in this namespace. */
  namespace?: string;
  verb: string;
  apiGroup: string;
  resource: string;
  /** Set when the rule lists resourceNames. */
  name?: string;
}

const isRbac = (o: Obj) => o.apiVersion === 'rbac.authorization.k8s.io/v1';

/** Every atom the RBAC objects among `objects` grant (other kinds are ignored). */
export function rbacAtoms(input: readonly object[]): RbacAtom[] {
  const objects = input as Obj[];
  const roles = new Map<string, PolicyRule[]>();
  for (const o of objects) {
    if (!isRbac(o)) continue;
    if (o.kind === 'ClusterRole') roles.set(`ClusterRole/${o.metadata!.name}`, o.rules ?? []);
    if (o.kind === 'Role') roles.set(`Role/${o.metadata!.namespace}/${o.metadata!.name}`, o.rules ?? []);
  }
  const atoms: RbacAtom[] = [];
  for (const b of objects) {
    if (!isRbac(b) || (b.kind !== 'ClusterRoleBinding' && b.kind !== 'RoleBinding')) continue;
    const ns = b.kind === 'RoleBinding' ? b.metadata!.namespace : undefined;
    const ref = b.roleRef!;
    const key = ref.kind === 'ClusterRole' ? `ClusterRole/${ref.name}` : `Role/${ns}/${ref.name}`;
    const rules = roles.get(key);
    if (!rules) throw new Error(`${b.kind} ${b.metadata!.name} refers to ${key}, which is not among the objects`);
    const users: string[] = [];
    const groups: string[] = [];
    for (const s of b.subjects ?? []) {
      if (s.kind === 'ServiceAccount') users.push(`system:serviceaccount:${s.namespace ?? ns}:${s.name}`);
      else if (s.kind === 'User') users.push(s.name);
      else if (s.kind === 'Group') groups.push(s.name);
    }
    const source = `${b.kind}/${ns ? `${ns}/` : ''}${b.metadata!.name} → ${key}`;
    for (const r of rules) {
      if (r.nonResourceURLs) continue;
      for (const verb of r.verbs ?? []) for (const apiGroup of r.apiGroups ?? []) for (const resource of r.resources ?? []) {
        const names = r.resourceNames?.length ? r.resourceNames : [undefined];
        for (const name of names) atoms.push({ source, users, groups, ...(ns ? { namespace: ns } : {}), verb, apiGroup, resource, ...(name !== undefined ? { name } : {}) });
      }
    }
  }
  return atoms;
}

/** One atom as allow rules of this server's table (users and groups are alternatives in RBAC, so one rule each). */
export function atomRules(a: RbacAtom): AuthzRule[] {
  const base: AuthzRule = {
    verbs: [a.verb],
    apiGroups: [a.apiGroup],
    resources: [a.resource],
    ...(a.namespace ? { namespaces: [a.namespace] } : {}),
    ...(a.name !== undefined ? { names: [a.name] } : {}),
  };
  return [...(a.users.length ? [{ users: a.users, ...base }] : []), ...(a.groups.length ? [{ groups: a.groups, ...base }] : [])];
}

/** The authorisation table the RBAC objects amount to. */
export function rbacRules(objects: readonly object[]): AuthzRule[] {
  return rbacAtoms(objects).flatMap(atomRules);
}

/** A short line for an atom: `list core/nodes (cluster)`. */
export function describeAtom(a: RbacAtom): string {
  return `${a.verb} ${a.apiGroup || 'core'}/${a.resource}${a.name !== undefined ? ` name=${a.name}` : ''} (${a.namespace ? `ns ${a.namespace}` : 'cluster'}) via ${a.source}`;
}
