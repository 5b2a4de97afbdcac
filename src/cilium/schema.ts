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

/** `NodeElement`: a known node and its pod CIDRs (alloc-range). */
export const nodeElement = z.looseObject({
  name: z.string().optional(),
  'primary-address': z.looseObject({ ipv4: nodeAddressingElement.optional(), ipv6: nodeAddressingElement.optional() }).optional(),
});

/** `StatusResponse` (GET /v1/healthz), the fields connwatch reads. */
export const statusResponse = z.looseObject({
  cilium: componentStatus.optional(),
  kvstore: componentStatus.optional(),
  'container-runtime': componentStatus.optional(),
  kubernetes: componentStatus.optional(),
  cluster: z
    .looseObject({ ciliumHealth: componentStatus.optional(), self: z.string().optional(), nodes: z.array(nodeElement).optional() })
    .optional(),
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
