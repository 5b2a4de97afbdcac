import { afterAll, describe, expect, it } from 'vitest';
import type { ConfigFlags } from '../../../src/config/index.js';
import { load, tempFiles } from './helpers.js';

const files = tempFiles();
afterAll(() => files.cleanup());

interface Case {
  name: string;
  file?: string;
  env?: Record<string, string>;
  flags?: ConfigFlags;
  /** Reads the value under test from the loaded config. */
  pick: (c: Record<string, any>) => unknown;
  expected: unknown;
  source?: string;
}

const cases: Case[] = [
  { name: 'embedded default', pick: (c) => c.log.level, expected: 'info' },
  { name: 'file over default', file: 'log:\n  level: warn\n', pick: (c) => c.log.level, expected: 'warn' },
  { name: 'env over file', file: 'log:\n  level: warn\n', env: { CONNWATCH_LOG_LEVEL: 'error' }, pick: (c) => c.log.level, expected: 'error', source: 'env CONNWATCH_LOG_LEVEL' },
  {
    name: 'flag over env over file',
    file: 'log:\n  level: warn\n',
    env: { CONNWATCH_LOG_LEVEL: 'error' },
    flags: { 'log-level': 'debug' },
    pick: (c) => c.log.level,
    expected: 'debug',
    source: 'flag --log-level',
  },
  { name: '--set after shorthand wins', flags: { 'log-level': 'debug', set: ['log.level=trace'] }, pick: (c) => c.log.level, expected: 'trace', source: 'flag --set log.level' },
  { name: 'env boolean coerced', env: { CONNWATCH_ACTIONS_KILLSWITCH: 'yes' }, pick: (c) => c.actions.killSwitch, expected: true },
  { name: 'env boolean false over file true', file: 'actions:\n  killSwitch: true\n', env: { CONNWATCH_ACTIONS_KILLSWITCH: 'false' }, pick: (c) => c.actions.killSwitch, expected: false },
  { name: 'env integer coerced', env: { CONNWATCH_TELEMETRY_STALEAFTERSECONDS: '45' }, pick: (c) => c.telemetry.staleAfterSeconds, expected: 45 },
  { name: 'env list as comma list, items typed', env: { CONNWATCH_SIGNALS_NETLINK_FAMILIES: '4' }, pick: (c) => c.signals.netlink.families, expected: [4] },
  { name: 'empty env variable counts as unset', file: 'site: lab\n', env: { CONNWATCH_SITE: '' }, pick: (c) => c.site, expected: 'lab' },
  { name: '--listen shorthand', flags: { listen: '[::1]:9900' }, pick: (c) => c.telemetry.listen, expected: '[::1]:9900' },
  { name: '--state-dir moves the heartbeat default', flags: { 'state-dir': '/srv/cw/' }, pick: (c) => c.telemetry.heartbeatFile, expected: '/srv/cw/heartbeat' },
  { name: 'explicit heartbeat file kept', file: 'telemetry:\n  heartbeatFile: /run/cw-hb\n', pick: (c) => c.telemetry.heartbeatFile, expected: '/run/cw-hb' },
  { name: 'word-split alias of an env name', env: { CONNWATCH_STATE_DIR: '/srv/alias' }, pick: (c) => c.stateDir, expected: '/srv/alias', source: 'env CONNWATCH_STATE_DIR' },
  { name: 'word-split alias, nested', env: { CONNWATCH_ACTIONS_KILL_SWITCH: 'on' }, pick: (c) => c.actions.killSwitch, expected: true },
  { name: 'node defaults to the host name', pick: (c) => c.node, expected: 'test-host' },
  { name: 'node from env', env: { CONNWATCH_NODE: 'n1' }, pick: (c) => c.node, expected: 'n1' },
  { name: 'empty section means defaults', file: 'log:\ntelemetry:\n', pick: (c) => c.telemetry.listen, expected: '127.0.0.1:9820' },
  { name: 'empty file means defaults', file: '', pick: (c) => c.stateDir, expected: '/var/lib/connwatch' },
  { name: 'CONNWATCH_CONFIG names the file', env: { CONNWATCH_CONFIG: '__FILE__' }, file: 'site: from-env-file\n', pick: (c) => c.site, expected: 'from-env-file' },
  { name: 'Kubernetes service-link variables are ignored', env: { CONNWATCH_SERVICE_HOST: '10.0.0.1', CONNWATCH_PORT_9820_TCP_ADDR: '10.0.0.1', CONNWATCH_CONTROLLER_SERVICE_PORT: '80' }, pick: (c) => c.mode, expected: 'baremetal' },
  { name: 'secret from an env _FILE variable', env: { CONNWATCH_ALERTS_SLACK_WEBHOOKURL_FILE: '__SECRET__' }, pick: (c) => c.alerts.slack.webhookUrl.reveal(), expected: 'https://hooks.example/T0/B0/xyz' },
];

describe('configuration precedence: file < env < flags', () => {
  const secretPath = files.write('slack-url', 'https://hooks.example/T0/B0/xyz\n');
  it.each(cases)('$name', ({ file, env = {}, flags, pick, expected, source }) => {
    const configPath = file === undefined ? undefined : files.write(`c-${Math.random().toString(36).slice(2)}.yaml`, file);
    const resolvedEnv = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === '__FILE__' ? configPath : v === '__SECRET__' ? secretPath : v]));
    const viaEnv = env.CONNWATCH_CONFIG !== undefined;
    const result = load({ ...(configPath !== undefined && !viaEnv ? { configPath } : {}), env: resolvedEnv, ...(flags ? { flags } : {}) });
    if (!result.ok) throw new Error(JSON.stringify(result.errors, null, 2));
    expect(pick(result.config)).toEqual(expected);
    if (source !== undefined) expect(Object.values(result.sources)).toContain(source);
  });
});
