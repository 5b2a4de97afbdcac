import { promises as dns, type LookupAddress } from 'node:dns';
import * as fsp from 'node:fs/promises';
import { dirname } from 'node:path';
import type { LookupFunction } from 'node:net';
import type { Logger } from 'pino';
import type { Clock } from '../types.js';

/** Resolves a name to every address the host's resolver knows (dns.lookup: /etc/hosts, then DNS). */
export type ResolveName = (hostname: string) => Promise<LookupAddress[]>;

/** The host's resolver, as getaddrinfo sees it; never cluster DNS unless the host is configured so. */
export const hostResolver: ResolveName = (hostname) => dns.lookup(hostname, { all: true });

/** Last-known-good addresses of one name. */
export interface KnownName {
  addresses: LookupAddress[];
  /** Epoch ms of the last successful resolution. */
  resolvedAt: number;
}

/** How a name was last answered, for /status and the log. */
export interface NameStatus {
  host: string;
  addresses: string[];
  resolvedAt: string;
  /** How old the addresses are now. */
  ageSeconds: number;
  /** Where the last connection's addresses came from. */
  source: 'dns' | 'cache' | 'none';
  /** Why the resolver failed last time, when it did. */
  lastError?: string;
}

export interface ResolverCacheOptions {
  /** <stateDir>/alert-dns.json */
  file: string;
  clock: Clock;
  log: Logger;
  resolve?: ResolveName;
  /** How long to wait for the resolver before using a cached address (a black-holed resolver hangs). */
  timeoutMs?: number;
  /** Rewrite an unchanged entry at most this often (keeps the age on disk honest without a write per connection). */
  rewriteAfterMs?: number;
  fs?: Pick<typeof fsp, 'readFile' | 'open' | 'rename' | 'unlink' | 'mkdir'>;
  /** Called when a name's status changes (to republish /status). */
  onChange?: () => void;
}

const FORMAT = 1;

type Answer = { ok: true; addresses: LookupAddress[]; source: 'dns' | 'cache' } | { ok: false; reason: string };

/**
 * Resolves names with the host's resolver and remembers what worked, in the state directory,
 * so that alerts still leave when DNS is broken: on failure (or a resolver that does not
 * answer within timeoutMs) the last-known-good addresses are used, with their age logged.
 */
export class ResolverCache {
  readonly #known = new Map<string, KnownName>();
  readonly #state = new Map<string, { source: NameStatus['source']; lastError?: string }>();
  readonly #written = new Map<string, number>();
  /** The query in flight per name, shared by every lookup of that name meanwhile (issue 11). */
  readonly #inflight = new Map<string, { answer: Promise<Answer>; startedAt: number }>();
  readonly #resolve: ResolveName;
  readonly #fs: NonNullable<ResolverCacheOptions['fs']>;
  #writes: Promise<void> = Promise.resolve();

  constructor(private readonly opts: ResolverCacheOptions) {
    this.#resolve = opts.resolve ?? hostResolver;
    this.#fs = opts.fs ?? fsp;
  }

  /** Reads the last-known-good addresses left by earlier runs; a missing or unreadable file is an empty cache. */
  async load(): Promise<void> {
    let text: string;
    try {
      text = await this.#fs.readFile(this.opts.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.opts.log.warn({ file: this.opts.file, err: String(err) }, 'alert DNS cache unreadable; starting without last-known-good addresses');
      return;
    }
    try {
      const parsed = JSON.parse(text) as { format?: number; names?: Record<string, KnownName> };
      if (parsed.format !== FORMAT || typeof parsed.names !== 'object' || parsed.names === null) throw new Error(`not a format-${FORMAT} DNS cache`);
      for (const [host, known] of Object.entries(parsed.names)) {
        if (Array.isArray(known.addresses) && known.addresses.length > 0 && typeof known.resolvedAt === 'number') {
          this.#known.set(host, { addresses: known.addresses.filter(isAddress), resolvedAt: known.resolvedAt });
          this.#written.set(host, known.resolvedAt);
        }
      }
    } catch (err) {
      this.opts.log.warn({ file: this.opts.file, err: String(err) }, 'alert DNS cache unreadable; it will be rewritten on the next successful resolution');
    }
  }

