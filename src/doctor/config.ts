import { z } from 'zod';

/** The `doctor:` section: the hazard audit the agent runs at start and hourly (owned by the doctor box). */
export const doctorConfig = z
  .strictObject({
    enabled: z.boolean().default(true).describe('Run the hazard audit in the agent and export connwatch_hazard{kind}.'),
    root: z.string().min(1).default('/').describe('Filesystem root to audit; "/" is the live host (ip, networkctl and the live interfaces are read only then). A fixture tree for tests.'),
    intervalSeconds: z.number().int().min(60).max(86_400).default(3_600).describe('Audit again this often (seconds) after the audit at start.'),
  })
  .describe('The hazard audit (connwatch doctor) inside the agent.');

export type DoctorConfig = z.output<typeof doctorConfig>;
