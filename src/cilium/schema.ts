/**
 * The parts of Cilium's published API shapes (api/v1/openapi.yaml) that connwatch reads.
 * Objects are open (Cilium adds fields across releases); what we read is checked strictly,
 * enums included.
 */
import { z } from 'zod';

/** `Status.state` as Cilium publishes it. */
export const componentState = z.enum(['Ok', 'Warning', 'Failure', 'Disabled']);

/** `Status`: one component's state. */
export const componentStatus = z.looseObject({
  state: componentState.optional(),
  msg: z.string().optional(),
});

/** `NodeAddressingElement`. */
const nodeAddressingElement = z.looseObject({ ip: z.string().optional(), 'alloc-range': z.string().optional(), enabled: z.boolean().optional() });

/** `NodeAddressing`. */
const nodeAddressing = z.looseObject({ ipv4: nodeAddressingElement.optional(), ipv6: nodeAddressingElement.optional() });

/** `NodeElement`: a known node, its pod CIDRs (alloc-range) and its health endpoint. */
export const nodeElement = z.looseObject({
  name: z.string().optional(),
  'primary-address': nodeAddressing.optional(),
  'health-endpoint-address': nodeAddressing.optional(),
});

/** `ClusterNodeStatus` (GET /v1/cluster/nodes): without a client-id every node is in nodes-added. Go sends an empty list as null. */
export const clusterNodeStatus = z.looseObject({
  'client-id': z.number().int().optional(),
  self: z.string().optional(),
  'nodes-added': z.array(nodeElement).nullable().optional(),
  'nodes-removed': z.array(nodeElement).nullable().optional(),
});

/** `ControllerStatus`: one of the agent's controllers. */
const controllerStatus = z.looseObject({
  name: z.string().optional(),
  status: z.looseObject({ 'consecutive-failure-count': z.number().int().optional(), 'last-failure-msg': z.string().optional() }).optional(),
});

/** `ConnectivityStatus`: an empty or absent `status` means the path answers. */
const connectivityStatus = z.looseObject({ latency: z.number().optional(), status: z.string().optional() });

/** `PathStatus`. */
const pathStatus = z.looseObject({ ip: z.string().optional(), icmp: connectivityStatus.optional(), http: connectivityStatus.optional() });

/** `HealthStatusResponse` (cilium-health GET /v1beta/status), the fields connwatch reads. */
export const healthStatusResponse = z.looseObject({
  local: z.looseObject({ name: z.string().optional() }).optional(),
  nodes: z
    .array(
      z.looseObject({
        name: z.string().optional(),
        host: z.looseObject({ 'primary-address': pathStatus.optional() }).optional(),
        // An EndpointStatus ({primary-address, secondary-addresses}) in current releases, a PathStatus in older ones.
        'health-endpoint': z.looseObject({ 'primary-address': pathStatus.optional(), icmp: connectivityStatus.optional(), http: connectivityStatus.optional() }).optional(),
      }),
    )
    .nullable()
    .optional(),
});

/** `StatusResponse` (GET /v1/healthz), the fields connwatch reads. */
export const statusResponse = z.looseObject({
  cilium: componentStatus.optional(),
  kvstore: componentStatus.optional(),
  'container-runtime': componentStatus.optional(),
  kubernetes: componentStatus.optional(),
  cluster: z
    .looseObject({ ciliumHealth: componentStatus.optional(), self: z.string().optional(), nodes: z.array(nodeElement).nullable().optional() })
    .optional(),
  controllers: z.array(controllerStatus).nullable().optional(),
});

/** `EndpointState`. */
export const endpointState = z.enum([
  'waiting-for-identity',
  'not-ready',
  'waiting-to-regenerate',
  'regenerating',
  'restoring',
  'ready',
  'disconnecting',
  'disconnected',
  'invalid',
]);

/** `AddressPair`. */
export const addressPair = z.looseObject({
  ipv4: z.string().optional(),
  ipv6: z.string().optional(),
});

/** `Endpoint` (items of GET /v1/endpoint), the fields connwatch reads. */
export const endpoint = z.looseObject({
  id: z.number().int(),
  status: z.looseObject({
    // A state a newer Cilium adds must not fail the whole list: known states are checked, others kept as text.
    state: z.union([endpointState, z.string().min(1)]),
    networking: z.looseObject({ addressing: z.array(addressPair).optional() }).optional(),
    'external-identifiers': z
      .looseObject({ 'k8s-pod-name': z.string().optional(), 'k8s-namespace': z.string().optional(), 'pod-name': z.string().optional() })
      .optional(),
  }),
});

export const endpointList = z.array(endpoint);

export type ComponentState = z.infer<typeof componentState>;
/** A known `EndpointState`, or one this connwatch does not know yet. */
export type EndpointState = z.infer<typeof endpointState> | (string & {});
