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

  it('controller without cluster access refuses to start with a sentence (exit 2); release needs a node or --all', async () => {
    const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
    delete process.env.KUBERNETES_SERVICE_HOST;
    try {
      const res = await cli('controller', '--set', 'kube.tokenFile=/nonexistent/token');
      expect(res.code).toBe(EXIT.usage);
      expect(res.err).toMatch(/connwatch controller: /);
    } finally {
      if (saved.host !== undefined) process.env.KUBERNETES_SERVICE_HOST = saved.host;
    }
    const release = await cli('release');
    expect(release.code).toBe(EXIT.usage);
    expect(release.err).toContain('name a node');
  });

  it('doctor says it cannot audit (exit 2) rather than pretending the host is fine', async () => {
    const res = await cli('doctor', '--root', '/nonexistent/connwatch-doctor-root');
    expect(res.code).toBe(EXIT.usage);
    expect(res.err).toContain('cannot audit');
  });
});
