// The resources this server serves: names as discovery shows them, the field selectors each
// supports (as the real registry's GetAttrs), and how writes treat status and generation.

import { builtinSchemas, type Schema } from './schema.js';
import type { KObject } from './store.js';

/** Reads one field-selector field off an object (a string, as fields.Set holds them). */
export type FieldGetter = (obj: KObject) => string;

/** One served resource (group, version, plural); custom resources get one per CRD version. */
export interface ResourceDef {
  group: string;
  version: string;
  /** Plural, as in the URL. */
  resource: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames: string[];
  categories: string[];
  verbs: string[];
  /** Resources that share one storage (core and events.k8s.io Events) share this key. */
  storage: string;
  /** Fields a fieldSelector may name, besides metadata.name and metadata.namespace; read off the stored object. */
  fields: Record<string, FieldGetter>;
  /** Has a status subresource: main writes keep the old status, /status writes keep all else. */
  statusSubresource: boolean;
  /** metadata.generation is set to 1 and bumped when anything but metadata/status changes. */
  generation: boolean;
  /** Whether the server accepts strategic merge patch (not for custom resources). */
  strategicMerge: boolean;
  /** Lists omit kind/apiVersion on items (typed lists do; custom resource lists do not). */
  typedList: boolean;
  /** What a DELETE answers: the deleted object, or a Success Status. */
  deleteReturnsObject: boolean;
  schema: Schema;
  /** Converts a stored object to this resource's version/kind and back (events.k8s.io/v1). */
  view?: { fromStored(o: KObject): KObject; toStored(o: KObject): KObject };
  /** Set for custom resources: the CRD's name and version. */
  crd?: { name: string; version: string };
}

export const allVerbs = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

export function apiVersionOf(def: { group: string; version: string }): string {
  return def.group ? `${def.group}/${def.version}` : def.version;
}

const s = (o: KObject, path: string): string => {
  let v: unknown = o;
  for (const p of path.split('.')) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[p] : undefined;
  return v === undefined || v === null ? '' : String(v);
};
const fieldsOf = (...paths: string[]): Record<string, FieldGetter> => Object.fromEntries(paths.map((p) => [p, (o: KObject) => s(o, p)]));

function def(d: Partial<ResourceDef> & Pick<ResourceDef, 'group' | 'version' | 'resource' | 'singular' | 'kind' | 'namespaced' | 'schema'>): ResourceDef {
  return {
    shortNames: [], categories: [], verbs: allVerbs, storage: `${d.group}/${d.resource}`, fields: {}, statusSubresource: false,
    generation: false, strategicMerge: true, typedList: true, deleteReturnsObject: false, ...d,
  };
}

const eventFields = fieldsOf(
  'involvedObject.kind', 'involvedObject.namespace', 'involvedObject.name', 'involvedObject.uid', 'involvedObject.apiVersion',
  'involvedObject.resourceVersion', 'involvedObject.fieldPath', 'reason', 'reportingComponent', 'source', 'type',
);
eventFields.source = (o) => s(o, 'source.component');
/** events.k8s.io/v1 names the same stored fields differently (its field-label conversion). */
const eventV1Fields: Record<string, FieldGetter> = {
  reason: eventFields.reason!, type: eventFields.type!, reportingController: eventFields.reportingComponent!,
  ...Object.fromEntries(['kind', 'namespace', 'name', 'uid', 'apiVersion', 'resourceVersion', 'fieldPath'].map((f) => [`regarding.${f}`, eventFields[`involvedObject.${f}`]!])),
};

/** events.k8s.io/v1 Event <-> core v1 Event, as the real conversion maps the fields. */
const eventsV1View = {
  fromStored(o: KObject): KObject {
    const e: KObject = { metadata: o.metadata };
    const put = (k: string, v: unknown) => { if (v !== undefined && v !== null && v !== '') e[k] = v; };
    e.eventTime = o.eventTime ?? null;
    put('series', o.series); put('reportingController', o.reportingComponent); put('reportingInstance', o.reportingInstance);
    put('action', o.action); put('reason', o.reason); put('regarding', o.involvedObject); put('related', o.related);
    put('note', o.message); put('type', o.type); put('deprecatedSource', o.source);
    put('deprecatedFirstTimestamp', o.firstTimestamp); put('deprecatedLastTimestamp', o.lastTimestamp); put('deprecatedCount', o.count);
    return e;
  },
  toStored(e: KObject): KObject {
    const o: KObject = { metadata: e.metadata };
    const put = (k: string, v: unknown) => { if (v !== undefined && v !== null && v !== '') o[k] = v; };
    put('eventTime', e.eventTime); put('series', e.series); put('reportingComponent', e.reportingController);
    put('reportingInstance', e.reportingInstance); put('action', e.action); put('reason', e.reason);
    o.involvedObject = e.regarding ?? {};
    put('related', e.related); put('message', e.note); put('type', e.type); o.source = e.deprecatedSource ?? {};
    put('firstTimestamp', e.deprecatedFirstTimestamp); put('lastTimestamp', e.deprecatedLastTimestamp); put('count', e.deprecatedCount);
    return o;
  },
};

