/**
 * The Cilium stand-in's modes as data: parsing and checking a mode (from the CLI, the control
 * route or a caller), and what a restart leaves of it. See CiliumMode in types.ts.
 */
import type { CiliumMode, CiliumModeName, CiliumSocketName, HostileKind } from './types.js';

export const MODE_NAMES: readonly CiliumModeName[] = ['ok', 'unhealthy', 'slow', 'hostile', 'not-forwarding', 'no-health-endpoints'];
export const HOSTILE_KINDS: readonly HostileKind[] = ['truncated', 'wrong-type', 'huge', 'nested', 'empty', 'reset', 'hung'];
const SOCKETS: readonly CiliumSocketName[] = ['agent', 'health'];

function fail(msg: string): never {
  throw new Error(`lab: cilium mode: ${msg}`);
}

function num(v: unknown, what: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) fail(`${what} must be a number ${min}..${max}, got ${JSON.stringify(v)}`);
  return v;
}

/** Checks a mode given as a name or an object; returns a normalized copy or throws with what is wrong. */
export function parseCiliumMode(input: unknown): CiliumMode {
  const raw = typeof input === 'string' ? { mode: input } : input;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(`expected a name or an object with "mode", got ${JSON.stringify(input)}`);
  const o = raw as Record<string, unknown>;
  const name = o['mode'];
  if (typeof name !== 'string' || !(MODE_NAMES as readonly string[]).includes(name)) fail(`"mode" must be one of ${MODE_NAMES.join(', ')}, got ${JSON.stringify(name)}`);
  const common: { persistent?: boolean; healthEndpoints?: boolean; sockets?: CiliumSocketName[] } = {};
  if (o['persistent'] !== undefined) {
    if (typeof o['persistent'] !== 'boolean') fail('"persistent" must be a boolean');
    common.persistent = o['persistent'];
  }
  if (o['healthEndpoints'] !== undefined) {
    if (typeof o['healthEndpoints'] !== 'boolean') fail('"healthEndpoints" must be a boolean');
    common.healthEndpoints = o['healthEndpoints'];
  }
  if (o['sockets'] !== undefined) {
    const s = o['sockets'];
    if (!Array.isArray(s) || s.length === 0 || !s.every((x) => (SOCKETS as readonly unknown[]).includes(x))) fail(`"sockets" must be a non-empty list of ${SOCKETS.join(', ')}`);
    common.sockets = [...new Set(s as CiliumSocketName[])];
  }
  switch (name as CiliumModeName) {
    case 'ok':
      return { ...common, mode: 'ok' };
    case 'no-health-endpoints':
      return { ...common, mode: 'no-health-endpoints' };
    case 'not-forwarding':
      return { ...common, mode: 'not-forwarding' };
    case 'unhealthy': {
      const state = o['state'] ?? 'Failure';
      if (state !== 'Failure' && state !== 'Warning') fail('"state" must be Failure or Warning');
      const msg = o['msg'];
      if (msg !== undefined && typeof msg !== 'string') fail('"msg" must be a string');
      return { ...common, mode: 'unhealthy', state, ...(msg !== undefined ? { msg } : {}) };
    }
    case 'slow':
      return { ...common, mode: 'slow', delayMs: num(o['delayMs'], '"delayMs"', 0, 600_000), jitterMs: num(o['jitterMs'] ?? 0, '"jitterMs"', 0, 600_000) };
    case 'hostile': {
      const kind = o['kind'];
      if (typeof kind !== 'string' || !(HOSTILE_KINDS as readonly string[]).includes(kind)) fail(`hostile needs "kind": one of ${HOSTILE_KINDS.join(', ')}, got ${JSON.stringify(kind)}`);
      const mode: CiliumMode = { ...common, mode: 'hostile', kind: kind as HostileKind };
      if (o['sizeMb'] !== undefined) mode.sizeMb = num(o['sizeMb'], '"sizeMb"', 1, 512);
      if (o['depth'] !== undefined) mode.depth = num(o['depth'], '"depth"', 1, 10_000_000);
      return mode;
    }
  }
}

/** Whether the node list (and cilium-health) lists health endpoints in this mode. */
export function healthEndpointsOn(mode: CiliumMode): boolean {
  return mode.mode !== 'no-health-endpoints' && mode.healthEndpoints !== false;
}

/** Whether slow/hostile apply to this socket. */
export function appliesTo(mode: CiliumMode, socket: CiliumSocketName): boolean {
  return mode.sockets === undefined || mode.sockets.includes(socket);
}

/**
 * What a Cilium restart leaves: a persistent mode stays; otherwise `ok`, keeping the endpoint
 * health-checking setting (configuration, not a fault).
 */
export function afterRestart(mode: CiliumMode): CiliumMode {
  if (mode.persistent || mode.mode === 'no-health-endpoints' || mode.mode === 'ok') return mode;
  return mode.healthEndpoints === false ? { mode: 'ok', healthEndpoints: false } : { mode: 'ok' };
}
