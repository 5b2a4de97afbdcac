import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LoadConfigInput, LoadConfigResult } from '../../../src/config/index.js';
import { loadConfig } from '../../../src/config/index.js';

/** A temp directory for config files, removed by cleanup(). */
export function tempFiles(): { write(name: string, text: string): string; dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'connwatch-config-'));
  return {
    dir,
    write: (name, text) => {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** loadConfig isolated from this machine: no Kubernetes, a fixed host name. */
export function load(input: LoadConfigInput): LoadConfigResult {
  return loadConfig({ hostname: 'test-host', fileExists: () => false, env: {}, ...input });
}
