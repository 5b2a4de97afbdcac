import type { Clock, Mode, StatusSink } from '../types.js';

/** What `/status` returns: who we are, then each box's latest section. */
export interface StatusSnapshot {
  version: string;
  mode: Mode;
  startedAt: string;
  generatedAt: string;
  [section: string]: unknown;
}

const RESERVED = new Set(['version', 'mode', 'startedAt', 'generatedAt']);

/**
 * Collects each box's status section; a publish replaces its section whole. Sections are
 * copied through JSON when published, so later mutation by the publisher cannot leak in and
 * Secret values show "[redacted]".
 */
export class StatusBoard implements StatusSink {
  readonly #sections = new Map<string, unknown>();
  readonly #startedAt: string;

  constructor(
    private readonly identity: { version: string; mode: Mode; clock: Clock },
  ) {
    this.#startedAt = new Date(identity.clock.now()).toISOString();
  }

  publish(section: string, snapshot: unknown): void {
    if (RESERVED.has(section)) throw new Error(`status section name "${section}" is reserved; pick another name`);
    this.#sections.set(section, toJsonValue(snapshot));
  }

  snapshot(): StatusSnapshot {
    const out: StatusSnapshot = {
      version: this.identity.version,
      mode: this.identity.mode,
      startedAt: this.#startedAt,
      generatedAt: new Date(this.identity.clock.now()).toISOString(),
    };
    for (const [name, value] of [...this.#sections].sort(([a], [b]) => a.localeCompare(b))) out[name] = value;
    return out;
  }
}

function toJsonValue(value: unknown): unknown {
  try {
    const text = JSON.stringify(value);
    return text === undefined ? null : (JSON.parse(text) as unknown);
  } catch (err) {
    return { unserializable: String(err) };
  }
}
