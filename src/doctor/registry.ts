/** Every kind's check, by kind: a kind without a check does not compile. */
import type { Check, Kind } from './types.js';
import { catchAllCheck, foreignCheck, netplanCheck, staticAddressCheck } from './networkd.js';
import { needrestartCheck, unattendedUpgradesCheck } from './upgrades.js';
import { rpFilterCheck } from './sysctl.js';
import { cniProtoCheck, lookupLocalCheck } from './live.js';
import { capabilityCheck } from './capability.js';
import { ciliumCniCheck } from './cilium.js';

export const CHECKS = {
  'networkd-foreign-rules': (input) => input.memo('kind:networkd-foreign-rules', () => foreignCheck('ManageForeignRoutingPolicyRules')(input)),
  'networkd-foreign-routes': foreignCheck('ManageForeignRoutes'),
  'networkd-foreign-nexthops': foreignCheck('ManageForeignNextHops'),
  'netplan-rendered': netplanCheck,
  'unattended-upgrades-systemd': unattendedUpgradesCheck,
  'needrestart-auto-restart': needrestartCheck,
  'network-catch-all-cilium': catchAllCheck,
  'rp-filter-cilium': rpFilterCheck,
  'static-address-cni-routes': staticAddressCheck,
  'lookup-local-missing': lookupLocalCheck,
  'cni-rules-not-proto-kernel': cniProtoCheck,
  'cap-net-admin-missing': capabilityCheck,
  'cilium-cni-config-missing': ciliumCniCheck,
} as const satisfies Record<Kind, Check>;
