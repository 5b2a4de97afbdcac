import { z } from 'zod';

/** The `cilium:` section of connwatch's configuration (owned by the cilium box). */
export const ciliumConfig = z.strictObject({}).describe('cilium settings.');

export type CiliumConfig = z.infer<typeof ciliumConfig>;
