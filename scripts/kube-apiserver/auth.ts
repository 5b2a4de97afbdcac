// Bearer-token authentication and an ordered authorisation table. A rule can carry a predicate
// over the request and the user, which is how "this identity may write only its own node's
// object" is expressed (the node-name claim of a bound service-account token).

import { errors, type ApiError } from './errors.js';

/** Who a token belongs to (authentication.k8s.io UserInfo). */
export interface UserInfo {
  name: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

/** What the authoriser sees of a request (authorizer.Attributes). */
export interface RequestAttributes {
  verb: string;
  apiGroup: string;
  resource: string;
  subresource: string;
  namespace: string;
  /** The object's name; for list/watch, the name a `metadata.name=` field selector pins. */
  name: string;
  /** Set for non-resource requests (/version, /api, /openapi/v3…). */
  path?: string;
}

/** One allow rule; every listed dimension must match (absent = any). */
export interface AuthzRule {
  users?: string[];
  groups?: string[];
  verbs?: string[];
  apiGroups?: string[];
  /** `nodes`, `nodes/status`, `pods/eviction`, or `*`. */
  resources?: string[];
  namespaces?: string[];
  names?: string[];
  /** Extra condition, e.g. ownNode. */
  when?: (attrs: RequestAttributes, user: UserInfo) => boolean;
  /** Non-resource paths (prefix match with a trailing `*`). */
  nonResourceURLs?: string[];
}

/** The extra key a bound service-account token carries its node's name in. */
export const nodeNameClaim = 'authentication.kubernetes.io/node-name';

/** Predicate: the object is the one named by the user's node-name claim. */
export function ownNode(attrs: RequestAttributes, user: UserInfo): boolean {
  const node = user.extra?.[nodeNameClaim]?.[0];
  return node !== undefined && attrs.name === node;
}

/** A service-account user as the token authenticator builds it, with a node-name claim. */
export function serviceAccountUser(namespace: string, name: string, nodeName?: string): UserInfo {
  const u: UserInfo = { name: `system:serviceaccount:${namespace}:${name}`, groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'] };
  if (nodeName) u.extra = { [nodeNameClaim]: [nodeName] };
  return u;
}

/** Everyone authenticated may read discovery, /version and /openapi (system:discovery). */
export const discoveryRule: AuthzRule = { groups: ['system:authenticated'], nonResourceURLs: ['/api', '/api/*', '/apis', '/apis/*', '/version', '/version/*', '/openapi/*', '/healthz', '/livez', '/readyz'] };
/** system:masters may do anything. */
export const mastersRule: AuthzRule = { groups: ['system:masters'] };

const anyOf = (list: string[] | undefined, v: string) => !list || list.includes('*') || list.includes(v);

export class Authorizer {
  constructor(public rules: AuthzRule[]) {}

  allows(attrs: RequestAttributes, user: UserInfo): boolean {
    const groups = user.groups ?? [];
    return this.rules.some((r) => {
      if (r.users && !r.users.includes(user.name)) return false;
      if (r.groups && !r.groups.some((g) => groups.includes(g))) return false;
      if (attrs.path !== undefined) {
        if (r.nonResourceURLs) return r.nonResourceURLs.some((p) => (p.endsWith('*') ? attrs.path!.startsWith(p.slice(0, -1)) : attrs.path === p)) && anyOf(r.verbs, attrs.verb);
        return !r.resources && !r.apiGroups && !r.verbs && !r.when; // a bare subject rule (system:masters)
      }
      if (r.nonResourceURLs) return false;
      const res = attrs.subresource ? `${attrs.resource}/${attrs.subresource}` : attrs.resource;
      if (!anyOf(r.verbs, attrs.verb) || !anyOf(r.apiGroups, attrs.apiGroup) || !anyOf(r.resources, res)) return false;
      if (r.namespaces && !r.namespaces.includes(attrs.namespace)) return false;
      if (r.names && !r.names.includes(attrs.name)) return false;
      return r.when ? r.when(attrs, user) : true;
    });
  }

  /** The 403, worded as the apiserver's authorization filter words it. */
  forbidden(attrs: RequestAttributes, user: UserInfo): ApiError {
    if (attrs.path !== undefined) {
      const e = errors.forbidden('', '', '', `User "${user.name}" cannot ${attrs.verb} path "${attrs.path}"`);
      e.message = `forbidden: User "${user.name}" cannot ${attrs.verb} path "${attrs.path}"`;
      return e;
    }
    const res = attrs.subresource ? `${attrs.resource}/${attrs.subresource}` : attrs.resource;
    const scope = attrs.namespace ? `in the namespace "${attrs.namespace}"` : 'at the cluster scope';
    return errors.forbidden(attrs.apiGroup, attrs.resource, attrs.name, `User "${user.name}" cannot ${attrs.verb} resource "${res}" in API group "${attrs.apiGroup}" ${scope}`);
  }
}

export function authenticate(header: string | undefined, tokens: Map<string, UserInfo>): UserInfo {
  const m = header?.match(/^Bearer\s+(\S+)\s*$/i);
  const user = m ? tokens.get(m[1]!) : undefined;
  if (!user) throw errors.unauthorized();
  return { ...user, groups: [...new Set([...(user.groups ?? []), 'system:authenticated'])] };
}
