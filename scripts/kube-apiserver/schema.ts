// The OpenAPI v3 shapes of the built-in kinds served here: what the server prunes unknown fields
// against (with fieldValidation Strict/Warn/Ignore), what /openapi/v3 publishes, and the one
// walk that finds and drops unknown fields for built-ins and custom resources alike.

export type Schema = Record<string, unknown>;

export const str: Schema = { type: 'string' };
export const int: Schema = { type: 'integer', format: 'int32' };
export const int64: Schema = { type: 'integer', format: 'int64' };
export const bool: Schema = { type: 'boolean' };
export const time: Schema = { type: 'string', format: 'date-time' };
export const intOrString: Schema = { 'x-kubernetes-int-or-string': true };
export const open: Schema = { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
export const obj = (properties: Record<string, Schema>, extra: Schema = {}): Schema => ({ type: 'object', properties, ...extra });
export const openObj = (properties: Record<string, Schema>): Schema => obj(properties, { 'x-kubernetes-preserve-unknown-fields': true });
export const arr = (items: Schema, extra: Schema = {}): Schema => ({ type: 'array', items, ...extra });
export const mapOf = (values: Schema): Schema => ({ type: 'object', additionalProperties: values });

export const objectMeta = obj({
  name: str, generateName: str, namespace: str, selfLink: str, uid: str, resourceVersion: str, generation: int64,
  creationTimestamp: time, deletionTimestamp: time, deletionGracePeriodSeconds: int64,
  labels: mapOf(str), annotations: mapOf(str), ownerReferences: arr(open), finalizers: arr(str), managedFields: arr(open),
});

const condition = obj({ type: str, status: str, lastHeartbeatTime: time, lastProbeTime: time, lastTransitionTime: time, reason: str, message: str, observedGeneration: int64 });
const conditions = arr(condition, { 'x-kubernetes-patch-merge-key': 'type', 'x-kubernetes-patch-strategy': 'merge', 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] });
const objectReference = obj({ kind: str, namespace: str, name: str, uid: str, apiVersion: str, resourceVersion: str, fieldPath: str });
export const labelSelector = obj({ matchLabels: mapOf(str), matchExpressions: arr(obj({ key: str, operator: str, values: arr(str) })) });

const top = (spec: Record<string, Schema>): Schema => obj({ apiVersion: str, kind: str, metadata: objectMeta, ...spec });

