import { z } from 'zod';

/** The `cilium:` section of connwatch's configuration (owned by the cilium box). */
export const ciliumConfig = z
  .strictObject({
    socketPath: z
      .string()
      .min(1)
      .default('/var/run/cilium/cilium.sock')
      .describe("The Cilium agent's API unix socket (GET /v1/healthz, GET /v1/endpoint)."),
    connectTimeoutMs: z.number().int().positive().default(1_000).describe('Give up connecting to the socket after this long (ms).'),
    headersTimeoutMs: z.number().int().positive().default(3_000).describe('Give up when response headers take longer than this (ms).'),
    bodyTimeoutMs: z.number().int().positive().default(3_000).describe('Give up when the body stalls for longer than this between chunks (ms).'),
    requestTimeoutMs: z
      .number()
      .int()
      .positive()
      .default(5_000)
      .describe('Hard deadline for a whole request, connect to last byte (ms); the agent never waits longer.'),
    maxBodyBytes: z
      .number()
      .int()
      .positive()
      .default(32 * 1024 * 1024)
      .describe('Refuse responses larger than this (bytes); the endpoint list of a full node is a few MB.'),
  })
  .prefault({})
  .describe("cilium settings: how connwatch talks to the local Cilium agent's API.");

export type CiliumConfig = z.infer<typeof ciliumConfig>;
