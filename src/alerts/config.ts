import { z } from 'zod';

/** The `alerts:` section of connwatch's configuration (owned by the alerts box). */
export const alertsConfig = z.strictObject({}).describe('alerts settings.');

export type AlertsConfig = z.infer<typeof alertsConfig>;
