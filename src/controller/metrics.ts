import { Counter, Gauge, type Registry } from 'prom-client';

/** The controller's metrics (the gate registers connwatch_remediations_total{action,decision,result} for gated steps). */
export interface ControllerMetrics {
  remediations: Counter<'action' | 'result'>;
  grants: Counter<'rung' | 'shadow'>;
  closed: Counter<'result'>;
  quarantined: Gauge;
  draining: Gauge;
  slotsInUse: Gauge;
  slotsLimit: Gauge;
  rampWidth: Gauge;
  halted: Gauge;
  halts: Counter;
  leader: Gauge;
  leaderTransitions: Counter;
}

export function controllerMetrics(registry: Registry): ControllerMetrics {
  const registers = [registry];
  return {
    remediations: new Counter({ name: 'connwatch_controller_steps_total', help: 'Kubernetes steps the controller took or recorded, by action (restartCilium, quarantine, drain, unquarantine) and result (ok, failed, shadow, killed, halted, disabled, stopped).', labelNames: ['action', 'result'], registers }),
    grants: new Counter({ name: 'connwatch_controller_grants_total', help: 'Grants written, by rung and shadow.', labelNames: ['rung', 'shadow'], registers }),
    closed: new Counter({ name: 'connwatch_controller_grants_closed_total', help: 'Grants closed, by result (verified, failed, expired, cancelled, released).', labelNames: ['result'], registers }),
    quarantined: new Gauge({ name: 'connwatch_quarantined', help: 'Nodes connwatch holds quarantined now.', registers }),
    draining: new Gauge({ name: 'connwatch_controller_draining', help: 'Nodes draining or drained by connwatch now.', registers }),
    slotsInUse: new Gauge({ name: 'connwatch_controller_restart_slots_in_use', help: 'Cilium restarts in flight (every not-ready cilium pod counts).', registers }),
    slotsLimit: new Gauge({ name: 'connwatch_controller_restart_slots_limit', help: 'Restarts allowed at once now (budget and ramp width).', registers }),
    rampWidth: new Gauge({ name: 'connwatch_controller_ramp_width', help: "The ramp's current width.", registers }),
    halted: new Gauge({ name: 'connwatch_controller_halted', help: '1 while restarts are halted fleet-wide.', registers }),
    halts: new Counter({ name: 'connwatch_controller_halts_total', help: 'Fleet-wide restart halts.', registers }),
    leader: new Gauge({ name: 'connwatch_controller_leader', help: '1 while this replica leads.', registers }),
    leaderTransitions: new Counter({ name: 'connwatch_controller_leader_transitions_total', help: 'Times this replica started leading.', registers }),
  };
}