/** The built-in resources, in discovery order. */
export function builtinResources(): ResourceDef[] {
  return [
    def({ group: '', version: 'v1', resource: 'namespaces', singular: 'namespace', kind: 'Namespace', namespaced: false, shortNames: ['ns'], schema: builtinSchemas.Namespace, fields: fieldsOf('status.phase'), statusSubresource: true, verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'] }),
    def({ group: '', version: 'v1', resource: 'nodes', singular: 'node', kind: 'Node', namespaced: false, shortNames: ['no'], schema: builtinSchemas.Node, fields: fieldsOf('spec.unschedulable'), statusSubresource: true }),
    def({ group: '', version: 'v1', resource: 'pods', singular: 'pod', kind: 'Pod', namespaced: true, shortNames: ['po'], categories: ['all'], schema: builtinSchemas.Pod, statusSubresource: true, deleteReturnsObject: true,
      fields: { ...fieldsOf('spec.nodeName', 'spec.restartPolicy', 'spec.schedulerName', 'spec.serviceAccountName', 'spec.hostNetwork', 'status.phase', 'status.podIP', 'status.nominatedNodeName'), 'spec.hostNetwork': (o) => String(Boolean(o.spec?.hostNetwork)) } }),
    def({ group: '', version: 'v1', resource: 'events', singular: 'event', kind: 'Event', namespaced: true, shortNames: ['ev'], schema: builtinSchemas.Event, fields: eventFields, storage: 'events' }),
    def({ group: '', version: 'v1', resource: 'configmaps', singular: 'configmap', kind: 'ConfigMap', namespaced: true, shortNames: ['cm'], schema: builtinSchemas.ConfigMap }),
    def({ group: 'coordination.k8s.io', version: 'v1', resource: 'leases', singular: 'lease', kind: 'Lease', namespaced: true, schema: builtinSchemas.Lease }),
    def({ group: 'events.k8s.io', version: 'v1', resource: 'events', singular: 'event', kind: 'Event', namespaced: true, shortNames: ['ev'], schema: builtinSchemas.EventV1, fields: eventV1Fields, storage: 'events', view: eventsV1View }),
    def({ group: 'policy', version: 'v1', resource: 'poddisruptionbudgets', singular: 'poddisruptionbudget', kind: 'PodDisruptionBudget', namespaced: true, shortNames: ['pdb'], schema: builtinSchemas.PodDisruptionBudget, statusSubresource: true, generation: true }),
    // Served for the deployment manifests (issue 19): stored and listed, nothing runs them.
    def({ group: '', version: 'v1', resource: 'serviceaccounts', singular: 'serviceaccount', kind: 'ServiceAccount', namespaced: true, shortNames: ['sa'], schema: builtinSchemas.ServiceAccount }),
    def({ group: 'apps', version: 'v1', resource: 'daemonsets', singular: 'daemonset', kind: 'DaemonSet', namespaced: true, shortNames: ['ds'], categories: ['all'], schema: builtinSchemas.DaemonSet, statusSubresource: true, generation: true }),
    def({ group: 'apps', version: 'v1', resource: 'deployments', singular: 'deployment', kind: 'Deployment', namespaced: true, shortNames: ['deploy'], categories: ['all'], schema: builtinSchemas.Deployment, statusSubresource: true, generation: true }),
    def({ group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'clusterroles', singular: 'clusterrole', kind: 'ClusterRole', namespaced: false, schema: builtinSchemas.ClusterRole }),
    def({ group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'clusterrolebindings', singular: 'clusterrolebinding', kind: 'ClusterRoleBinding', namespaced: false, schema: builtinSchemas.ClusterRoleBinding }),
    def({ group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'roles', singular: 'role', kind: 'Role', namespaced: true, schema: builtinSchemas.Role }),
    def({ group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'rolebindings', singular: 'rolebinding', kind: 'RoleBinding', namespaced: true, schema: builtinSchemas.RoleBinding }),
    def({ group: 'admissionregistration.k8s.io', version: 'v1', resource: 'validatingadmissionpolicies', singular: 'validatingadmissionpolicy', kind: 'ValidatingAdmissionPolicy', namespaced: false, categories: ['api-extensions'], schema: builtinSchemas.ValidatingAdmissionPolicy, statusSubresource: true, generation: true }),
    def({ group: 'admissionregistration.k8s.io', version: 'v1', resource: 'validatingadmissionpolicybindings', singular: 'validatingadmissionpolicybinding', kind: 'ValidatingAdmissionPolicyBinding', namespaced: false, categories: ['api-extensions'], schema: builtinSchemas.ValidatingAdmissionPolicyBinding, generation: true }),
    def({ group: 'apiextensions.k8s.io', version: 'v1', resource: 'customresourcedefinitions', singular: 'customresourcedefinition', kind: 'CustomResourceDefinition', namespaced: false, shortNames: ['crd', 'crds'], categories: ['api-extensions'], schema: builtinSchemas.CustomResourceDefinition, statusSubresource: true, generation: true }),
  ];
}
