import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseLogLines } from '../../src/telemetry/index.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));

describe('logger in a real process', () => {
  it('every line reaches stdout even when the process exits right after logging', async () => {
    const script = [
      "import { createLogger } from './src/telemetry/log.ts';",
      "const log = createLogger({ level: 'info', base: { node: 'n1' } });",
      "for (let i = 0; i < 500; i++) log.info({ i, token: 'tok-secret' }, 'line');",
      "log.fatal('bye');",
      'process.exit(3);',
    ].join('\n');
    const result = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root }).catch((err: { code: number; stdout: string }) => err);
    expect('code' in result ? result.code : 0).toBe(3);
    const records = parseLogLines(result.stdout);
    expect(records).toHaveLength(501);
    expect(records.at(-1)).toMatchObject({ level: 'fatal', msg: 'bye', node: 'n1' });
    expect(result.stdout).not.toContain('tok-secret');
  });
});
