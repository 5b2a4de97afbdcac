/**
 * The lab's CLI: `npm run lab -- <command>`. `up` prints one JSON object (LabDescription) and
 * leaves the lab running; later commands find it by its state file under /run/connwatch-lab.
 * Commands other than up/down/status act on `--name <lab>`, or on the only lab running.
 */
import { pathToFileURL } from 'node:url';
import { attachLab, downLab, listLabs, parseCiliumMode, startLab } from './index.js';
import { isAlive } from './run.js';
import { SYSTEMD_USAGE, systemdCommand } from './systemd/cli.js';
import { readState, stateFileFor } from './state.js';
import type { LabProfile } from './types.js';

const USAGE = `usage: npm run lab -- <command> [--name <lab>]
  up [--profile cilium-pre-1.14|cilium-1.14] [--name <lab>] [--no-cilium] [--remote-nodes N]
                               build a lab, print its description (JSON)
  down [<lab>]                 remove a lab (all labs this tool created when no name is given)
  status                       list labs and whether their processes live
  restart-networkd             SIGTERM + start networkd; print rules and routes before and after (JSON)
  reconfigure [<link>]         networkctl reconfigure (all managed links when absent)
  restart-bus                  restart the lab's dbus-daemon
  restart-cilium [--process]   the stand-in re-installs the profile's CNI state and resets a
                               non-persistent mode (--process: kill and start its process first)
  cilium-mode [<mode> [json]]  switch the stand-in's mode: ok | unhealthy | slow | hostile |
                               not-forwarding | no-health-endpoints; json adds fields, e.g.
                               cilium-mode slow '{"delayMs":200,"jitterMs":50}'
                               cilium-mode hostile '{"kind":"truncated"}'; no mode: print it
  delay <target|all> <ms> [jitterMs]   delay every answer of a responder (0 clears)
  responder-stop <target> | responder-start <target>   a responder down / up again
  hog <workers>                run that many busy loops in the node namespace (0 stops them)
  pod-add <pod> [--peer]       endpoint churn: add a pod (on the node unless --peer)
  pod-del <pod>                remove a pod
  loss <target> <percent>      random loss on the path to node|peer|pods|<pod> (nftables numgen)
  blackhole <target>           drop everything to node|peer|pods|<pod> (pods: every pod address)
  clear                        remove loss and blackholes
  exec <target> -- <argv…>     run a command in node|peer|<pod> (lab bus at the standard path)
${SYSTEMD_USAGE}`;

interface Args {
  positional: string[];
  flags: Map<string, string | true>;
  rest: string[];
}

function parseArgs(argv: string[]): Args {
  const dash = argv.indexOf('--');
  const head = dash >= 0 ? argv.slice(0, dash) : argv;
  const rest = dash >= 0 ? argv.slice(dash + 1) : [];
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < head.length; i++) {
    const a = head[i] ?? '';
    if (!a.startsWith('--')) {
      positional.push(a);
      continue;
    }
    const key = a.slice(2);
    const next = head[i + 1];
    if (['name', 'profile', 'remote-nodes'].includes(key) && next !== undefined) {
      flags.set(key, next);
      i++;
    } else flags.set(key, true);
  }
  return { positional, flags, rest };
}

function pickLab(args: Args): string {
  const name = args.flags.get('name');
  if (typeof name === 'string') return name;
  const labs = listLabs();
  if (labs.length === 1 && labs[0] !== undefined) return labs[0];
  throw new Error(labs.length === 0 ? 'lab: no lab is running (hint: npm run lab -- up)' : `lab: several labs run (${labs.join(', ')}): pass --name`);
}

