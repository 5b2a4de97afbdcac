// npm run kube -- up|down|status [--version 1.30] [--port N] [--dir DIR]
// `up` starts the test API server detached and prints its kubeconfig; `down` stops it and
// removes its directory; `status` says whether it runs. `serve` is the detached process itself.

import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startKubeApiServer } from './server.js';

interface State {
  pid: number;
  url: string;
  kubeconfig: string;
  version: string;
}

function defaultDir(): string {
  try {
    accessSync('/run', constants.W_OK);
    return '/run/connwatch-kube';
  } catch {
    return join(process.env.XDG_RUNTIME_DIR ?? tmpdir(), 'connwatch-kube');
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function readState(dir: string): Promise<State | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')) as State;
  } catch {
    return undefined;
  }
}

function printUp(s: State): void {
  process.stdout.write(`kube-apiserver (test) ${s.version} at ${s.url}, pid ${s.pid}\nkubeconfig: ${s.kubeconfig}\n\n${readFileSync(s.kubeconfig, 'utf8')}`);
}

export async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({ args: argv, allowPositionals: true, options: { version: { type: 'string' }, port: { type: 'string' }, dir: { type: 'string' } } });
  const cmd = positionals[0];
  const dir = values.dir ?? defaultDir();
  const version = values.version ?? '1.30';
  switch (cmd) {
    case 'up': {
      const have = await readState(dir);
      if (have && alive(have.pid)) {
        printUp(have);
        return 0;
      }
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const log = openSync(join(dir, 'server.log'), 'a');
      const args = [...process.execArgv, fileURLToPath(import.meta.url), 'serve', '--dir', dir, '--version', version];
      if (values.port) args.push('--port', values.port);
      const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', log, log] });
      child.unref();
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        const s = await readState(dir);
        if (s) {
          printUp(s);
          return 0;
        }
        if (child.exitCode !== null || !alive(child.pid!)) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      process.stderr.write(`kube up: the server did not start; see ${join(dir, 'server.log')}\n`);
      return 1;
    }
    case 'down': {
      const s = await readState(dir);
      if (s && alive(s.pid)) {
        process.kill(s.pid, 'SIGTERM');
        const deadline = Date.now() + 5000;
        while (alive(s.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        if (alive(s.pid)) process.kill(s.pid, 'SIGKILL');
      }
      await rm(dir, { recursive: true, force: true });
      process.stdout.write(s ? `kube-apiserver (test) at ${s.url} stopped; ${dir} removed\n` : `no test API server in ${dir}\n`);
      return 0;
    }
    case 'status': {
      const s = await readState(dir);
      if (s && alive(s.pid)) {
        process.stdout.write(`running: ${s.version} at ${s.url}, pid ${s.pid}, kubeconfig ${s.kubeconfig}\n`);
        return 0;
      }
      process.stdout.write(existsSync(dir) ? `not running (stale state in ${dir}; run down)\n` : 'not running\n');
      return 3;
    }
    case 'serve': {
      const server = await startKubeApiServer({ dir, version, ...(values.port ? { port: Number(values.port) } : {}) });
      const state: State = { pid: process.pid, url: server.url, kubeconfig: server.kubeconfigPath, version };
      await writeFile(join(dir, 'state.json.tmp'), JSON.stringify(state));
      const { rename } = await import('node:fs/promises');
      await rename(join(dir, 'state.json.tmp'), join(dir, 'state.json'));
      await new Promise<void>((resolve) => {
        process.once('SIGTERM', resolve);
        process.once('SIGINT', resolve);
      });
      await server.close();
      return 0;
    }
    default:
      process.stderr.write('usage: npm run kube -- up|down|status [--version 1.30] [--port N] [--dir DIR]\n');
      return 2;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e: unknown) => {
    process.stderr.write(`kube: ${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 1;
  });
}
