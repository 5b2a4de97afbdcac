import { z } from 'zod';
import { parseHostPort } from '../common/hostport.js';

const hostPort = z.string().refine((v) => parseHostPort(v).ok, { message: 'expected host:port (IPv6 as [addr]:port)' });

/** The `probes:` section of connwatch's configuration (owned by the probes box). */
export const probesConfig = z
  .strictObject({
    enabled: z.boolean().default(true).describe('Probe pod-network paths, Cilium and the host network, and judge them (verdicts only: probes never act).'),
    intervalSeconds: z.number().positive().max(3600).default(10).describe('The steady probe interval (s); each round is jittered so a DaemonSet never probes in lockstep.'),
    jitter: z.number().min(0).max(0.5).default(0.2).describe('Share of the interval each steady round is moved by, at random (0–0.5).'),
    timeoutMs: z.number().int().min(50).max(30_000).default(1_000).describe('Hard deadline of one probe (ms): connect to last byte.'),
    burst: z
      .strictObject({
        intervalMs: z.number().int().min(100).max(250).default(150).describe('Time between the starts of burst rounds (100–250 ms).'),
        rounds: z.number().int().min(1).max(50).default(6).describe('Rounds in one burst (a signal or a failing round starts one; bounded).'),
      })
      .prefault({})
      .describe('Bursts: after a signal (networkd, Cilium, an upgrade) or a failing round, probe quickly for a few rounds.'),
    confirmRounds: z.number().int().min(1).max(20).default(3).describe('Consecutive failing rounds (local endpoint and a majority of peers) before probe-only evidence is a broken verdict.'),
    recoverRounds: z.number().int().min(1).max(20).default(3).describe('Consecutive healthy rounds before a probe verdict clears (hysteresis).'),
    peers: z
      .strictObject({
        source: z
          .enum(['auto', 'cilium', 'static', 'none'])
          .default('auto')
          .describe("Where peer targets come from: cilium (its node list's health endpoints), static (the list below), auto (static when given, else cilium), none (probe verdicts cannot tell)."),
        count: z.number().int().min(1).max(50).default(5).describe('Peers sampled per node, chosen by a stable hash of the node name so every endpoint is probed by about this many nodes.'),
        port: z.number().int().min(1).max(65535).default(4240).describe("The health endpoints' HTTP port (cilium-health listens on 4240)."),
        path: z.string().startsWith('/').default('/hello').describe("The path probed on each health endpoint (cilium-health answers GET /hello; connwatch beacons GET /ping)."),
        static: z.array(hostPort).default([]).describe('Static peer targets (host:port), e.g. beacons on bare metal.'),
        refreshSeconds: z.number().positive().default(300).describe("How often the peer list is re-read from Cilium's node list (also after a Cilium restart)."),
      })
      .prefault({})
      .describe('Peer pod-network endpoints on other nodes.'),
    localPod: z
      .string()
      .refine((v) => v === 'auto' || v === 'off' || parseHostPort(v).ok, { message: 'expected auto, off or host:port' })
      .default('auto')
      .describe("This node's own pod endpoint: auto (its health endpoint from Cilium's node list), off, or host:port (a beacon)."),
    hostNetwork: z
      .strictObject({
        gateway: z
          .string()
          .default('auto')
          .describe('The default gateway to ping: auto (from /proc/net/route), off, or an IPv4 address.'),
        tcp: z.array(hostPort).default([]).describe("TCP targets on the host network (e.g. the API server's address:6443); a connection that opens answers."),
        loopback: z.boolean().default(true).describe('Check that 127.0.0.1 works (it does not when the relocated `lookup local` rule is gone).'),
      })
      .prefault({})
      .describe('The host network: gateway, TCP targets, loopback.'),
    cilium: z
      .strictObject({
        enabled: z.boolean().default(true).describe("Probe Cilium's agent API (GET /v1/healthz, judged by the body) and cilium-health."),
        healthSocketPath: z.string().min(1).default('/var/run/cilium/health.sock').describe("cilium-health's API socket (GET /v1beta/status)."),
        settleSeconds: z.number().min(0).default(60).describe('After Cilium restarts or last fails its health check, probe failures cannot tell for this long (health endpoints are recreated).'),
      })
      .prefault({})
      .describe('Cilium as a probe target.'),
    starvation: z
      .strictObject({
        maxLoopLagMs: z.number().int().positive().default(500).describe('Timer lag above this during a round: the agent is starved and its probe failures cannot tell.'),
        maxThrottledRatio: z.number().min(0).max(1).default(0.5).describe("A share of throttled CPU periods above this since the last round (the agent's cgroup): starved."),
      })
      .prefault({})
      .describe("Guards against the agent's own starvation."),
  })
  .prefault({})
  .describe('probes: pod-to-pod paths, Cilium and the host network, weighed into verdicts.');

export type ProbesConfig = z.infer<typeof probesConfig>;
