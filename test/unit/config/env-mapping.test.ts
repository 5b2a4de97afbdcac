import { describe, expect, it } from 'vitest';
import { configSchema, envName } from '../../../src/config/index.js';
import { settableFields } from '../../../src/config/overrides.js';
import { isSecretPath, listFields } from '../../../src/config/walk.js';
import { load } from './helpers.js';

const settable = settableFields(configSchema);

describe('environment variables derived from the schema', () => {
  it('names follow CONNWATCH_ + upper-cased path', () => {
    expect(envName(['log', 'level'])).toBe('CONNWATCH_LOG_LEVEL');
    expect(envName(['telemetry', 'listen'])).toBe('CONNWATCH_TELEMETRY_LISTEN');
    expect(envName(['actions', 'killSwitch'])).toBe('CONNWATCH_ACTIONS_KILLSWITCH');
  });

  it('every leaf key outside lists and maps has exactly one variable', () => {
    const leaves = listFields(configSchema).filter((f) => f.kind !== 'object' && !f.path.includes('[]') && !f.path.includes('<key>'));
    expect(settable.map((f) => f.path.join('.'))).toEqual(leaves.map((f) => f.path.join('.')));
    const names = settable.map((f) => envName(f.path));
    expect(new Set(names).size).toBe(names.length);
  });

  it.each(settable.filter((f) => ['string', 'integer', 'number', 'boolean', 'enum'].includes(f.kind)).map((f) => ({ path: f.path.join('.'), field: f })))(
    'the variable for $path reaches the key',
    ({ field }) => {
      // A value of the right type: the default when there is one, else something the type accepts.
      const sample =
        field.kind === 'boolean' ? 'true'
          : field.kind === 'enum' ? String(field.values?.[field.values.length - 1])
            : field.kind === 'integer' || field.kind === 'number' ? String(field.max ?? field.min ?? 7)
              : field.path.join('.') === 'telemetry.listen' ? '127.0.0.1:9999'
                : field.kind === 'string' && typeof field.defaultValue === 'string' && field.defaultValue !== '' ? field.defaultValue
                  : 'x';
      const result = load({ env: { [envName(field.path)]: sample } });
      // Some keys need siblings (a sink needs its secret); the point is only that the variable was recognised.
      if (!result.ok) {
        for (const error of result.errors) expect(error.path).not.toBe('(environment)');
        return;
      }
      expect(result.sources[field.path.join('.')]).toBe(`env ${envName(field.path)}`);
    },
  );

  it('knows which paths are secrets, also inside maps and lists', () => {
    expect(isSecretPath(configSchema, ['alerts', 'slack', 'webhookUrl'])).toBe(true);
    expect(isSecretPath(configSchema, ['alerts', 'slack', 'webhookUrl', 'value'])).toBe(true);
    expect(isSecretPath(configSchema, ['alerts', 'webhooks', 0, 'url'])).toBe(true);
    expect(isSecretPath(configSchema, ['alerts', 'webhooks', 0, 'headers', 'Authorization'])).toBe(true);
    expect(isSecretPath(configSchema, ['telemetry', 'listen'])).toBe(false);
  });
});
