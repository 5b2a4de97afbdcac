// The object store: one cluster-wide resourceVersion counter, objects by storage and key (O(1)
// get/put), a sorted key index rebuilt lazily only after creates/deletes (lists stay
// O(n log n) at worst), and a bounded window of watch events for resuming watches.

import { randomUUID } from 'node:crypto';

/** A stored API object. Stored objects are never mutated: writers replace them. */
export type KObject = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** One change, as watches see it. */
export interface StoreEvent {
  rv: number;
  storage: string;
  type: EventType;
  obj: KObject;
  /** The object before a MODIFIED (to turn it into ADDED/DELETED for selector watches). */
  prev?: KObject;
}

export type Listener = (ev: StoreEvent) => void;

interface Table {
  objects: Map<string, KObject>;
  sorted: string[] | null;
  listeners: Set<Listener>;
}

/** Thrown by eventsSince when the window no longer holds the asked resourceVersion. */
export class TooOldError extends Error {
  constructor(readonly asked: number, readonly oldest: number) {
    super(`too old resource version: ${asked} (${oldest})`);
  }
}

export function keyOf(namespace: string | undefined, name: string): string {
  return namespace ? `${namespace}/${name}` : name;
}

export interface StoreOptions {
  /** How many events the watch window keeps (older resourceVersions answer 410). */
  historySize?: number;
  /** The first resourceVersion handed out. */
  startRv?: number;
}

export class Store {
  private readonly tables = new Map<string, Table>();
  private counter: number;
  private readonly ring: (StoreEvent | undefined)[];
  private ringStart = 0;
  private ringLen = 0;
  /** Every event with rv ≤ this has left the window. */
  private compacted: number;
  private readonly json = new WeakMap<KObject, string>();

  constructor(opts: StoreOptions = {}) {
    this.counter = opts.startRv ?? 1000;
    this.compacted = this.counter;
    this.ring = new Array(Math.max(1, opts.historySize ?? 100_000));
  }

  /** The latest resourceVersion handed out. */
  get rv(): number {
    return this.counter;
  }

  /** The oldest resourceVersion a watch can still resume from. */
  get oldestRv(): number {
    return this.compacted;
  }

  private table(storage: string): Table {
    let t = this.tables.get(storage);
    if (!t) {
      t = { objects: new Map(), sorted: null, listeners: new Set() };
      this.tables.set(storage, t);
    }
    return t;
  }

  get(storage: string, namespace: string | undefined, name: string): KObject | undefined {
    return this.tables.get(storage)?.objects.get(keyOf(namespace, name));
  }

  count(storage: string): number {
    return this.tables.get(storage)?.objects.size ?? 0;
  }

  /** Objects in key order (namespace/name), optionally of one namespace. */
  list(storage: string, namespace?: string): KObject[] {
    const t = this.tables.get(storage);
    if (!t) return [];
    if (!t.sorted) t.sorted = [...t.objects.keys()].sort();
    const out: KObject[] = [];
    if (namespace) {
      const prefix = `${namespace}/`;
      let i = lowerBound(t.sorted, prefix);
      for (; i < t.sorted.length && t.sorted[i]!.startsWith(prefix); i++) out.push(t.objects.get(t.sorted[i]!)!);
    } else {
      for (const k of t.sorted) out.push(t.objects.get(k)!);
    }
    return out;
  }

  /** Stores a new object: uid, creationTimestamp and resourceVersion are set here. */
  create(storage: string, obj: KObject): KObject {
    const t = this.table(storage);
    const key = keyOf(obj.metadata.namespace, obj.metadata.name);
    if (t.objects.has(key)) throw new Error(`exists: ${storage} ${key}`);
    const rv = ++this.counter;
    const meta = obj.metadata;
    meta.uid ??= randomUUID();
    meta.creationTimestamp ??= new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    meta.resourceVersion = String(rv);
    t.objects.set(key, obj);
    t.sorted = null;
    this.emit(t, { rv, storage, type: 'ADDED', obj });
    return obj;
  }

  /** Replaces an existing object with a new resourceVersion. */
  update(storage: string, obj: KObject): KObject {
    const t = this.table(storage);
    const key = keyOf(obj.metadata.namespace, obj.metadata.name);
    const prev = t.objects.get(key);
    if (!prev) throw new Error(`missing: ${storage} ${key}`);
    const rv = ++this.counter;
    obj.metadata.resourceVersion = String(rv);
    t.objects.set(key, obj);
    this.emit(t, { rv, storage, type: 'MODIFIED', obj, prev });
    return obj;
  }

  /** Removes an object; the DELETED event carries it at the deletion's resourceVersion. */
  delete(storage: string, namespace: string | undefined, name: string): KObject | undefined {
    const t = this.tables.get(storage);
    const key = keyOf(namespace, name);
    const prev = t?.objects.get(key);
    if (!t || !prev) return undefined;
    const rv = ++this.counter;
    const obj = { ...prev, metadata: { ...prev.metadata, resourceVersion: String(rv) } };
    t.objects.delete(key);
    t.sorted = null;
    this.emit(t, { rv, storage, type: 'DELETED', obj });
    return obj;
  }

  subscribe(storage: string, fn: Listener): () => void {
    const t = this.table(storage);
    t.listeners.add(fn);
    return () => t.listeners.delete(fn);
  }

  /** Events of one storage after rv, oldest first; throws TooOldError outside the window. */
  eventsSince(storage: string, rv: number): StoreEvent[] {
    if (rv < this.compacted) throw new TooOldError(rv, this.compacted + 1);
    const out: StoreEvent[] = [];
    // Binary search the ring for the first event with rv > asked.
    let lo = 0;
    let hi = this.ringLen;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.at(mid).rv <= rv) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.ringLen; i++) {
      const ev = this.at(i);
      if (ev.storage === storage) out.push(ev);
    }
    return out;
  }

  /** Drops every event from the window (tests: force 410 on any older resourceVersion). */
  compact(): void {
    this.ring.fill(undefined);
    this.ringStart = 0;
    this.ringLen = 0;
    this.compacted = this.counter;
  }

  /** The object's JSON, computed once per stored version. */
  serialize(obj: KObject): string {
    let s = this.json.get(obj);
    if (s === undefined) {
      s = JSON.stringify(obj);
      this.json.set(obj, s);
    }
    return s;
  }

  private at(i: number): StoreEvent {
    return this.ring[(this.ringStart + i) % this.ring.length]!;
  }

  private emit(t: Table, ev: StoreEvent): void {
    const cap = this.ring.length;
    if (this.ringLen === cap) {
      this.compacted = this.ring[this.ringStart]!.rv;
      this.ring[this.ringStart] = ev;
      this.ringStart = (this.ringStart + 1) % cap;
    } else {
      this.ring[(this.ringStart + this.ringLen) % cap] = ev;
      this.ringLen++;
    }
    for (const fn of t.listeners) fn(ev);
  }
}

function lowerBound(a: string[], x: string): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
