import { pino } from 'pino';
import type { DestinationStream, Level, Logger } from 'pino';

/** Key names whose values are secrets wherever they appear in a log record. */
export const SECRET_KEYS = [
  'secret', 'password', 'passwd', 'token', 'apiKey', 'routingKey', 'integrationKey', 'webhookUrl',
  'authorization', 'Authorization', 'cookie', 'bearer', 'privateKey', 'credentials',
] as const;

/** Redaction paths: each secret key at the top and up to three levels down (fast-redact has no deep wildcard). */
export const REDACT_PATHS: string[] = SECRET_KEYS.flatMap((key) => [key, `*.${key}`, `*.*.${key}`, `*.*.*.${key}`]);

/** Logger settings; the destination defaults to stdout, written synchronously so nothing is lost on exit. */
export interface LoggerOptions {
  level: Level | 'silent';
  destination?: DestinationStream;
  /** Fields on every line, e.g. { node }. */
  base?: Record<string, unknown>;
}

/** JSON lines on stdout: level names, ISO times, secret-looking keys redacted (Secret values print "[redacted]" on their own). */
export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      level: options.level,
      base: { pid: process.pid, ...options.base },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    },
    options.destination ?? pino.destination({ dest: 1, sync: true }),
  );
}
