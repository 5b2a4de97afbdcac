import { describe, expect, it } from 'vitest';
import type { ModeInput } from '../../../src/config/index.js';
import { detectMode, SERVICE_ACCOUNT_TOKEN_PATH } from '../../../src/config/index.js';

const TOKEN = '/fake/serviceaccount/token';
const k8sEnv = { KUBERNETES_SERVICE_HOST: '10.96.0.1' };

const cases: Array<{ name: string; input: ModeInput; expected: { ok: boolean; mode?: string; reason: RegExp } }> = [
  { name: 'explicit kubernetes wins over an empty environment', input: { configured: 'kubernetes', env: {}, fileExists: () => false }, expected: { ok: true, mode: 'kubernetes', reason: /set in configuration/ } },
  { name: 'explicit baremetal wins even inside a pod without token', input: { configured: 'baremetal', env: k8sEnv, fileExists: () => false }, expected: { ok: true, mode: 'baremetal', reason: /set in configuration/ } },
  { name: 'auto: service host and token → kubernetes', input: { configured: 'auto', env: k8sEnv, tokenPath: TOKEN, fileExists: (p) => p === TOKEN }, expected: { ok: true, mode: 'kubernetes', reason: /KUBERNETES_SERVICE_HOST=10.96.0.1 and a token at \/fake/ } },
  { name: 'auto: service host, no token → error, never a fall-back', input: { configured: 'auto', env: k8sEnv, tokenPath: TOKEN, fileExists: () => false }, expected: { ok: false, reason: /looks like a pod .* no service-account token at \/fake/ } },
  { name: 'auto: neither → baremetal', input: { configured: 'auto', env: {}, fileExists: () => false }, expected: { ok: true, mode: 'baremetal', reason: /not set/ } },
  { name: 'auto: token but no service host → baremetal, said so', input: { configured: 'auto', env: {}, tokenPath: TOKEN, fileExists: () => true }, expected: { ok: true, mode: 'baremetal', reason: /a token exists/ } },
  { name: 'auto: empty service host counts as unset', input: { configured: 'auto', env: { KUBERNETES_SERVICE_HOST: '' }, fileExists: () => false }, expected: { ok: true, mode: 'baremetal', reason: /not set/ } },
];

describe('mode detection', () => {
  it.each(cases)('$name', ({ input, expected }) => {
    const decision = detectMode(input);
    expect(decision.ok).toBe(expected.ok);
    expect(decision.reason).toMatch(expected.reason);
    if (decision.ok) expect(decision.mode).toBe(expected.mode);
    else expect(decision.hint).toMatch(/automountServiceAccountToken|mode: baremetal/);
  });

  it('looks at the standard token path by default', () => {
    const seen: string[] = [];
    detectMode({ configured: 'auto', env: k8sEnv, fileExists: (p) => (seen.push(p), true) });
    expect(seen).toEqual([SERVICE_ACCOUNT_TOKEN_PATH]);
  });
});
