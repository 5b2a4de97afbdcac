/**
 * The doctor's seam: the hazard kinds, a finding, and a check (one pure function per kind over
 * the facts gathered from a filesystem root and, when auditing the live host, the kernel).
 */
import type { DatapathSnapshot } from '../types.js';
import type { RootFs } from './rootfs.js';

/** Every hazard the audit knows, by its stable name (also the `kind` label of `connwatch_hazard`). */
export const KINDS = [
  'networkd-foreign-rules',
  'networkd-foreign-routes',
  'networkd-foreign-nexthops',
  'netplan-rendered',
  'unattended-upgrades-systemd',
  'needrestart-auto-restart',
  'network-catch-all-cilium',
  'rp-filter-cilium',
  'static-address-cni-routes',
  'lookup-local-missing',
  'cni-rules-not-proto-kernel',
  'cap-net-admin-missing',
  'cilium-cni-config-missing',
] as const;

/** A hazard's stable name. */
export type Kind = (typeof KINDS)[number];

/** critical: the incident can happen as is; warning: one more thing and it can; info: worth knowing, not a hazard. */
export type Severity = 'critical' | 'warning' | 'info';

/** Where a finding comes from: a file and line on the audited system (root-relative, written absolute), or a live read. */
export interface Evidence {
  /** Path as the audited system sees it ("/etc/systemd/networkd.conf"), or a command ("ip -4 rule"). */
  file: string;
  /** 1-based line, when the evidence is a line. */
  line?: number;
  /** The line or item itself, or what its absence means. */
  text: string;
}

/** One hazard present on the audited system. */
export interface Finding {
  kind: Kind;
  severity: Severity;
  /** One sentence: what is wrong and why it matters. */
  summary: string;
  evidence: Evidence[];
  /** What to do about it, concretely. */
  fix: string;
}

/** A check's answer: the hazard, its absence, or why it could not be looked at. */
export type CheckResult =
  | { status: 'present'; finding: Omit<Finding, 'kind'> }
  | { status: 'absent'; note?: string }
  | { status: 'skipped'; reason: string };

/** The systemd version and where it was read. */
export interface VersionFact {
  major: number;
  full: string;
  source: string;
}

/** What the live side of the audit read (or a fixture stood in for). */
export type LiveDatapath = { ok: true; snapshot: DatapathSnapshot; source: string } | { ok: false; reason: string } | undefined;

/** Whether a process holds CAP_NET_ADMIN, from its CapEff. */
export interface ProcessCaps {
  pid: string;
  /** How it was found: "self" (the agent) or its command line. */
  what: string;
  netAdmin: boolean;
  source: string;
}

/** Everything a check may look at: the filesystem root and the facts gathered before the checks ran. */
export interface AuditInput {
  fs: RootFs;
  /** The systemd version, if any source told it. */
  systemd: VersionFact | undefined;
  os: { id: string; versionId: string; pretty: string; kernel: string; source: string };
  /** Interface names present (live or from <root>/sys/class/net). */
  interfaces: string[];
  live: LiveDatapath;
  /** Capabilities of the running agent process(es), undefined when none was found. */
  processes: ProcessCaps[] | undefined;
  /** Per-audit cache shared by checks (parse once, read by several kinds). */
  memo<T>(key: string, compute: () => T): T;
}

/** One check per kind: a pure function of the audit input. Throws only for bugs (caught: the kind is "failed"). */
export type Check = (input: AuditInput) => CheckResult;

/** What an audit produced. */
export interface AuditReport {
  root: string;
  /** ISO time the audit started. */
  at: string;
  durationMs: number;
  systemd: VersionFact | null;
  os: AuditInput['os'];
  live: { read: boolean; source: string | null; reason: string | null };
  findings: Finding[];
  /** Kinds looked at and not present. */
  absent: Kind[];
  /** Kinds not looked at, with why (not applicable here, no live data). */
  skipped: { kind: Kind; reason: string }[];
  /** Kinds whose check failed (a bug or an unreadable file): the audit is incomplete. */
  failed: { kind: Kind; reason: string }[];
  /** Set when nothing could be audited at all (the root is missing or unreadable). */
  fatal: string | null;
}
