/**
 * The demo leaves nothing behind, also on failure or Ctrl-C: every act registers how to undo what
 * it built (lab down, servers closed, processes stopped, temporary directories removed). A normal
 * end runs an act's undo in its `finally`; SIGINT/SIGTERM runs every registered undo, newest first,
 * then exits 130/143. Each undo runs once, whoever asks first; the other caller waits for it.
 */
type Undo = () => Promise<void> | void;

interface Entry {
  what: string;
  undo: Undo;
  running?: Promise<void>;
}

const stack: Entry[] = [];
let signalled: NodeJS.Signals | undefined;

/** Registers an undo; the returned function runs it now (once; or waits for the run a signal started). */
export function onCleanup(what: string, undo: Undo): () => Promise<void> {
  const entry: Entry = { what, undo };
  stack.push(entry);
  return () => runOne(entry);
}

function runOne(entry: Entry): Promise<void> {
  if (!entry.running) {
    const i = stack.indexOf(entry);
    if (i >= 0) stack.splice(i, 1);
    entry.running = (async () => {
      try {
        await entry.undo();
      } catch (err) {
        process.stderr.write(`demo clean-up: ${entry.what}: ${err instanceof Error ? err.message : String(err)}\n`);
      }
    })();
  }
  return entry.running;
}

/** Runs every registered undo, newest first. */
export async function cleanupAll(): Promise<void> {
  while (stack.length > 0) await runOne(stack[stack.length - 1]!);
}

/** True once Ctrl-C (or SIGTERM) arrived: the acts stop reporting, the clean-up is under way. */
export function interrupted(): boolean {
  return signalled !== undefined;
}

/** SIGINT/SIGTERM: undo everything, then exit 130/143. A second signal is ignored (the undo takes about a second). */
export function cleanupOnSignals(): void {
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.on(signal, () => {
      if (signalled) return;
      signalled = signal;
      // What the acts would still print (their awaits failing as things go down) is noise now.
      console.log = () => undefined;
      process.stdout.write(`\n${signal}: stopping the demo and cleaning up (lab, servers, processes, temporary directories)…\n`);
      const started = Date.now();
      void cleanupAll().finally(() => {
        process.stdout.write(`cleaned up in ${Date.now() - started} ms: nothing left behind.\n`);
        process.exit(code);
      });
    });
  }
}
