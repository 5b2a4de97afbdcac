import { z } from 'zod';

/** One direct API-server endpoint: a URL, or a URL with the TLS server name to check its certificate against. */
const endpoint = z.union([
  z.url({ protocol: /^https$/ }),
  z.strictObject({
    url: z.url({ protocol: /^https$/ }).describe('https://host:port of one API server.'),
    serverName: z.string().min(1).optional().describe("TLS server name for this endpoint (default: kube.tlsServerName)."),
  }),
]);

/**
 * Leader election timings (client-go's LeaseLock rules): leaseDurationMs > renewDeadlineMs >
 * 1.2 × retryPeriodMs, checked at start.
 */
const leaderElection = z
  .strictObject({
    leaseDurationMs: z
      .number()
      .int()
      .positive()
      .default(15_000)
      .describe('How long a candidate waits, from when it last saw the lease change, before taking it over (ms; written to the Lease in whole seconds, rounded up).'),
    renewDeadlineMs: z
      .number()
      .int()
      .positive()
      .default(10_000)
      .describe('A leader that has not renewed for this long steps down (ms); must be below leaseDurationMs.'),
    retryPeriodMs: z
      .number()
      .int()
      .positive()
      .default(2_000)
      .describe('How often candidates try to acquire and the leader renews (ms); 1.2 × this must be below renewDeadlineMs.'),
  })
  .prefault({})
  .superRefine((value, ctx) => {
    const problem = leaderTimingProblem(value);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  })
  .describe("Leader election timings (the controller's Lease).");

