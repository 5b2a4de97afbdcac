import { z } from 'zod';

/** The `signals:` section of connwatch's configuration (owned by the signals box). */
export const signalsConfig = z.strictObject({}).describe('signals settings.');

export type SignalsConfig = z.infer<typeof signalsConfig>;
