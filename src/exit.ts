/** Exit codes every command shares (documented in the README). */
export const EXIT = {
  ok: 0,
  /** check: broken; doctor: hazards found. */
  problem: 1,
  /** Configuration or usage error; check/doctor: cannot tell. */
  usage: 2,
  /** The command exists but this release cannot do its job yet. */
  unavailable: 3,
} as const;
