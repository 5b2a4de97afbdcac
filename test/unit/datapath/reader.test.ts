import { describe, expect, it } from 'vitest';
import { answeringBatches, type IpRun, type IpRunner } from '../../../src/datapath/ip.js';
import { readDatapath } from '../../../src/datapath/reader.js';
import { fakeIp, fixtureListing } from './helpers.js';

/** Records what ip was asked: argv and stdin. */
function recording(inner: IpRunner): { run: IpRunner; calls: { args: string[]; input?: string }[] } {
  const calls: { args: string[]; input?: string }[] = [];
  return { calls, run: (args, signal, input) => (calls.push({ args, ...(input === undefined ? {} : { input }) }), inner(args, signal, input)) };
}

describe('readDatapath: one ip process per family', () => {
  it('asks each family for its rules, routes and addresses in one batch, and keeps each address once', async () => {
    const { run, calls } = recording(fakeIp(() => fixtureListing('cilium-pre-1.14')));
    const read = await readDatapath(run, () => 42);
    expect(calls).toEqual([
      { args: ['-N', '-d', '-j', '-4', '-batch', '-'], input: 'rule show\nroute show table all\naddr show\n' },
      { args: ['-N', '-d', '-j', '-6', '-batch', '-'], input: 'rule show\nroute show table all\naddr show\n' },
    ]);
    if (!read.ok) throw new Error(read.reason);
    expect(read.families).toEqual([4, 6]);
    expect(read.snapshot.at).toBe(42);
    // The fixture lists both families' addresses for each batch: each one is kept from its own family's batch only.
    const keys = read.snapshot.addresses.map((a) => `${a.dev} ${a.address}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(read.snapshot.addresses.some((a) => a.family === 4)).toBe(true);
    expect(read.snapshot.rules.some((r) => r.family === 6)).toBe(true);
  });

  it('a kernel without IPv6 reads IPv4 alone', async () => {
    const noV6: IpRunner = async (args, signal, input) =>
      args.includes('-6') ? { ok: false, reason: 'ip -6 failed', hint: '', stderr: 'Error: Address family not supported by protocol', code: 2 } : fakeIp(() => fixtureListing('cilium-pre-1.14'))(args, signal, input);
    const read = await readDatapath(noV6, () => 0);
    if (!read.ok) throw new Error(read.reason);
    expect(read.families).toEqual([4]);
    expect(read.snapshot.rules.every((r) => r.family === 4)).toBe(true);
  });

  it('fewer listings than commands (ip stopped early) is a failed read that says so, never a partial snapshot', async () => {
    const short: IpRunner = async () => ({ ok: true, stdout: '[]\n[]\n', stderr: '' });
    expect(await readDatapath(short, () => 0)).toMatchObject({ ok: false, reason: 'ip -N -d -j -4 -batch -: 2 listings for 3 commands' });
  });

  it('garbage in one listing names the command it came from', async () => {
    const garbage: IpRunner = async () => ({ ok: true, stdout: '[]\n{"not":"a list"}\n[]\n', stderr: '' });
    expect(await readDatapath(garbage, () => 0)).toMatchObject({ ok: false, reason: expect.stringMatching(/^ip -N -d -j -4 route show table all: /) });
  });

  it('a failure of ip itself is the read failure, with its reason and hint', async () => {
    const failing: IpRunner = async () => ({ ok: false, reason: 'ip timed out', hint: 'raise datapath.ip.timeoutMs', stderr: '' });
    expect(await readDatapath(failing, () => 0)).toEqual({ ok: false, reason: 'ip timed out', hint: 'raise datapath.ip.timeoutMs' });
  });
});

describe('answeringBatches (single-command runners answering -batch -)', () => {
  it('runs each line with the global options, one output line each, and stops at the first failure like ip without -force', async () => {
    const seen: string[][] = [];
    const single: IpRunner = async (args) => {
      seen.push(args);
      return args.includes('route') ? ({ ok: false, reason: 'no routes', hint: 'h', stderr: 'boom' } satisfies IpRun) : { ok: true, stdout: `[{"cmd":"${args.at(-2)}"}]\n`, stderr: '' };
    };
    const run = answeringBatches(single);
    expect(await run(['-j', '-4', '-batch', '-'], undefined, 'rule show\naddr show\n')).toEqual({ ok: true, stdout: '[{"cmd":"rule"}]\n[{"cmd":"addr"}]\n', stderr: '' });
    expect(seen).toEqual([
      ['-j', '-4', 'rule', 'show'],
      ['-j', '-4', 'addr', 'show'],
    ]);
    expect(await run(['-j', '-4', '-batch', '-'], undefined, 'rule show\nroute show table all\naddr show\n')).toMatchObject({ ok: false, reason: 'no routes' });
    expect(seen.at(-1)).toEqual(['-j', '-4', 'route', 'show', 'table', 'all']);
  });

  it('passes other invocations through untouched', async () => {
    const run = answeringBatches(async (args) => ({ ok: true, stdout: args.join(' '), stderr: '' }));
    expect(await run(['-j', 'addr', 'show'])).toEqual({ ok: true, stdout: '-j addr show', stderr: '' });
  });
});
