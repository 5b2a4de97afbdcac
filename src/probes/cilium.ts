import type { CiliumApi, CiliumHealthStatus, CiliumResult, Probe, ProbeResult } from '../types.js';

/** Cilium's agent, judged by the body of GET /v1/healthz (the handler answers 200 whatever its state). */
export function ciliumProbe(api: Pick<CiliumApi, 'healthz'>, target: string): Probe {
  return {
    kind: 'cilium',
    target,
    async run(signal) {
      const started = performance.now();
      const result = await api.healthz(signal);
      const latencyMs = performance.now() - started;
      if (!result.ok) return { ok: false, code: result.code, reason: `${result.reason} (${result.hint})`, latencyMs };
      const h = result.value;
      if (h.healthy) return { ok: true, latencyMs };
      const why = [h.state !== 'Ok' ? `cilium.state ${h.state}${h.msg ? `: ${h.msg}` : ''}` : '', ...h.failingControllers.map((c) => `controller ${c}`)].filter(Boolean);
      return { ok: false, code: 'unhealthy', reason: why.join('; '), latencyMs };
    },
  };
}

/** cilium-health's own view (GET /v1beta/status): answering in its published shape passes; the failing paths it reports are detail. */
export function ciliumHealthProbe(status: (signal: AbortSignal) => Promise<CiliumResult<CiliumHealthStatus>>, target: string): Probe {
  return {
    kind: 'ciliumHealth',
    target,
    async run(signal): Promise<ProbeResult> {
      const started = performance.now();
      const result = await status(signal);
      const latencyMs = performance.now() - started;
      if (!result.ok) return { ok: false, code: result.code, reason: `${result.reason} (${result.hint})`, latencyMs };
      const { nodes, failing } = result.value;
      return { ok: true, latencyMs, detail: failing.length ? `${failing.length}/${nodes} node(s) with failing paths: ${failing.slice(0, 5).join(', ')}` : `${nodes} node(s), every path answers` };
    },
  };
}
