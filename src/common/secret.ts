import { readFileSync } from 'node:fs';
import { z } from 'zod';

/**
 * A secret value (routing key, webhook URL, token) that never prints: JSON, util.inspect and
 * string conversion all show "[redacted]". Read it with reveal() at the one place that sends it.
 */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toJSON(): string {
    return '[redacted]';
  }
  toString(): string {
    return '[redacted]';
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return '[redacted]';
  }
}

/**
 * Config shape of a secret: inline (`{ value: "…" }`, or a bare string) or from a file
 * (`{ file: "/etc/connwatch/pd-key" }`, read at start-up, trailing newline trimmed).
 */
export const secretSchema = z
  .union([z.string().min(1), z.strictObject({ value: z.string().min(1) }), z.strictObject({ file: z.string().min(1) })])
  .transform((given, ctx) => {
    if (typeof given === 'string') return new Secret(given);
    if ('value' in given) return new Secret(given.value);
    try {
      return new Secret(readFileSync(given.file, 'utf8').replace(/\r?\n$/, ''));
    } catch (err) {
      ctx.addIssue({
        code: 'custom',
        message: `cannot read secret file ${given.file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}; give a readable file or an inline value`,
      });
      return z.NEVER;
    }
  })
  .describe('A secret: a string, { value: "…" }, or { file: "/path" } (read at start, never printed).');

/** A secret that must be an http(s) URL (webhooks, dead-man's switches): checked at start, never printed. */
export const secretUrlSchema = secretSchema
  .refine((secret) => isHttpUrl(secret.reveal()), { message: 'must be an absolute http:// or https:// URL (the value is not shown: it is a secret)' })
  .describe('A secret http(s) URL: a string, { value: "…" }, or { file: "/path" } (read at start, never printed).');

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}
