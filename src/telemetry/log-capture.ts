import { Writable } from 'node:stream';
import type { Level, Logger } from 'pino';
import { createLogger } from './log.js';

/** One parsed log line: pino's fields plus whatever the caller logged. */
export interface LogRecord {
  level: string;
  time: string;
  msg?: string;
  [key: string]: unknown;
}

/** Parses JSON log lines (a child's stdout, a captured stream) back into records; other lines are skipped. */
export function parseLogLines(text: string): LogRecord[] {
  const records: LogRecord[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      records.push(JSON.parse(line) as LogRecord);
    } catch {
      // a partial last line of a running child; the next read completes it
    }
  }
  return records;
}

/** A real connwatch logger writing into memory, for assertions on what was logged. */
export function captureLogs(level: Level = 'trace'): { log: Logger; records(): LogRecord[]; text(): string } {
  let text = '';
  const sink = new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  const log = createLogger({ level, destination: sink });
  return { log, records: () => parseLogLines(text), text: () => text };
}