export const builtinSchemas = {
  Namespace: top({ spec: obj({ finalizers: arr(str) }), status: obj({ phase: str, conditions: arr(open) }) }),
  Node: top({
    spec: obj({
      podCIDR: str, podCIDRs: arr(str, { 'x-kubernetes-patch-strategy': 'merge' }), providerID: str, unschedulable: bool, externalID: str, configSource: open,
      taints: arr(obj({ key: str, value: str, effect: str, timeAdded: time }), { 'x-kubernetes-list-type': 'atomic' }),
    }),
    status: obj({
      capacity: mapOf(intOrString), allocatable: mapOf(intOrString), phase: str, conditions,
      addresses: arr(obj({ type: str, address: str }), { 'x-kubernetes-patch-merge-key': 'type', 'x-kubernetes-patch-strategy': 'merge' }),
      daemonEndpoints: open,
      nodeInfo: obj({ machineID: str, systemUUID: str, bootID: str, kernelVersion: str, osImage: str, containerRuntimeVersion: str, kubeletVersion: str, kubeProxyVersion: str, operatingSystem: str, architecture: str, swap: open }),
      images: arr(open), volumesInUse: arr(str), volumesAttached: arr(open), config: open, runtimeHandlers: arr(open), features: open,
    }),
  }),
  Pod: top({
    spec: openObj({
      nodeName: str, containers: arr(open, { 'x-kubernetes-patch-merge-key': 'name', 'x-kubernetes-patch-strategy': 'merge' }),
      initContainers: arr(open, { 'x-kubernetes-patch-merge-key': 'name', 'x-kubernetes-patch-strategy': 'merge' }),
      volumes: arr(open, { 'x-kubernetes-patch-merge-key': 'name', 'x-kubernetes-patch-strategy': 'merge,retainKeys' }),
      tolerations: arr(open), hostNetwork: bool, priority: int, serviceAccountName: str, nodeSelector: mapOf(str), schedulerName: str,
    }),
    status: openObj({ phase: str, conditions, podIP: str, hostIP: str, startTime: time, reason: str, message: str, qosClass: str, containerStatuses: arr(open), nominatedNodeName: str }),
  }),
  Event: top({
    involvedObject: objectReference, reason: str, message: str, source: obj({ component: str, host: str }),
    firstTimestamp: time, lastTimestamp: time, count: int, type: str, eventTime: time,
    series: obj({ count: int, lastObservedTime: time }), action: str, related: objectReference, reportingComponent: str, reportingInstance: str,
  }),
  EventV1: top({
    eventTime: time, series: obj({ count: int, lastObservedTime: time }), reportingController: str, reportingInstance: str, action: str, reason: str,
    regarding: objectReference, related: objectReference, note: str, type: str, deprecatedSource: obj({ component: str, host: str }),
    deprecatedFirstTimestamp: time, deprecatedLastTimestamp: time, deprecatedCount: int,
  }),
  ConfigMap: top({ data: mapOf(str), binaryData: mapOf(str), immutable: bool }),
  Lease: top({ spec: obj({ holderIdentity: str, leaseDurationSeconds: int, acquireTime: time, renewTime: time, leaseTransitions: int, strategy: str, preferredHolder: str }) }),
  PodDisruptionBudget: top({
    spec: obj({ minAvailable: intOrString, maxUnavailable: intOrString, selector: labelSelector, unhealthyPodEvictionPolicy: str }),
    status: obj({ observedGeneration: int64, disruptedPods: mapOf(time), disruptionsAllowed: int, currentHealthy: int, desiredHealthy: int, expectedPods: int, conditions }),
  }),
  Eviction: top({ deleteOptions: open }),
  // Kinds served so that the deployment manifests can be applied (issue 19): spec open, the
  // top level typed, so that strict field validation still catches a misplaced key.
  ServiceAccount: top({ secrets: arr(open), imagePullSecrets: arr(open), automountServiceAccountToken: bool }),
  DaemonSet: top({ spec: openObj({}), status: open }),
  Deployment: top({ spec: openObj({}), status: open }),
  ClusterRole: top({ rules: arr(open), aggregationRule: open }),
  Role: top({ rules: arr(open) }),
  ClusterRoleBinding: top({ subjects: arr(open), roleRef: open }),
  RoleBinding: top({ subjects: arr(open), roleRef: open }),
  ValidatingAdmissionPolicy: top({ spec: openObj({}), status: open }),
  ValidatingAdmissionPolicyBinding: top({ spec: openObj({}) }),
  CustomResourceDefinition: top({
    spec: obj({
      group: str, names: obj({ plural: str, singular: str, shortNames: arr(str), kind: str, listKind: str, categories: arr(str) }),
      scope: str, versions: arr(open), conversion: open, preserveUnknownFields: bool,
    }),
    status: open,
  }),
} satisfies Record<string, Schema>;

function props(s: Schema): Record<string, Schema> | undefined {
  return s.properties as Record<string, Schema> | undefined;
}

/**
 * Walks value against schema; returns the paths of fields the schema does not declare and, when
 * prune is set, removes them (the decoder drops them for built-ins; pruning does for CRs).
 */
export function unknownFields(value: unknown, schema: Schema, prune: boolean, path = ''): string[] {
  const out: string[] = [];
  walk(value, schema, prune, path, out);
  return out;
}

function walk(value: unknown, schema: Schema, prune: boolean, path: string, out: string[]): void {
  if (value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    const items = schema.items as Schema | undefined;
    if (items) value.forEach((v, i) => walk(v, items, prune, `${path}[${i}]`, out));
    return;
  }
  if (schema['x-kubernetes-embedded-resource'] && !props(schema)) return;
  const p = props(schema);
  const additional = schema.additionalProperties;
  const preserve = schema['x-kubernetes-preserve-unknown-fields'] === true;
  const rec = value as Record<string, unknown>;
  for (const key of Object.keys(rec)) {
    const child = p?.[key];
    const at = path ? `${path}.${key}` : key;
    if (child) walk(rec[key], child, prune, at, out);
    else if (additional && typeof additional === 'object') walk(rec[key], additional as Schema, prune, at, out);
    else if (additional === true || preserve || (!p && schema.type !== 'object')) continue;
    else {
      out.push(at);
      if (prune) delete rec[key];
    }
  }
}
