import type { CliIO } from './cli.js';

/** `connwatch check`: one-shot diagnosis. Until the datapath box lands it cannot tell (exit 2). */
export async function runCheckCommand(_values: Record<string, unknown>, io: CliIO): Promise<number> {
  io.stderr('connwatch check: cannot tell yet: the datapath diagnosis is not wired in this build.\n');
  return 2;
}
