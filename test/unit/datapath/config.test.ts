import { describe, expect, it } from 'vitest';
import { datapathConfig } from '../../../src/datapath/config.js';
import { resolveProfiles } from '../../../src/datapath/profiles.js';

describe('datapath: config section', () => {
  it('has a default for every field', () => {
    expect(datapathConfig.parse(undefined)).toEqual({
      ip: { argv: ['ip'], timeoutMs: 3_000 },
      profiles: ['cilium'],
      extraProfiles: [],
      clusterPodCidrs: [],
      steadyIntervalMs: 15_000,
      followUpMs: [250, 1_000, 3_000],
      baselineFile: 'baseline.json',
      learn: { quietMs: 10_000, cniSettleMs: 20_000, perPodGraceMs: 5_000, coincidenceSlackMs: 5_000 },
    });
  });

  it('takes an operator profile and resolves it by name', () => {
    const config = datapathConfig.parse({
      profiles: ['cilium', 'frr'],
      extraProfiles: [{ name: 'frr', rules: [{ description: 'VPN', priorities: [500], tables: [200], severity: 'critical' }] }],
    });
    expect(resolveProfiles(config.profiles, config.extraProfiles)).toMatchObject({ ok: true, profiles: [{ name: 'cilium' }, { name: 'frr', endpoints: 'none' }] });
  });

  it.each([
    [{ ip: { argv: [] } }, 'ip.argv'],
    [{ ip: { binary: 'ip' } }, 'ip'],
    [{ steadyIntervalMs: 0 }, 'steadyIntervalMs'],
    [{ learn: { quietMs: -1 } }, 'learn.quietMs'],
    [{ clusterPodCidrs: ['10.0.0.0'] }, 'clusterPodCidrs.0'],
    [{ extraProfiles: [{ name: 'x', rules: [{ severity: 'critical' }] }] }, 'extraProfiles.0.rules.0.description'],
    [{ surprise: true }, ''],
  ])('refuses %j, naming the path', (input, path) => {
    const result = datapathConfig.safeParse(input);
    expect(result.success).toBe(false);
    if (!result.success) expect(result.error.issues.map((issue) => issue.path.join('.'))).toContain(path);
  });

  it('documents every field', () => {
    const shape = datapathConfig.unwrap().shape;
    for (const [name, field] of Object.entries(shape)) expect(field.description, name).toBeTruthy();
  });
});
