/**
 * The audit in a worker thread: everything it loads (the checks, systeminformation) lives in the
 * worker's own heap and goes with it when the worker ends, so the agent's steady memory is unchanged.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { AuditOptions } from './audit.js';

const { runAudit } = await import('./audit.js');
parentPort?.postMessage(await runAudit(workerData as AuditOptions));
