#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CONFIG_PARSE_ARGS_OPTIONS } from './config/overrides.js';
import { EXIT } from './exit.js';
import type { CliIO } from './types.js';
import { VERSION } from './version.js';

export { EXIT };

export type { CliIO };

interface Command {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  /** The command takes positional arguments (node names). */
  allowPositionals?: boolean;
  run(values: Record<string, unknown>, positionals: string[], io: CliIO): Promise<number>;
}

const CONFIG_OPTIONS = { ...CONFIG_PARSE_ARGS_OPTIONS, help: { type: 'boolean', short: 'h' } } as const;

const CONFIG_HELP = `
Configuration (precedence: file < CONNWATCH_* environment < flags):
  -c, --config FILE      YAML configuration file
      --set PATH=VALUE   set any key, e.g. --set actions.killSwitch=true (repeatable)
      --mode MODE        kubernetes | baremetal | auto
      --log-level LEVEL  trace | debug | info | warn | error | fatal
      --state-dir DIR    where the baseline, journal, spool and heartbeat live
      --listen ADDR      telemetry address (default 127.0.0.1:9820)
      --node NAME        this node's name (default: the host name)
      --site NAME        cluster or site name, used to group alerts
  See docs/configuration.md for every key and its environment variable.`;

const COMMANDS: Record<string, Command> = {
  run: {
    summary: 'run the node agent: hear networkd, restore what it removed, page',
    usage: 'connwatch run [options]',
    options: CONFIG_OPTIONS,
    run: async (values, _p, io) => (await import('./agent.js')).runAgentCommand(values, io),
  },
  check: {
    summary: 'one-shot diagnosis of this node (exit 0 healthy, 1 broken, 2 cannot tell)',
    usage: 'connwatch check [options]',
    options: { ...CONFIG_OPTIONS, json: { type: 'boolean' } },
    run: async (values, _p, io) => (await import('./check.js')).runCheckCommand(values, io),
  },
  doctor: {
    summary: 'audit this host for the hazards behind the incident (exit 0 none, 1 hazards, 2 cannot audit)',
    usage: 'connwatch doctor [--root DIR] [--json] [options]\n  --root DIR  audit a filesystem tree instead of this host (default /; live rules, routes and capabilities only for /)',
    options: { ...CONFIG_OPTIONS, json: { type: 'boolean' }, root: { type: 'string' } },
    run: async (values, _p, io) => (await import('./doctor/command.js')).runDoctorCommand(values, io),
  },
  controller: {
    summary: 'run the fleet controller (leader-elected; grants, pacing, fleet incident)',
    usage: 'connwatch controller [options]',
    options: CONFIG_OPTIONS,
    run: async (values, _p, io) => (await import('./controller/index.js')).runControllerCommand(values, io),
  },
  release: {
    summary: "remove connwatch's marks (taint, condition, its own cordon) from nodes, even under the kill switch",
    usage: 'connwatch release NODE… | --all [options]',
    options: { ...CONFIG_OPTIONS, all: { type: 'boolean' } },
    allowPositionals: true,
    run: async (values, positionals, io) => (await import('./controller/index.js')).runReleaseCommand(values, positionals, io),
  },
  beacon: {
    summary: 'run the pod-network beacon that peers probe (GET /ping)',
    usage: 'connwatch beacon [--listen ADDR] [--node NAME] [--pod-ip IP]\n  defaults: --listen [::]:4241, NODE_NAME and POD_IP from the environment (downward API)',
    options: { listen: { type: 'string' }, node: { type: 'string' }, 'pod-ip': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    run: async (values, _p, io) => (await import('./beacon/index.js')).runBeaconCommand(values, io),
  },
  version: {
    summary: 'print the version',
    usage: 'connwatch version',
    options: { help: { type: 'boolean', short: 'h' } },
    run: async (_v, _p, io) => {
      io.stdout(`connwatch ${VERSION}\n`);
      return EXIT.ok;
    },
  },
};

function topHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `connwatch ${VERSION} — connectivity watchdog for Cilium nodes and bare-metal hosts\n\nUsage: connwatch <command> [options]\n\nCommands:\n${lines.join('\n')}\n\nRun 'connwatch <command> --help' for a command's options.\n`;
}

function commandHelp(command: Command): string {
  const configurable = 'config' in command.options;
  const json = 'json' in command.options ? '\n      --json             machine-readable output' : '';
  return `${command.usage}\n\n${command.summary}\n${configurable ? CONFIG_HELP + json + '\n' : ''}`;
}

/** Runs the CLI with the given arguments; resolves to the exit code (never calls process.exit). */
export async function main(argv: string[], io: CliIO = defaultIO()): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    io.stdout(topHelp());
    return name ? EXIT.ok : EXIT.usage;
  }
  if (name === '--version') return COMMANDS.version!.run({}, [], io);
  const command = COMMANDS[name];
  if (!command) {
    io.stderr(`connwatch: unknown command '${name}'. Commands: ${Object.keys(COMMANDS).join(', ')}.\n`);
    return EXIT.usage;
  }
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({ args: rest, options: command.options, allowPositionals: command.allowPositionals === true, strict: true });
  } catch (err) {
    io.stderr(`connwatch ${name}: ${(err as Error).message}\nRun 'connwatch ${name} --help'.\n`);
    return EXIT.usage;
  }
  if (parsed.values.help) {
    io.stdout(commandHelp(command));
    return EXIT.ok;
  }
  return command.run(parsed.values, parsed.positionals, io);
}

function defaultIO(): CliIO {
  return { stdout: (t) => process.stdout.write(t), stderr: (t) => process.stderr.write(t) };
}

function invokedDirectly(): boolean {
  try {
    return realpathSync(process.argv[1] ?? '') === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`connwatch: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
