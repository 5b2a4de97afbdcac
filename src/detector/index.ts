/**
 * The detector box: one pure state machine for the incident (no I/O, no clock, no timers).
 * Signals, damage reports and action outcomes go in; a verdict and commands come out.
 */
export { callsForReread, liftsHold, readNetworkd, type NetworkdReading } from './activity.js';
export { incidentSnapshot, initialState, nodeState, verdictOf, type DetectorConfig, type DetectorState, type Episode, type Unrepaired } from './state.js';
export { escalate, initialEscalation, noteGrants, type EscalationConfig, type EscalationView } from './escalation.js';
export { initialProbeView, judgeRound, type ProbeJudgeConfig, type ProbeJudgement, type ProbeView } from './probes.js';
export { START_WAIT_MS, step, type StepResult } from './step.js';
