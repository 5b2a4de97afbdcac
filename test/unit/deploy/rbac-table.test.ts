/**
 * The RBAC → authorisation-table conversion the least-privilege test relies on
 * (scripts/kube-apiserver/rbac.ts) keeps RBAC's semantics: a RoleBinding grants only in its
 * namespace (a ClusterRole bound by one too), a ClusterRoleBinding everywhere; resourceNames
 * never match create or an unpinned list; users and groups are alternatives.
 */
import { describe, expect, it } from 'vitest';
import { Authorizer, serviceAccountUser, type RequestAttributes } from '../../../scripts/kube-apiserver/auth.js';
import { rbacAtoms, rbacRules } from '../../../scripts/kube-apiserver/rbac.js';

const role = (kind: 'Role' | 'ClusterRole', name: string, rules: object[], namespace?: string) => ({ apiVersion: 'rbac.authorization.k8s.io/v1', kind, metadata: { name, ...(namespace ? { namespace } : {}) }, rules });
const binding = (kind: 'RoleBinding' | 'ClusterRoleBinding', name: string, roleRef: { kind: string; name: string }, subjects: object[], namespace?: string) => ({ apiVersion: 'rbac.authorization.k8s.io/v1', kind, metadata: { name, ...(namespace ? { namespace } : {}) }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', ...roleRef }, subjects });
const sa = { kind: 'ServiceAccount', name: 'agent', namespace: 'cw' };
const user = serviceAccountUser('cw', 'agent', 'node-a');
const at = (verb: string, resource: string, namespace = '', name = '', subresource = ''): RequestAttributes => ({ verb, apiGroup: '', resource, subresource, namespace, name });

describe('RBAC objects as the test API server\'s authorisation table', () => {
  const objects = [
    role('ClusterRole', 'read-cm', [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list'] }]),
    binding('RoleBinding', 'read-cm', { kind: 'ClusterRole', name: 'read-cm' }, [sa], 'cw'),
    role('Role', 'one-cm', [{ apiGroups: [''], resources: ['configmaps'], resourceNames: ['switch'], verbs: ['watch', 'update', 'create'] }], 'cw'),
    binding('RoleBinding', 'one-cm', { kind: 'Role', name: 'one-cm' }, [sa], 'cw'),
    role('ClusterRole', 'nodes', [{ apiGroups: [''], resources: ['nodes', 'nodes/status'], verbs: ['patch'] }]),
    binding('ClusterRoleBinding', 'nodes', { kind: 'ClusterRole', name: 'nodes' }, [{ kind: 'Group', name: 'system:serviceaccounts:cw' }]),
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ignored' } },
  ];
  const authz = new Authorizer(rbacRules(objects));

  it('a ClusterRole bound by a RoleBinding grants only in that namespace', () => {
    expect(authz.allows(at('get', 'configmaps', 'cw', 'x'), user)).toBe(true);
    expect(authz.allows(at('get', 'configmaps', 'other', 'x'), user)).toBe(false);
    expect(authz.allows(at('list', 'configmaps', ''), user)).toBe(false);
  });

  it('resourceNames: a pinned watch and an update of that name; never create, never an unpinned watch', () => {
    expect(authz.allows(at('watch', 'configmaps', 'cw', 'switch'), user)).toBe(true);
    expect(authz.allows(at('update', 'configmaps', 'cw', 'switch'), user)).toBe(true);
    expect(authz.allows(at('update', 'configmaps', 'cw', 'other'), user)).toBe(false);
    expect(authz.allows(at('watch', 'configmaps', 'cw', ''), user)).toBe(false);
    expect(authz.allows(at('create', 'configmaps', 'cw', ''), user)).toBe(false);
  });

  it('a ClusterRoleBinding to a group grants cluster-wide; subresources are their own resource', () => {
    expect(authz.allows(at('patch', 'nodes', '', 'node-b'), user)).toBe(true);
    expect(authz.allows(at('patch', 'nodes', '', 'node-b', 'status'), user)).toBe(true);
    expect(authz.allows(at('update', 'nodes', '', 'node-b', 'status'), user)).toBe(false);
    expect(authz.allows(at('patch', 'nodes', '', 'node-b'), serviceAccountUser('other', 'agent'))).toBe(false);
  });

  it('one atom per verb, resource and name, with where it came from', () => {
    const atoms = rbacAtoms(objects);
    expect(atoms).toHaveLength(2 + 3 + 2);
    expect(atoms.find((a) => a.verb === 'watch')).toMatchObject({ namespace: 'cw', resource: 'configmaps', name: 'switch', source: 'RoleBinding/cw/one-cm → Role/cw/one-cm' });
  });

  it('a binding to a role that is not there is an error, not a silent nothing', () => {
    expect(() => rbacAtoms([binding('RoleBinding', 'x', { kind: 'Role', name: 'missing' }, [sa], 'cw')])).toThrow(/not among the objects/);
  });
});
