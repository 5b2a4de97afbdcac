import type { CliIO } from './cli.js';

export async function runAgentCommand(_values: Record<string, unknown>, io: CliIO): Promise<number> {
  io.stderr('connwatch run: not wired yet.\n');
  return 3;
}
