/**
 * The resource descriptor table: every path the client builds comes from a descriptor (group,
 * version, plural, namespaced), never from string concatenation elsewhere. A descriptor carries
 * the object's type, so `client.get(RESOURCES.nodes, …)` resolves to a `Node`.
 */
import type { Lease } from 'kubernetes-types/coordination/v1.js';
import type { ConfigMap, Event, Node, Pod } from 'kubernetes-types/core/v1.js';
import type { ObjectMeta } from 'kubernetes-types/meta/v1.js';
import type { Eviction } from 'kubernetes-types/policy/v1.js';

/** Any Kubernetes object: metadata and whatever else its kind has. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
}

/** One REST resource; `T` is the object type its paths serve (types only: it costs nothing at run time). */
export interface Resource<T extends KubeObject = KubeObject> {
  /** "" for the core group. */
  readonly group: string;
  readonly version: string;
  /** The path segment ("pods", "leases"). */
  readonly plural: string;
  readonly kind: string;
  readonly namespaced: boolean;
  /** Phantom: never set, only carries T. */
  readonly __type?: T;
}

/** Declares a resource (connwatch's own custom resource is declared by its box with this). */
export function defineResource<T extends KubeObject>(spec: Omit<Resource<T>, '__type'>): Resource<T> {
  return Object.freeze({ ...spec });
}

/** The resources connwatch uses. */
export const RESOURCES = {
  nodes: defineResource<Node>({ group: '', version: 'v1', plural: 'nodes', kind: 'Node', namespaced: false }),
  pods: defineResource<Pod>({ group: '', version: 'v1', plural: 'pods', kind: 'Pod', namespaced: true }),
  configmaps: defineResource<ConfigMap>({ group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap', namespaced: true }),
  events: defineResource<Event>({ group: '', version: 'v1', plural: 'events', kind: 'Event', namespaced: true }),
  leases: defineResource<Lease>({ group: 'coordination.k8s.io', version: 'v1', plural: 'leases', kind: 'Lease', namespaced: true }),
} as const;

/** The Eviction subresource's body type (policy/v1), for `client.evict`. */
export type { Eviction };

/** Where one request goes: the resource, and the object (or the collection when `name` is absent). */
export interface ObjectRef {
  namespace?: string;
  name?: string;
  /** "status", "eviction", … */
  subresource?: string;
}

/** `apiVersion` as objects of this resource carry it ("v1", "coordination.k8s.io/v1"). */
export function apiVersionOf(resource: Resource<KubeObject>): string {
  return resource.group === '' ? resource.version : `${resource.group}/${resource.version}`;
}

/** The resource as an RBAC rule names it, for the RBAC hint ("nodes/status", "leases (apiGroup coordination.k8s.io)"). */
export function rbacResourceName(resource: Resource<KubeObject>, subresource?: string): string {
  const base = subresource ? `${resource.plural}/${subresource}` : resource.plural;
  return resource.group === '' ? base : `${base} (apiGroup ${resource.group})`;
}

/**
 * The request path for a resource and object. Namespaced resources need a namespace for a named
 * object; without one a collection path is cluster-wide (list/watch across namespaces).
 * Throws for bugs only (a cluster-scoped resource given a namespace, a subresource without a name).
 */
export function resourcePath(resource: Resource<KubeObject>, ref: ObjectRef = {}): string {
  const prefix = resource.group === '' ? `/api/${resource.version}` : `/apis/${resource.group}/${resource.version}`;
  if (!resource.namespaced && ref.namespace) throw new Error(`bug: ${resource.plural} is cluster-scoped but a namespace was given`);
  if (resource.namespaced && ref.name !== undefined && !ref.namespace) throw new Error(`bug: ${resource.plural}/${ref.name} needs a namespace`);
  if (ref.subresource && ref.name === undefined) throw new Error(`bug: subresource ${ref.subresource} needs an object name`);
  let path = prefix;
  if (ref.namespace) path += `/namespaces/${segment(ref.namespace)}`;
  path += `/${resource.plural}`;
  if (ref.name !== undefined) path += `/${segment(ref.name)}`;
  if (ref.subresource) path += `/${segment(ref.subresource)}`;
  return path;
}

function segment(text: string): string {
  if (text === '' || text === '.' || text === '..') throw new Error(`bug: "${text}" is not a valid path segment`);
  return encodeURIComponent(text);
}
