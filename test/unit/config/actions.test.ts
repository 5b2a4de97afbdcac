import { describe, expect, it } from 'vitest';
import { resolveActionDefaults } from '../../../src/config/index.js';
import { load } from './helpers.js';

describe('action defaults depend on the mode', () => {
  // The table the issue pins: restore on everywhere; restarts and quarantine shadow on Kubernetes, off on bare metal.
  it.each([
    { mode: 'kubernetes', restore: 'on', restartCilium: 'shadow', quarantine: 'shadow' },
    { mode: 'baremetal', restore: 'on', restartCilium: 'off', quarantine: 'off' },
  ] as const)('$mode', ({ mode, ...expected }) => {
    expect(resolveActionDefaults(mode)).toEqual(expected);
    const loaded = load({ flags: { mode } });
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    expect(loaded.config.actions).toEqual({ killSwitch: false, halt: false, ...expected });
  });

  it('an explicit setting wins over the mode default', () => {
    const loaded = load({ flags: { mode: 'baremetal', set: ['actions.restartCilium=shadow', 'actions.restore=off'] } });
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    expect(loaded.config.actions).toMatchObject({ restore: 'off', restartCilium: 'shadow', quarantine: 'off' });
  });

  it('auto mode resolves defaults after detection', () => {
    const loaded = load({ env: { KUBERNETES_SERVICE_HOST: '10.96.0.1' }, fileExists: () => true });
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    expect(loaded.config.mode).toBe('kubernetes');
    expect(loaded.modeReason).toMatch(/auto → kubernetes/);
    expect(loaded.config.actions.quarantine).toBe('shadow');
  });
});
