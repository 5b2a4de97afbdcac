import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { configSchema, envName } from '../../../src/config/index.js';
import { renderConfigDocs } from '../../../src/config/docs.js';
import { settableFields } from '../../../src/config/overrides.js';

const committed = readFileSync(new URL('../../../docs/configuration.md', import.meta.url), 'utf8');

describe('docs/configuration.md', () => {
  it('matches the generator output (run `npm run docs:config` after changing a schema)', () => {
    expect(committed).toBe(renderConfigDocs());
  });

  it('lists every settable key with its variable', () => {
    const docs = renderConfigDocs();
    for (const field of settableFields(configSchema)) {
      expect(docs).toContain(`| \`${field.path.join('.')}\` |`);
      expect(docs).toContain(`\`${envName(field.path)}\``);
    }
  });

  it('does not depend on the machine it is generated on', () => {
    expect(renderConfigDocs()).not.toContain(`\`"${hostname()}"\``);
  });
});
