import { Counter, type Registry } from 'prom-client';

/** Counts every HTTP request the client sends (each retry too): `connwatch_kube_requests_total{verb,resource,code}`. */
export type RequestCounter = (verb: string, resource: string, code: string) => void;

const NAME = 'connwatch_kube_requests_total';

/** Registers the counter on the registry passed in (never the global one); clients sharing a registry share the counter. */
export function requestCounter(registry: Registry | undefined): RequestCounter {
  if (!registry) return () => undefined;
  const existing = registry.getSingleMetric(NAME);
  const counter =
    (existing as Counter<'verb' | 'resource' | 'code'> | undefined) ??
    new Counter({
      name: NAME,
      help: 'Requests to the Kubernetes API server, by verb, resource and HTTP status (or the error code when no answer came: unreachable, reset, timeout, tls).',
      labelNames: ['verb', 'resource', 'code'] as const,
      registers: [registry],
    });
  return (verb, resource, code) => counter.inc({ verb, resource, code });
}
