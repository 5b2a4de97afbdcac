// Fault injection per route (method + path pattern), switchable while the server runs: from
// tests through this object, from other processes through /_faults (admin token only).

/** What a matching request gets instead of (or before) its answer. */
export type FaultKind = 'latency' | 'throttle' | 'error' | 'reset' | 'hang';

export interface FaultSpec {
  /** HTTP method, or `*` (default). */
  method?: string;
  /** Path pattern: a glob (`*` within a segment, `**` across) or `re:<regex>`; matched on the path without query. */
  path: string;
  kind: FaultKind;
  /** latency: delay before the real answer. */
  delayMs?: number;
  /** throttle: the Retry-After seconds on the 429. */
  retryAfterSeconds?: number;
  /** error: the status code (default 500). */
  status?: number;
  /** Apply to this many matching requests, then lift (default: until removed). */
  times?: number;
  /** Apply with this probability (default 1). */
  probability?: number;
}

export interface Fault extends FaultSpec {
  id: string;
  /** How many requests it has hit. */
  hits: number;
}

function compile(pattern: string): RegExp {
  if (pattern.startsWith('re:')) return new RegExp(pattern.slice(3));
  const re = pattern
    .split('**')
    .map((part) => part.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*'))
    .join('.*');
  return new RegExp(`^${re}$`);
}

/** The live fault table. */
export class Faults {
  private readonly table = new Map<string, { fault: Fault; re: RegExp }>();
  private next = 1;

  add(spec: FaultSpec): string {
    const id = `f${this.next++}`;
    this.table.set(id, { fault: { ...spec, id, hits: 0 }, re: compile(spec.path) });
    return id;
  }

  remove(id: string): boolean {
    return this.table.delete(id);
  }

  clear(): void {
    this.table.clear();
  }

  list(): Fault[] {
    return [...this.table.values()].map((e) => ({ ...e.fault }));
  }

  /** The first fault that takes this request (counting it), if any. */
  match(method: string, path: string): Fault | undefined {
    for (const [id, e] of this.table) {
      const f = e.fault;
      if (f.method && f.method !== '*' && f.method.toUpperCase() !== method) continue;
      if (!e.re.test(path)) continue;
      if (f.probability !== undefined && Math.random() >= f.probability) continue;
      f.hits++;
      if (f.times !== undefined && f.hits >= f.times) this.table.delete(id);
      return { ...f };
    }
    return undefined;
  }
}
