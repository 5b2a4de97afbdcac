/**
 * Start in order, stop in reverse, within a budget: the one lifecycle every role (agent,
 * controller) wires its boxes into, and the process-level stop on SIGTERM/SIGINT.
 */
import type { Logger } from 'pino';
import type { Clock } from './types.js';

/** The real clock. */
export const systemClock: Clock = { now: () => Date.now(), monotonic: () => performance.now() };

/** Something a role starts and, in reverse order, stops. */
export interface Component {
  name: string;
  start(): Promise<void>;
  /** Called once every component has started. */
  ready?(): void;
  stop(): Promise<void>;
}

/** How long shutdown may take before connwatch stops waiting (a supervisor allows 5 s after SIGTERM). */
export const STOP_BUDGET_MS = 4_000;

/** Components started in the order added and stopped in reverse, each waited for. */
export class Lifecycle {
  readonly #components: Component[] = [];
  readonly #started: Component[] = [];

  constructor(private readonly log: Logger) {}

  add(component: Component): void {
    this.#components.push(component);
  }

  /** Starts every component; on the first failure stops what started and says why. */
  async start(): Promise<{ ok: true } | { ok: false; reason: string }> {
    try {
      for (const component of this.#components) {
        await component.start();
        this.#started.push(component);
      }
    } catch (err) {
      await this.stop();
      return { ok: false, reason: (err as Error).message };
    }
    for (const component of this.#started) component.ready?.();
    return { ok: true };
  }

  /** The names of the started components, in start order. */
  started(): string[] {
    return this.#started.map((c) => c.name);
  }

  /** Stops every started component in reverse start order; a failing stop is logged and the rest still stop. */
  async stop(): Promise<void> {
    while (this.#started.length > 0) {
      const component = this.#started.pop()!;
      try {
        await component.stop();
      } catch (err) {
        this.log.error({ err, component: component.name }, 'component failed to stop cleanly');
      }
    }
  }
}

/**
 * Resolves with the exit code once the process was told to stop (SIGTERM, SIGINT, an unhandled
 * rejection or exception) and `stop` finished — or leaves at once when it takes longer than the budget.
 */
export function runUntilStopped(stop: () => Promise<void>, log: Logger, budgetMs = STOP_BUDGET_MS): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    const begin = (why: string, code: number) => {
      if (stopping) return;
      stopping = true;
      log.info({ why }, 'connwatch stopping');
      const forced = setTimeout(() => {
        log.error({ budgetMs }, 'shutdown took too long; exiting anyway');
        // Something still holds the event loop: leave now, within the time a supervisor allows.
        process.exit(code || 1);
      }, budgetMs);
      forced.unref();
      stop().then(
        () => {
          clearTimeout(forced);
          log.info('connwatch stopped');
          resolve(code);
        },
        (err: unknown) => {
          log.error({ err }, 'error while stopping');
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', () => begin('SIGTERM', 0));
    process.once('SIGINT', () => begin('SIGINT', 0));
    process.on('unhandledRejection', (reason) => {
      // A promise nobody handled is a bug: fail loudly (Restart=on-failure brings us back clean).
      log.fatal({ err: reason }, 'unhandled promise rejection: exiting');
      begin('unhandledRejection', 1);
    });
    process.on('uncaughtException', (err) => {
      log.fatal({ err }, 'uncaught exception: stopping');
      begin('uncaughtException', 1);
    });
  });
}
