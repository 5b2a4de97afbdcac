/**
 * The watch stream's framing: newline-delimited JSON, split into lines across arbitrary chunk
 * boundaries (a multi-byte character split between two chunks included), each line parsed into
 * a watch event or reported as garbage without ending the stream.
 */
import type { Status } from 'kubernetes-types/meta/v1.js';

/** One event as the API server sends it on a watch. */
export type RawWatchEvent =
  | { type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK'; object: { metadata?: { resourceVersion?: string } } & Record<string, unknown> }
  | { type: 'ERROR'; object: Status };

/** Splits a byte stream into lines; bounded: a line longer than `maxLineBytes` is dropped and reported. */
export class LineSplitter {
  readonly #decoder = new TextDecoder('utf-8');
  #partial = '';
  #dropping = false;

  constructor(private readonly maxLineBytes = 16 * 1024 * 1024) {}

  /** Feeds a chunk; returns the complete lines it finished (without their newline), and how many over-long lines it dropped. */
  push(chunk: Uint8Array): { lines: string[]; dropped: number } {
    const text = this.#decoder.decode(chunk, { stream: true });
    const lines: string[] = [];
    let dropped = 0;
    let start = 0;
    for (let at = text.indexOf('\n'); at !== -1; at = text.indexOf('\n', start)) {
      if (this.#dropping) {
        this.#dropping = false;
        dropped += 1;
      } else {
        lines.push(this.#partial + text.slice(start, at));
      }
      this.#partial = '';
      start = at + 1;
    }
    if (!this.#dropping) {
      this.#partial += text.slice(start);
      // Characters, not bytes, but within 4× of it: enough to keep the buffer bounded.
      if (this.#partial.length > this.maxLineBytes) {
        this.#partial = '';
        this.#dropping = true;
      }
    }
    return { lines, dropped };
  }

  /** The stream ended: what is left (a last line without a newline), if anything. */
  end(): string | undefined {
    const rest = this.#partial + this.#decoder.decode();
    this.#partial = '';
    const dropping = this.#dropping;
    this.#dropping = false;
    return dropping || rest.trim() === '' ? undefined : rest;
  }
}

const TYPES = new Set(['ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK', 'ERROR']);

/** Parses one line of a watch stream; blank lines are `undefined`, anything else not an event is garbage. */
export function parseWatchLine(line: string): { ok: true; event: RawWatchEvent } | { ok: false; reason: string } | undefined {
  const trimmed = line.trim();
  if (trimmed === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(trimmed);
  } catch {
    return { ok: false, reason: `not JSON: ${preview(trimmed)}` };
  }
  if (typeof value !== 'object' || value === null) return { ok: false, reason: `not an event: ${preview(trimmed)}` };
  const { type, object } = value as { type?: unknown; object?: unknown };
  if (typeof type !== 'string' || !TYPES.has(type)) return { ok: false, reason: `unknown event type ${JSON.stringify(type)}` };
  if (typeof object !== 'object' || object === null || Array.isArray(object)) return { ok: false, reason: `${type} event without an object` };
  return { ok: true, event: value as RawWatchEvent };
}

function preview(text: string): string {
  return text.length > 60 ? `"${text.slice(0, 60)}…"` : `"${text}"`;
}
