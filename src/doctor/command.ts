/**
 * `connwatch doctor [--root DIR] [--json]`: the hazard audit, once. Exit 0 none, 1 hazards,
 * 2 cannot audit. With a configuration (--config, CONNWATCH_*) it reads ip the way the agent does
 * and audits doctor.root unless --root says otherwise.
 */
import { formatConfigErrors, loadConfig, type ConfigFlags } from '../config/index.js';
import type { CliIO } from '../types.js';
import { exitCodeOf, runAudit } from './audit.js';
import { formatHuman, formatJson } from './render.js';

export async function runDoctorCommand(values: Record<string, unknown>, io: CliIO): Promise<number> {
  const loaded = loadConfig({ configPath: values.config as string | undefined, env: process.env, flags: values as ConfigFlags });
  if (!loaded.ok) {
    io.stderr(formatConfigErrors(loaded.errors));
    return 2;
  }
  const root = (values.root as string | undefined) ?? loaded.config.doctor.root;
  const report = await runAudit({ root, ip: loaded.config.datapath.ip });
  io.stdout(values.json ? formatJson(report) : formatHuman(report));
  if (report.fatal && !values.json) io.stderr(`connwatch doctor: ${report.fatal}\n`);
  return exitCodeOf(report);
}
