import { z } from 'zod';

/** The `datapath:` section of connwatch's configuration (owned by the datapath box). */
export const datapathConfig = z.strictObject({}).describe('datapath settings.');

export type DatapathConfig = z.infer<typeof datapathConfig>;
