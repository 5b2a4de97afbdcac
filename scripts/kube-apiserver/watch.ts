// Watch streams: newline-delimited {"type","object"} events; synthetic ADDED for the current
// state when no resourceVersion is given; resumption from a resourceVersion inside the window,
// an ERROR event with a 410 Expired Status outside it; BOOKMARKs when asked for; selector
// transitions turned into ADDED/DELETED as the watch cache does; timeoutSeconds.

import type { ServerResponse } from 'node:http';
import type { Api } from './api.js';
import { errors } from './errors.js';
import { apiVersionOf, type ResourceDef } from './resources.js';
import { parseFieldSelector, parseLabelSelector } from './selectors.js';
import { TooOldError, type EventType, type KObject, type StoreEvent } from './store.js';

export interface WatchQuery {
  resourceVersion?: string | null;
  resourceVersionMatch?: string | null;
  labelSelector?: string | null;
  fieldSelector?: string | null;
  allowWatchBookmarks?: string | null;
  timeoutSeconds?: string | null;
  sendInitialEvents?: string | null;
}

/** One open watch; the server keeps them to send bookmarks and to end them on close. */
export interface Watcher {
  bookmarks: boolean;
  bookmark(): void;
  end(): void;
}

/** Per event, the encoded line for each (resource, type): encoded once, written to every watcher. */
const lines = new WeakMap<StoreEvent, Map<string, string>>();

function line(api: Api, def: ResourceDef, ev: StoreEvent, type: EventType): string {
  let m = lines.get(ev);
  if (!m) lines.set(ev, (m = new Map()));
  const k = `${def.group}/${def.version}/${def.resource}/${type}`;
  let s = m.get(k);
  if (s === undefined) {
    s = `{"type":"${type}","object":${api.presentJson(def, ev.obj)}}\n`;
    m.set(k, s);
  }
  return s;
}

/** Validates the query (throws before any byte is sent) and returns a function that starts the stream. */
export function prepareWatch(api: Api, def: ResourceDef, ns: string | undefined, q: WatchQuery, defaultTimeoutMs: number): (res: ServerResponse, onEnd: () => void) => Watcher {
  const labels = parseLabelSelector(q.labelSelector);
  const fields = parseFieldSelector(q.fieldSelector, def.fields);
  const bookmarks = q.allowWatchBookmarks === 'true';
  const initial = q.sendInitialEvents === 'true';
  if (q.sendInitialEvents !== undefined && q.sendInitialEvents !== null && (q.resourceVersionMatch !== 'NotOlderThan' || (initial && !bookmarks))) {
    throw errors.invalid('meta.k8s.io', 'ListOptions', '', [{ reason: 'FieldValueForbidden', field: 'sendInitialEvents', message: 'Forbidden: sendInitialEvents is forbidden for watch unless resourceVersionMatch is set to NotOlderThan and allowWatchBookmarks is set to true' }]);
  }
  const rvText = q.resourceVersion ?? '';
  const asked = rvText === '' || rvText === '0' ? undefined : Number(rvText);
  if (asked !== undefined && !Number.isInteger(asked)) throw errors.badRequest(`invalid resource version: ${rvText}`);
  const timeoutSec = q.timeoutSeconds ? Number(q.timeoutSeconds) : undefined;
  const scope = def.namespaced ? ns : undefined;
  const matches = (o: KObject) => (!scope || o.metadata.namespace === scope) && labels(o.metadata.labels) && fields.matches(o);

  return (res, onEnd) => {
    const store = api.store;
    let ended = false;
    let timer: NodeJS.Timeout | undefined;
    let unsubscribe = () => {};
    const write = (s: string) => {
      if (ended) return;
      res.write(s);
      // A client that stops reading is dropped rather than buffered without bound.
      if (res.writableLength > 64 * 1024 * 1024) end();
    };
    const end = () => {
      if (ended) return;
      ended = true;
      unsubscribe();
      if (timer) clearTimeout(timer);
      res.end();
      onEnd();
    };
    const deliver = (ev: StoreEvent) => {
      const now = matches(ev.obj);
      if (ev.type === 'MODIFIED') {
        const before = ev.prev ? matches(ev.prev) : false;
        if (now && before) write(line(api, def, ev, 'MODIFIED'));
        else if (now) write(line(api, def, ev, 'ADDED'));
        else if (before) write(line(api, def, ev, 'DELETED'));
      } else if (now) write(line(api, def, ev, ev.type));
    };
    const bookmarkLine = (annotations?: Record<string, string>) =>
      `${JSON.stringify({ type: 'BOOKMARK', object: { kind: def.kind, apiVersion: apiVersionOf(def), metadata: { resourceVersion: String(store.rv), creationTimestamp: null, ...(annotations ? { annotations } : {}) } } })}\n`;

    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    res.on('close', end);

    if (asked === undefined || initial) {
      if (def.storage === 'policy/poddisruptionbudgets') api.flushPdbs();
      const rvNow = store.rv;
      for (const o of store.list(def.storage, scope)) {
        if (matches(o)) write(`{"type":"ADDED","object":${api.presentJson(def, o)}}\n`);
      }
      if (initial) write(bookmarkLine({ 'k8s.io/initial-events-end': 'true' }));
      unsubscribe = store.subscribe(def.storage, (ev) => { if (ev.rv > rvNow) deliver(ev); });
    } else {
      let backlog: StoreEvent[];
      try {
        backlog = store.eventsSince(def.storage, asked);
      } catch (e) {
        if (!(e instanceof TooOldError)) throw e;
        const status = errors.gone(e.message).status();
        write(`${JSON.stringify({ type: 'ERROR', object: status })}\n`);
        end();
        return { bookmarks: false, bookmark() {}, end };
      }
      for (const ev of backlog) deliver(ev);
      unsubscribe = store.subscribe(def.storage, deliver);
    }
    const ms = timeoutSec !== undefined && timeoutSec > 0 ? timeoutSec * 1000 : defaultTimeoutMs;
    timer = setTimeout(end, ms);
    timer.unref();
    return { bookmarks, bookmark: () => write(bookmarkLine()), end };
  };
}