/** The `kube:` section of connwatch's configuration (owned by the kube box). */
export const kubeConfig = z
  .strictObject({
    endpoints: z
      .array(endpoint)
      .default([])
      .describe(
        'Direct API-server endpoints (https URLs), tried in order. Set them for a host-network agent or controller: with Cilium\'s kube-proxy replacement the "kubernetes" Service IP is served by Cilium itself and is lost exactly when Cilium breaks. Empty: the in-cluster Service (KUBERNETES_SERVICE_HOST/PORT) or the kubeconfig\'s server.',
      ),
    tlsServerName: z
      .string()
      .min(1)
      .default('kubernetes.default.svc')
      .describe("TLS server name checked on the direct endpoints' certificates (every kube-apiserver serving certificate names kubernetes.default.svc)."),
    kubeconfig: z
      .string()
      .min(1)
      .optional()
      .describe('A kubeconfig file, for running outside the cluster (current-context; token, token file or client certificate). Unset: in-cluster service account.'),
    tokenFile: z
      .string()
      .min(1)
      .default('/var/run/secrets/kubernetes.io/serviceaccount/token')
      .describe('The projected service-account token, re-read every tokenReloadMs and after a 401.'),
    caFile: z
      .string()
      .min(1)
      .default('/var/run/secrets/kubernetes.io/serviceaccount/ca.crt')
      .describe("The cluster CA bundle that signs the API server's certificate (in-cluster)."),
    tokenReloadMs: z
      .number()
      .int()
      .positive()
      .max(60_000)
      .default(60_000)
      .describe('Re-read the token file at least this often (ms; kubelet rotates projected tokens, at most a minute).'),
    qps: z.number().positive().default(5).describe('Sustained requests per second this client may send (token bucket).'),
    burst: z.number().int().positive().default(10).describe('Requests this client may send back to back before qps applies.'),
    connectionsPerEndpoint: z
      .number()
      .int()
      .positive()
      .max(16)
      .default(2)
      .describe('Keep-alive connections per endpoint for ordinary requests (watches use their own, one each).'),
    maxWatchesPerEndpoint: z.number().int().positive().max(64).default(8).describe('Concurrent watch connections per endpoint; more watches queue.'),
    connectTimeoutMs: z.number().int().positive().default(3_000).describe('Give up connecting to one endpoint after this long (ms), then try the next.'),
    attemptTimeoutMs: z.number().int().positive().default(10_000).describe('Deadline of one attempt, connect to last byte (ms).'),
    requestTimeoutMs: z
      .number()
      .int()
      .positive()
      .default(30_000)
      .describe('Deadline of one call including its retries (ms); the caller never waits longer.'),
    maxBodyBytes: z
      .number()
      .int()
      .positive()
      .default(16 * 1024 * 1024)
      .describe('Refuse answers larger than this (bytes); lists are paged (listPageSize) well below it.'),
    listPageSize: z.number().int().positive().max(5_000).default(500).describe('Objects per page when listing (limit/continue).'),
    retry: z
      .strictObject({
        retries: z.number().int().min(0).max(20).default(4).describe('Retries of one call on 429, 5xx, resets and connection failures.'),
        minDelayMs: z.number().int().positive().default(500).describe('First retry delay (ms; doubled each time, randomized ×1–2).'),
        maxDelayMs: z.number().int().positive().default(10_000).describe('Longest retry delay (ms).'),
        maxRetryAfterMs: z.number().int().positive().default(30_000).describe("Longest wait a server's Retry-After may impose (ms)."),
      })
      .prefault({})
      .describe('Retries with backoff and jitter (p-retry).'),
    unreachableAfterMs: z
      .number()
      .int()
      .positive()
      .default(30_000)
      .describe('"API server unreachable" once every endpoint has refused connections for this long (ms); 429, 5xx and slowness never count.'),
    watch: z
      .strictObject({
        timeoutSeconds: z.number().int().positive().default(300).describe('Server-side length of one watch request (s), ended with a bookmark; then it resumes.'),
        relistJitterMs: z
          .number()
          .int()
          .min(0)
          .default(30_000)
          .describe('A re-list after 410 Gone waits a random part of this (ms), so that a fleet re-lists over ≥ 30 s after an API-server restart.'),
        backoffInitialMs: z.number().int().positive().default(1_000).describe('First wait after a failed watch or list (ms; doubled, ±20% jitter).'),
        backoffMaxMs: z.number().int().positive().default(30_000).describe('Longest wait between failed watches or lists (ms).'),
      })
      .prefault({})
      .describe('Watches: list, then watch with bookmarks from the list; resume, or re-list on 410.'),
    leaderElection,
    namespace: z
      .string()
      .min(1)
      .optional()
      .describe("connwatch's namespace, where the ConnwatchNodes and the control ConfigMap live. Default: the pod's own namespace (POD_NAMESPACE or the service account's), else connwatch."),
    configMap: z
      .string()
      .min(1)
      .default('connwatch')
      .describe('The ConfigMap operators edit without the controller: data.killSwitch and data.halt ("true"/"false"). The agent watches this one object and caches it in <stateDir>/kube-controls.json.'),
    agent: z
      .strictObject({
        heartbeatMs: z
          .number()
          .int()
          .min(1_000)
          .max(3_600_000)
          .default(300_000)
          .describe("Write the agent's ConnwatchNode status at least this often (ms), changed or not: the controller reads an older heartbeat (two periods) on a NotReady Node as \"went dark\"."),
        jitterMs: z
          .number()
          .int()
          .min(0)
          .max(300_000)
          .default(30_000)
          .describe('Non-urgent status writes and Events wait a random 0..this (ms), so that a fleet hit by one upgrade does not write in the same second; verdict changes are written at once.'),
        eventIntervalMs: z
          .number()
          .int()
          .min(0)
          .default(600_000)
          .describe('At most one Event per cause (reason + Node) per this many ms; repeats in between are counted on the next one.'),
      })
      .prefault({})
      .describe("The agent's own object, Events and heartbeat."),
  })
  .prefault({})
  .describe('kube settings: how connwatch reaches the Kubernetes API server (used in kubernetes mode).');

export type KubeConfig = z.infer<typeof kubeConfig>;

/** Leader election timings as validated (ms). */
export type LeaderTimings = z.infer<typeof leaderElection>;

/** client-go's rules for leader election timings; a sentence saying what is wrong, or undefined. */
export function leaderTimingProblem(t: { leaseDurationMs: number; renewDeadlineMs: number; retryPeriodMs: number }): string | undefined {
  if (!(t.leaseDurationMs > 0 && t.renewDeadlineMs > 0 && t.retryPeriodMs > 0)) return 'leaseDurationMs, renewDeadlineMs and retryPeriodMs must all be positive';
  if (!(t.leaseDurationMs > t.renewDeadlineMs)) {
    return `leaseDurationMs (${t.leaseDurationMs}) must be greater than renewDeadlineMs (${t.renewDeadlineMs}): a leader must step down before candidates may take the lease`;
  }
  if (!(t.renewDeadlineMs > 1.2 * t.retryPeriodMs)) {
    return `renewDeadlineMs (${t.renewDeadlineMs}) must be greater than 1.2 × retryPeriodMs (${1.2 * t.retryPeriodMs}): the leader needs more than one jittered retry before its deadline`;
  }
  return undefined;
}