function print(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

function status(): unknown[] {
  return listLabs().map((name) => {
    const s = readState(stateFileFor(name));
    if (!s) return { name, state: 'unreadable' };
    const procs = { keeper: s.procs.keeper, dbus: s.procs.dbus, networkd: s.procs.networkd, cilium: s.procs.cilium };
    return {
      name,
      profile: s.profile,
      pods: s.pods.map((p) => p.name),
      alive: Object.fromEntries(Object.entries(procs).filter(([, r]) => r).map(([k, r]) => [k, isAlive(r)])),
    };
  });
}

async function command(cmd: string | undefined, args: Args): Promise<void> {
  const [, a1, a2] = args.positional;
  switch (cmd) {
    case 'up': {
      const profile = (args.flags.get('profile') ?? 'cilium-pre-1.14') as LabProfile;
      if (profile !== 'cilium-pre-1.14' && profile !== 'cilium-1.14') throw new Error(`lab: --profile must be cilium-pre-1.14 or cilium-1.14, got ${String(profile)}`);
      const name = args.flags.get('name');
      const remote = args.flags.get('remote-nodes');
      const lab = await startLab({
        profile,
        ...(typeof name === 'string' ? { name } : {}),
        ...(typeof remote === 'string' ? { remoteNodes: Number(remote) } : {}),
        cilium: !args.flags.has('no-cilium'),
      });
      return print(lab.description);
    }
    case 'systemd':
      return systemdCommand(a1, { name: args.flags.get('name') ?? a2, connwatch: args.flags.has('connwatch') }, print);
    case 'down':
      return downLab(a1 ?? (typeof args.flags.get('name') === 'string' ? (args.flags.get('name') as string) : undefined));
    case 'status':
      return print(status());
    case 'restart-networkd':
      return print(await attachLab(pickLab(args)).restartNetworkd());
    case 'reconfigure':
      return attachLab(pickLab(args)).reconfigure(a1);
    case 'restart-bus':
      return attachLab(pickLab(args)).restartBus();
    case 'restart-cilium':
      return attachLab(pickLab(args)).restartCilium({ process: args.flags.has('process') });
    case 'cilium-mode': {
      const lab = attachLab(pickLab(args));
      if (!a1) return print(lab.description.cilium.mode);
      let extra: unknown = {};
      if (a2 !== undefined) {
        try {
          extra = JSON.parse(a2);
        } catch {
          throw new Error(`lab: cilium-mode: the second argument must be a JSON object, got ${a2}`);
        }
      }
      if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) throw new Error('lab: cilium-mode: the second argument must be a JSON object');
      return print(await lab.ciliumMode(parseCiliumMode({ ...extra, mode: a1 })));
    }
    case 'delay': {
      const [, , , a3] = args.positional;
      if (!a1 || a2 === undefined) throw new Error('lab: delay needs <target|all> <ms> [jitterMs]');
      return attachLab(pickLab(args)).delay(a1, Number(a2), a3 === undefined ? 0 : Number(a3));
    }
    case 'responder-stop':
      if (!a1) throw new Error('lab: responder-stop needs <target>');
      return attachLab(pickLab(args)).stopResponder(a1);
    case 'responder-start':
      if (!a1) throw new Error('lab: responder-start needs <target>');
      return attachLab(pickLab(args)).startResponder(a1);
    case 'hog':
      if (a1 === undefined) throw new Error('lab: hog needs <workers>');
      return print({ pids: await attachLab(pickLab(args)).hog(Number(a1)) });
    case 'pod-add':
      if (!a1) throw new Error('lab: pod-add needs a pod name');
      return print(await attachLab(pickLab(args)).addPod(a1, args.flags.has('peer') ? 'peer' : 'node'));
    case 'pod-del':
      if (!a1) throw new Error('lab: pod-del needs a pod name');
      return attachLab(pickLab(args)).removePod(a1);
    case 'loss':
      if (!a1 || a2 === undefined) throw new Error('lab: loss needs <target> <percent>');
      return attachLab(pickLab(args)).loss(a1, Number(a2));
    case 'blackhole':
      if (!a1) throw new Error('lab: blackhole needs <target>');
      return attachLab(pickLab(args)).blackhole(a1);
    case 'clear':
      return attachLab(pickLab(args)).clear();
    case 'exec': {
      if (!a1 || args.rest.length === 0) throw new Error('lab: exec needs <target> -- <argv…>');
      const r = await attachLab(pickLab(args)).exec(a1, args.rest);
      process.stdout.write(r.stdout);
      process.stderr.write(r.stderr);
      process.exitCode = r.code;
      return;
    }
    default:
      process.stderr.write(USAGE + '\n');
      process.exitCode = 2;
  }
}

/** Entry point; sets process.exitCode rather than exiting, so output is flushed. */
export async function main(argv: string[]): Promise<void> {
  const args = parseArgs(argv);
  try {
    await command(args.positional[0], args);
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main(process.argv.slice(2));
