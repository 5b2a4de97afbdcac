import type { Config } from '../config/index.js';
import type { DetectorConfig } from '../detector/index.js';
import { probeJudgeConfig } from '../probes/index.js';

/** The detector's configuration from the agent's (`run` and `check` weigh evidence the same way). */
export function detectorConfigOf(config: Config, cniDevices: string[], canWrite: { ok: boolean; reason?: string }): DetectorConfig {
  return {
    quietPeriodMs: config.restore.quietPeriodMs,
    maxRepeats: config.restore.maxRepeats,
    episodeMs: config.restore.episodeSeconds * 1000,
    verifyStableMs: config.restore.verifyStableMs,
    rateLimitPerMinute: config.restore.rateLimitPerMinute,
    canWrite,
    cniDevices,
    probes: probeJudgeConfig(config.probes),
    escalation: { requestAfterMs: config.ladder.requestAfterSeconds * 1000, verifyWithinMs: config.ladder.verifySeconds * 1000, restartAttempts: config.ladder.restartAttempts },
  };
}
