import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { EXIT, main } from '../../src/cli.js';

const version = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;

async function cli(...argv: string[]) {
  let out = '';
  let err = '';
  const code = await main(argv, { stdout: (t) => (out += t), stderr: (t) => (err += t) });
  return { code, out, err };
}

describe('connwatch CLI', () => {
  it('prints the version', async () => {
    expect(await cli('version')).toMatchObject({ code: EXIT.ok, out: `connwatch ${version}\n` });
    expect((await cli('--version')).out).toBe(`connwatch ${version}\n`);
  });

  it('lists every command in its help and exits 0 for --help, 2 with no command', async () => {
    const help = await cli('--help');
    expect(help.code).toBe(EXIT.ok);
    for (const name of ['run', 'controller', 'check', 'doctor', 'beacon', 'version']) expect(help.out).toContain(`  ${name}`);
    expect((await cli()).code).toBe(EXIT.usage);
  });

  it.each(['run', 'controller', 'check', 'doctor', 'beacon', 'version'])('%s --help exits 0 and shows its usage', async (name) => {
    const res = await cli(name, '--help');
    expect(res.code).toBe(EXIT.ok);
    expect(res.out).toContain(`connwatch ${name}`);
  });

  it('rejects an unknown command and an unknown flag with exit 2 and a hint', async () => {
    const unknown = await cli('restart-everything');
    expect(unknown).toMatchObject({ code: EXIT.usage });
    expect(unknown.err).toContain("unknown command 'restart-everything'");
    const flag = await cli('check', '--frobnicate');
    expect(flag.code).toBe(EXIT.usage);
    expect(flag.err).toContain("connwatch check --help");
  });

  it('beacon without a node name refuses to guess one', async () => {
    const saved = process.env.NODE_NAME;
    delete process.env.NODE_NAME;
    try {
      const res = await cli('beacon');
      expect(res.code).toBe(EXIT.usage);
      expect(res.err).toContain('no node name: pass --node or set NODE_NAME');
    } finally {
      if (saved !== undefined) process.env.NODE_NAME = saved;
    }
  });

  it.each(['controller'])('%s says it cannot do its job in this release and exits non-zero', async (name) => {
    const res = await cli(name);
    expect(res.code).toBe(EXIT.unavailable);
    expect(res.err).toContain('not available in this release');
  });

  it('doctor says it cannot audit (exit 2) rather than pretending the host is fine', async () => {
    const res = await cli('doctor');
    expect(res.code).toBe(EXIT.usage);
    expect(res.err).toContain('cannot audit');
  });
});
