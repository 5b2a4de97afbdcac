// PodDisruptionBudget status, as the disruption controller computes it, and the eviction check
// the pods/eviction subresource makes (pkg/registry/core/pod/storage/eviction.go).

import { errors } from './errors.js';
import { labelSelectorObject } from './selectors.js';
import type { KObject } from './store.js';

/** GetScaledValueFromIntOrPercent. */
function scaled(v: unknown, total: number, roundUp: boolean): number {
  if (typeof v === 'number') return v;
  const m = String(v).match(/^(\d+)%$/);
  if (!m) throw errors.badRequest(`invalid value for IntOrString: invalid value "${String(v)}": must be an integer or percentage (e.g. '5%')`);
  const x = (Number(m[1]) * total) / 100;
  return roundUp ? Math.ceil(x) : Math.floor(x);
}

export function isReady(pod: KObject): boolean {
  return (pod.status?.conditions ?? []).some((c: KObject) => c.type === 'Ready' && c.status === 'True');
}

/**
 * The status the disruption controller would write for this budget over these pods. The real
 * controller takes expectedPods from the pods' controllers' scale; with no controllers here,
 * each budget's matching pods count as the scale (what it would be for a controller whose
 * replicas equal its pods).
 */
export function pdbStatus(pdb: KObject, podsInNamespace: KObject[], previous?: KObject): KObject {
  const match = labelSelectorObject(pdb.spec?.selector);
  const pods = podsInNamespace.filter((p) => match(p.metadata.labels));
  const expected = pods.length;
  let desired: number;
  if (pdb.spec?.maxUnavailable !== undefined && pdb.spec?.maxUnavailable !== null) {
    desired = Math.max(0, expected - scaled(pdb.spec.maxUnavailable, expected, true));
  } else if (typeof pdb.spec?.minAvailable === 'number') {
    desired = pdb.spec.minAvailable;
  } else if (typeof pdb.spec?.minAvailable === 'string') {
    desired = scaled(pdb.spec.minAvailable, expected, true);
  } else {
    desired = 0;
  }
  const healthy = pods.filter((p) => !p.metadata.deletionTimestamp && isReady(p)).length;
  let allowed = healthy - desired;
  if (expected <= 0 || allowed <= 0) allowed = 0;
  const was = (previous?.conditions ?? []).find((c: KObject) => c.type === 'DisruptionAllowed');
  const status = allowed > 0 ? 'True' : 'False';
  const condition = {
    type: 'DisruptionAllowed', status, observedGeneration: pdb.metadata.generation,
    lastTransitionTime: was && was.status === status ? was.lastTransitionTime : new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    reason: allowed > 0 ? 'SufficientPods' : 'InsufficientPods', message: '',
  };
  return { observedGeneration: pdb.metadata.generation, disruptionsAllowed: allowed, currentHealthy: healthy, desiredHealthy: desired, expectedPods: expected, conditions: [condition] };
}

/** Budgets in the pod's namespace whose selector matches the pod. */
export function budgetsFor(pod: KObject, pdbsInNamespace: KObject[]): KObject[] {
  return pdbsInNamespace.filter((b) => labelSelectorObject(b.spec?.selector)(pod.metadata.labels));
}

/** Throws what the eviction subresource answers when the budgets forbid evicting this pod. */
export function checkEviction(pod: KObject, budgets: KObject[]): void {
  const phase = pod.status?.phase;
  // Terminal, pending or already-deleting pods are not counted by any budget.
  if (phase === 'Succeeded' || phase === 'Failed' || phase === 'Pending' || pod.metadata.deletionTimestamp) return;
  if (budgets.length === 0) return;
  if (budgets.length > 1) throw errors.internal('This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.');
  const pdb = budgets[0]!;
  const st = pdb.status ?? {};
  if (!isReady(pod)) {
    // An unhealthy running pod: evictable when the budget is met (IfHealthyBudget) or always (AlwaysAllow).
    if (pdb.spec?.unhealthyPodEvictionPolicy === 'AlwaysAllow' || (st.currentHealthy ?? 0) >= (st.desiredHealthy ?? 0)) return;
  }
  if ((st.observedGeneration ?? 0) < (pdb.metadata.generation ?? 0)) {
    throw errors.tooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0,
      [{ reason: 'DisruptionBudget', message: `The disruption budget ${pdb.metadata.name} is still being processed by the server.` }]);
  }
  if ((st.disruptionsAllowed ?? 0) <= 0) {
    throw errors.tooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0,
      [{ reason: 'DisruptionBudget', message: `The disruption budget ${pdb.metadata.name} needs ${st.desiredHealthy ?? 0} healthy pods and has ${st.currentHealthy ?? 0} currently` }]);
  }
}