  /** A `lookup` for net/tls.connect (undici's connect options): host resolver first, cache on failure. */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    const family = familyOf(options.family);
    const all = options.all === true;
    void this.resolve(hostname).then((answer) => {
      if (!answer.ok) return callback(Object.assign(new Error(answer.reason), { code: 'ENOTFOUND', hostname }), '', 0);
      const wanted = family === 4 || family === 6 ? answer.addresses.filter((a) => a.family === family) : answer.addresses;
      const first = wanted[0];
      if (!first) return callback(Object.assign(new Error(`${hostname} has no IPv${family} address`), { code: 'ENOTFOUND', hostname }), '', 0);
      if (all) callback(null, wanted);
      else callback(null, first.address, first.family);
    });
  };

  /** Resolves one name: the resolver's answer, or the cached one when the resolver fails or hangs. */
  async resolve(hostname: string): Promise<Answer> {
    const timeoutMs = this.opts.timeoutMs ?? 2000;
    const fresh = this.#query(hostname, timeoutMs);
    let timer: NodeJS.Timeout | undefined;
    const slow = new Promise<{ ok: false; reason: string }>((resolve) => {
      timer = setTimeout(() => resolve({ ok: false, reason: `the resolver did not answer within ${timeoutMs} ms` }), timeoutMs);
    });
    // Without a cached address there is nothing better than waiting for the resolver.
    const first = this.#known.has(hostname) ? await Promise.race([fresh, slow]) : await fresh;
    clearTimeout(timer);
    if (first.ok) return first;
    return this.#fromCache(hostname, first.reason);
  }

  /**
   * One resolver query per name at a time: N deliveries connecting to one receiver at once make
   * one query, not N (a fleet's burst would otherwise multiply DNS load, and a slow resolver
   * would tie up getaddrinfo's few threads). A query older than the timeout is no longer shared,
   * so a resolver that hangs is asked again at most once per timeout, not never.
   */
  #query(hostname: string, timeoutMs: number): Promise<Answer> {
    const now = this.opts.clock.monotonic();
    const shared = this.#inflight.get(hostname);
    if (shared && now - shared.startedAt < timeoutMs) return shared.answer;
    const answer = Promise.resolve()
      .then(() => this.#resolve(hostname))
      .then(
        (addresses) => this.#remember(hostname, addresses),
        (err: unknown): Answer => ({ ok: false, reason: errorText(err) }),
      );
    const entry = { answer, startedAt: now };
    this.#inflight.set(hostname, entry);
    const done = (): void => {
      if (this.#inflight.get(hostname) === entry) this.#inflight.delete(hostname);
    };
    void answer.then(done, done);
    return answer;
  }

  /** The names seen so far, with their addresses' age (for /status). */
  snapshot(): NameStatus[] {
    const now = this.opts.clock.now();
    return [...this.#known.entries()].map(([host, known]) => {
      const state = this.#state.get(host);
      return {
        host,
        addresses: known.addresses.map((a) => a.address),
        resolvedAt: new Date(known.resolvedAt).toISOString(),
        ageSeconds: Math.max(0, Math.round((now - known.resolvedAt) / 1000)),
        source: state?.source ?? 'none',
        ...(state?.lastError ? { lastError: state.lastError } : {}),
      };
    });
  }

  /** Resolves once pending cache writes are on disk (tests, shutdown). */
  async flushed(): Promise<void> {
    await this.#writes;
  }

  #remember(hostname: string, addresses: LookupAddress[]): Answer {
    if (addresses.length === 0) return { ok: false, reason: 'the resolver returned no address' };
    const now = this.opts.clock.now();
    const before = this.#known.get(hostname);
    this.#known.set(hostname, { addresses, resolvedAt: now });
    const changed = !before || !sameAddresses(before.addresses, addresses);
    if (this.#state.get(hostname)?.source === 'cache') this.opts.log.info({ host: hostname, addresses: addresses.map((a) => a.address) }, 'alert receiver name resolves again');
    this.#note(hostname, { source: 'dns' });
    if (changed || now - (this.#written.get(hostname) ?? 0) >= (this.opts.rewriteAfterMs ?? 300_000)) this.#save(hostname, now);
    return { ok: true, addresses, source: 'dns' };
  }

  #fromCache(hostname: string, reason: string): Answer {
    const known = this.#known.get(hostname);
    if (!known) {
      this.#note(hostname, { source: 'none', lastError: reason });
      return { ok: false, reason: `cannot resolve ${hostname}: ${reason}; no last-known-good address in ${this.opts.file}; use an IP address or an /etc/hosts entry for alert receivers` };
    }
    const ageSeconds = Math.round((this.opts.clock.now() - known.resolvedAt) / 1000);
    const was = this.#state.get(hostname);
    if (was?.source !== 'cache' || was.lastError !== reason) {
      this.opts.log.warn(
        { host: hostname, reason, addresses: known.addresses.map((a) => a.address), ageSeconds, resolvedAt: new Date(known.resolvedAt).toISOString() },
        'alert receiver name did not resolve; using its last-known-good addresses; check the host resolver (/etc/resolv.conf)',
      );
    }
    this.#note(hostname, { source: 'cache', lastError: reason });
    return { ok: true, addresses: known.addresses, source: 'cache' };
  }

  #note(hostname: string, state: { source: NameStatus['source']; lastError?: string }): void {
    const was = this.#state.get(hostname);
    this.#state.set(hostname, state);
    if (was?.source !== state.source || was?.lastError !== state.lastError) this.opts.onChange?.();
  }

  #save(hostname: string, at: number): void {
    this.#written.set(hostname, at);
    this.#writes = this.#writes.then(() => this.#write()).catch((err: unknown) => {
      this.opts.log.warn({ file: this.opts.file, err: String(err) }, 'cannot save last-known-good alert receiver addresses; check the state directory');
    });
  }

  /** temp file, fsync, rename, fsync of the directory: a crash leaves the old or the new file. */
  async #write(): Promise<void> {
    const text = JSON.stringify({ format: FORMAT, names: Object.fromEntries(this.#known) }, null, 1);
    const dir = dirname(this.opts.file);
    await this.#fs.mkdir(dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.opts.file}.${process.pid}.tmp`;
    try {
      const handle = await this.#fs.open(tmp, 'w', 0o600);
      try {
        await handle.writeFile(text);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await this.#fs.rename(tmp, this.opts.file);
    } catch (err) {
      await this.#fs.unlink(tmp).catch(() => undefined);
      throw err;
    }
    const dirHandle = await this.#fs.open(dir, 'r');
    try {
      await dirHandle.sync();
    } finally {
      await dirHandle.close();
    }
  }
}

function familyOf(family: number | string | undefined): 0 | 4 | 6 {
  if (family === 4 || family === 'IPv4') return 4;
  if (family === 6 || family === 'IPv6') return 6;
  return 0;
}

function isAddress(a: unknown): a is LookupAddress {
  const x = a as LookupAddress;
  return typeof x?.address === 'string' && (x.family === 4 || x.family === 6);
}

function sameAddresses(a: LookupAddress[], b: LookupAddress[]): boolean {
  return a.length === b.length && a.every((x, i) => x.address === b[i]?.address && x.family === b[i]?.family);
}

function errorText(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  const message = err instanceof Error ? err.message : String(err);
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}
