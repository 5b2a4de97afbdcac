import { afterAll, describe, expect, it } from 'vitest';
import type { ConfigError, ConfigErrorCode, ConfigFlags } from '../../../src/config/index.js';
import { formatConfigErrors, loadConfig } from '../../../src/config/index.js';
import { load, tempFiles } from './helpers.js';

const files = tempFiles();
afterAll(() => files.cleanup());

interface Case {
  name: string;
  file?: string;
  configPath?: string;
  env?: Record<string, string>;
  flags?: ConfigFlags;
  expected: { code: ConfigErrorCode; path: string; given?: RegExp | string; accepted?: RegExp; message: RegExp; source?: RegExp };
}

const cases: Case[] = [
  {
    name: 'unknown top-level key, with did-you-mean and line:col',
    file: 'mode: baremetal\nstatedir: /x\n',
    expected: { code: 'unknown_key', path: 'statedir', given: 'key "statedir"', accepted: /stateDir/, message: /unknown key "statedir" — did you mean "stateDir"\?/, source: /\.yaml:2:1$/ },
  },
  {
    name: 'unknown nested key',
    file: 'telemetry:\n  lisen: 127.0.0.1:1\n',
    expected: { code: 'unknown_key', path: 'telemetry.lisen', accepted: /listen, socket, heartbeatFile, staleAfterSeconds/, message: /did you mean "listen"/, source: /:2:3$/ },
  },
  {
    name: 'wrong type',
    file: 'telemetry:\n  staleAfterSeconds: soon\n',
    expected: { code: 'wrong_type', path: 'telemetry.staleAfterSeconds', given: '"soon"', accepted: /an integer from 1 to 3600/, message: /wrong type: expected number/, source: /:2:3$/ },
  },
  {
    name: 'wrong type for a section',
    file: 'log: loud\n',
    expected: { code: 'wrong_type', path: 'log', given: '"loud"', message: /wrong type: expected object/ },
  },
  {
    name: 'required key missing (a sink without its secret)',
    file: 'alerts:\n  slack: {}\n',
    expected: { code: 'required', path: 'alerts.slack.webhookUrl', given: '(not set)', accepted: /secret/, message: /required, not set/, source: /:2:3$/ },
  },
  {
    name: 'out of range (too small)',
    file: 'telemetry:\n  staleAfterSeconds: 0\n',
    expected: { code: 'out_of_range', path: 'telemetry.staleAfterSeconds', given: '0', accepted: /from 1 to 3600/, message: /out of range: below the minimum 1/ },
  },
  {
    name: 'out of range (too big)',
    file: 'telemetry:\n  staleAfterSeconds: 7200\n',
    expected: { code: 'out_of_range', path: 'telemetry.staleAfterSeconds', given: '7200', message: /above the maximum 3600/ },
  },
  {
    name: 'out of range port in listen',
    file: 'telemetry:\n  listen: "127.0.0.1:70000"\n',
    expected: { code: 'bad_value', path: 'telemetry.listen', given: '"127.0.0.1:70000"', accepted: /host:port/, message: /port 70000 is out of range/ },
  },
  {
    name: 'bad enum',
    file: 'mode: cloud\n',
    expected: { code: 'bad_enum', path: 'mode', given: '"cloud"', accepted: /one of: kubernetes, baremetal, auto/, message: /not one of the accepted values/, source: /:1:1$/ },
  },
  {
    name: 'bad enum from a YAML 1.1 boolean habit',
    file: 'actions:\n  restore: yes\n',
    expected: { code: 'bad_enum', path: 'actions.restore', given: '"yes"', accepted: /one of: on, shadow, off/, message: /not one of/ },
  },
  {
    name: 'unreadable file (missing)',
    configPath: '/nonexistent/connwatch.yaml',
    expected: { code: 'unreadable_file', path: '(config file)', given: '"/nonexistent/connwatch.yaml"', accepted: /readable YAML file/, message: /ENOENT/ },
  },
  {
    name: 'unreadable file (a directory)',
    configPath: '__DIR__',
    expected: { code: 'unreadable_file', path: '(config file)', message: /EISDIR/ },
  },
  {
    name: 'bad YAML with line and column',
    file: 'mode: baremetal\nlog:\n  level: [info\n',
    expected: { code: 'bad_yaml', path: '(config file)', given: /^line \d+, column \d+$/, accepted: /YAML/, message: /^bad YAML: /, source: /\.yaml:\d+:\d+$/ },
  },
  {
    name: 'duplicate key',
    file: 'site: a\nsite: b\n',
    expected: { code: 'bad_yaml', path: '(config file)', given: 'line 2, column 1', message: /unique/ },
  },
  {
    name: 'unresolved alias',
    file: 'site: &a x\nnode: *b\n',
    expected: { code: 'bad_yaml', path: '(config file)', message: /bad YAML: Unresolved alias/ },
  },
  {
    name: 'cyclic alias',
    file: 'signals: &a [*a]\n',
    expected: { code: 'bad_yaml', path: '(config file)', message: /bad YAML: .*cycle/ },
  },
  {
    name: 'top level not a mapping',
    file: '- mode: baremetal\n',
    expected: { code: 'bad_yaml', path: '(config file)', given: 'a list of 1 item', message: /mapping at its top level/ },
  },
  {
    name: 'bad env value (number)',
    env: { CONNWATCH_TELEMETRY_STALEAFTERSECONDS: 'soon' },
    expected: { code: 'bad_env_value', path: 'telemetry.staleAfterSeconds', given: '"soon"', accepted: /an integer/, message: /bad value in CONNWATCH_TELEMETRY_STALEAFTERSECONDS: "soon" is not a number/, source: /^env CONNWATCH_TELEMETRY_STALEAFTERSECONDS$/ },
  },
  {
    name: 'bad env value (boolean)',
    env: { CONNWATCH_ACTIONS_KILLSWITCH: 'maybe' },
    expected: { code: 'bad_env_value', path: 'actions.killSwitch', given: '"maybe"', accepted: /true or false/, message: /not a boolean/ },
  },
  {
    name: 'bad env value (enum) reported by the schema with the variable as source',
    env: { CONNWATCH_MODE: 'cloud' },
    expected: { code: 'bad_enum', path: 'mode', given: '"cloud"', message: /not one of/, source: /^env CONNWATCH_MODE$/ },
  },
  {
    name: 'env value out of range',
    env: { CONNWATCH_TELEMETRY_LISTEN: '127.0.0.1:0' },
    expected: { code: 'bad_value', path: 'telemetry.listen', message: /port 0 is out of range/, source: /^env CONNWATCH_TELEMETRY_LISTEN$/ },
  },
  {
    name: 'the same key from two variables',
    env: { CONNWATCH_STATEDIR: '/a', CONNWATCH_STATE_DIR: '/b' },
    expected: { code: 'bad_env_value', path: 'stateDir', given: 'CONNWATCH_STATEDIR and CONNWATCH_STATE_DIR', message: /both set stateDir; keep one/ },
  },
  {
    name: 'unknown env variable, with did-you-mean',
    env: { CONNWATCH_LOG_LEVLE: 'debug' },
    expected: { code: 'unknown_env', path: '(environment)', given: 'CONNWATCH_LOG_LEVLE', message: /did you mean CONNWATCH_LOG_LEVEL\?/ },
  },
  {
    name: 'unknown --set key, with did-you-mean',
    flags: { set: ['telemetry.lisen=127.0.0.1:1'] },
    expected: { code: 'unknown_key', path: 'telemetry.lisen', accepted: /keys at telemetry/, message: /did you mean "listen"/, source: /^flag --set telemetry.lisen$/ },
  },
  {
    name: '--set without "="',
    flags: { set: ['log.level'] },
    expected: { code: 'bad_flag', path: 'log.level', accepted: /--set <key.path>=<value>/, message: /missing "="/ },
  },
  {
    name: 'bad flag value',
    flags: { mode: 'cloud' },
    expected: { code: 'bad_enum', path: 'mode', given: '"cloud"', message: /not one of/, source: /^flag --mode$/ },
  },
  {
    name: 'unreadable secret file (redacted)',
    file: 'alerts:\n  slack:\n    webhookUrl: { file: /nonexistent/slack-url }\n',
    expected: { code: 'unreadable_secret', path: 'alerts.slack.webhookUrl', given: '[redacted]', accepted: /secret/, message: /cannot read secret file \/nonexistent\/slack-url: ENOENT/, source: /:3:5$/ },
  },
  {
    name: 'secret of the wrong shape (redacted)',
    file: 'alerts:\n  slack:\n    webhookUrl: { valu: "https://hooks.example/very-secret" }\n',
    expected: { code: 'bad_secret', path: 'alerts.slack.webhookUrl', given: '[redacted]', accepted: /a string, \{ value/, message: /none of the accepted forms/ },
  },
  {
    name: 'pod without its service-account token',
    env: { KUBERNETES_SERVICE_HOST: '10.96.0.1' },
    expected: { code: 'ambiguous_mode', path: 'mode', given: '"auto"', message: /no service-account token .*automountServiceAccountToken, or mode: baremetal/ },
  },
];

function matches(actual: string | undefined, expected: RegExp | string | undefined): void {
  if (expected === undefined) return;
  if (typeof expected === 'string') expect(actual).toBe(expected);
  else expect(actual).toMatch(expected);
}

describe('every class of configuration mistake is reported with path, given and accepted', () => {
  it.each(cases)('$name', ({ file, configPath, env, flags, expected }) => {
    const path = configPath === '__DIR__' ? files.dir : configPath ?? (file !== undefined ? files.write(`e-${Math.random().toString(36).slice(2)}.yaml`, file) : undefined);
    const result = load({ ...(path !== undefined ? { configPath: path } : {}), env: env ?? {}, ...(flags ? { flags } : {}) });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const error = result.errors.find((e) => e.path === expected.path);
    expect(error, `no error at ${expected.path} in ${JSON.stringify(result.errors)}`).toBeDefined();
    const found = error as ConfigError;
    expect(found.code).toBe(expected.code);
    matches(found.given, expected.given);
    matches(found.accepted, expected.accepted);
    matches(found.message, expected.message);
    matches(found.source, expected.source);
    expect(found.accepted.length).toBeGreaterThan(0);
  });

  it('covers every error code', () => {
    const all: ConfigErrorCode[] = ['unreadable_file', 'bad_yaml', 'unknown_key', 'unknown_env', 'bad_env_value', 'bad_flag', 'wrong_type', 'out_of_range', 'bad_enum', 'bad_value', 'bad_secret', 'unreadable_secret', 'ambiguous_mode', 'required'];
    expect(new Set(cases.map((c) => c.expected.code))).toEqual(new Set(all));
  });

  it('reports mistakes from the file, env and flags together', () => {
    const path = files.write('many.yaml', 'mode: cloud\nsatedir: /x\n');
    const result = load({ configPath: path, env: { CONNWATCH_ACTIONS_HALT: 'perhaps' }, flags: { set: ['nope=1'] } });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors.map((e) => e.path).sort()).toEqual(['actions.halt', 'mode', 'nope', 'satedir']);
  });

  it('never prints a secret, inline or from env, in errors', () => {
    const inline = 'hunter2-inline-secret';
    const path = files.write('secret.yaml', `alerts:\n  slack:\n    webhookUrl: { value: "${inline}", extra: 1 }\n  pagerduty:\n    routingKey: 12345\n`);
    const result = load({ configPath: path, env: { CONNWATCH_ALERTS_PAGERDUTY_ROUTINGKEY: 'env-secret-xyz' }, flags: { set: ['alerts.slack.webhookUrl=flag-secret-abc'] } });
    // the flag fixes slack; make sure a failing secret path is still redacted
    const bad = load({ configPath: path });
    for (const r of [result, bad]) {
      if (r.ok) continue;
      const text = formatConfigErrors(r.errors);
      expect(text).not.toContain(inline);
      expect(text).not.toContain('env-secret-xyz');
      expect(text).not.toContain('flag-secret-abc');
      expect(text).not.toContain('12345');
    }
    expect(bad.ok).toBe(false);
  });

  it('formats errors as one block per mistake', () => {
    const result = load({ env: { CONNWATCH_MODE: 'cloud' } });
    if (result.ok) throw new Error('expected an error');
    expect(formatConfigErrors(result.errors)).toBe(
      [
        'configuration: 1 error',
        '- mode  (env CONNWATCH_MODE)',
        '    given:    "cloud"',
        '    accepted: one of: kubernetes, baremetal, auto',
        '    not one of the accepted values',
        '',
      ].join('\n'),
    );
  });

  it('does not read process.env unless given it', () => {
    const result = loadConfig({ env: {}, hostname: 'h', fileExists: () => false });
    expect(result.ok).toBe(true);
  });
});
