import { describe, expect, it } from 'vitest';
import { ciliumConfig } from '../../../src/cilium/config.js';

describe('cilium: config section', () => {
  it('defaults to the agent socket with hard timeouts', () => {
    expect(ciliumConfig.parse(undefined)).toMatchObject({ socketPath: '/var/run/cilium/cilium.sock', requestTimeoutMs: 5_000 });
  });

  it('refuses unknown keys and bad timeouts', () => {
    expect(ciliumConfig.safeParse({ socket: '/x' }).success).toBe(false);
    expect(ciliumConfig.safeParse({ requestTimeoutMs: 0 }).success).toBe(false);
  });
});
