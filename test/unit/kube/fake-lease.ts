import type { Lease } from 'kubernetes-types/coordination/v1.js';
import type { KubeResult } from '../../../src/kube/errors.js';
import type { LeaseStore } from '../../../src/kube/leader.js';

/** An in-memory Lease with the API server's optimistic concurrency (resourceVersion, 409), for the elector's state machine. */
export class FakeLeaseStore implements LeaseStore {
  lease: Lease | undefined;
  #rv = 0;
  /** Writes seen, in order. */
  readonly writes: { holder: string; transitions: number; acquireTime?: string }[] = [];
  /** While set, every call fails with this (a partitioned or hung API server). */
  failing: 'unreachable' | 'timeout' | undefined;

  async get(ref: { namespace: string; name: string }): Promise<KubeResult<Lease>> {
    if (this.failing) return this.#fail(this.failing);
    if (!this.lease) return { ok: false, code: 'not-found', reason: `lease ${ref.name} not found`, hint: '', status: 404 };
    return { ok: true, value: structuredClone(this.lease) };
  }

  async create(lease: Lease): Promise<KubeResult<Lease>> {
    if (this.failing) return this.#fail(this.failing);
    if (this.lease) return { ok: false, code: 'conflict', reason: 'already exists', hint: '', status: 409 };
    return { ok: true, value: this.#store(lease) };
  }

  async update(lease: Lease): Promise<KubeResult<Lease>> {
    if (this.failing) return this.#fail(this.failing);
    if (!this.lease) return { ok: false, code: 'not-found', reason: 'not found', hint: '', status: 404 };
    if (lease.metadata?.resourceVersion !== this.lease.metadata?.resourceVersion) return { ok: false, code: 'conflict', reason: 'stale resourceVersion', hint: '', status: 409 };
    return { ok: true, value: this.#store(lease) };
  }

  #store(lease: Lease): Lease {
    this.#rv += 1;
    this.lease = structuredClone({ ...lease, metadata: { ...lease.metadata, resourceVersion: String(this.#rv) } });
    this.writes.push({ holder: lease.spec?.holderIdentity ?? '', transitions: lease.spec?.leaseTransitions ?? 0, ...(lease.spec?.acquireTime ? { acquireTime: lease.spec.acquireTime } : {}) });
    return structuredClone(this.lease);
  }

  #fail(code: 'unreachable' | 'timeout'): KubeResult<never> {
    return { ok: false, code, reason: code, hint: '' };
  }
}
