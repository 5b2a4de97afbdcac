// Server-side printing: the meta.k8s.io/v1 Table kubectl get asks for, with the real printers'
// columns for the built-ins and NAME + additionalPrinterColumns (or AGE) for custom resources.

import type { ResourceDef } from './resources.js';
import type { KObject } from './store.js';

interface Column { name: string; type: string; format?: string; description?: string; priority?: number }
type Cell = string | number | boolean | null;
interface Printer { columns: Column[]; cells(o: KObject, now: number): Cell[] }

/** duration.HumanDuration, as kubectl shows ages. */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m${seconds % 60}s`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return minutes % 60 === 0 ? `${hours}h` : `${hours}h${minutes % 60}m`;
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) return hours % 24 === 0 ? `${Math.floor(hours / 24)}d` : `${Math.floor(hours / 24)}d${hours % 24}h`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24)}d`;
  const days = Math.floor(hours / 24);
  if (hours < 24 * 365 * 8) return days % 365 === 0 ? `${Math.floor(days / 365)}y` : `${Math.floor(days / 365)}y${days % 365}d`;
  return `${Math.floor(days / 365)}y`;
}

const since = (ts: string | undefined | null, now: number) => (ts ? humanDuration(now - Date.parse(ts)) : '<unknown>');
const age = (o: KObject, now: number) => since(o.metadata?.creationTimestamp, now);
const nameCol: Column = { name: 'Name', type: 'string', format: 'name', description: 'Name must be unique within a namespace.' };
const ageCol: Column = { name: 'Age', type: 'string', description: 'CreationTimestamp is a timestamp representing the server time when this object was created.' };

function nodeStatus(o: KObject): string {
  const ready = (o.status?.conditions ?? []).find((c: KObject) => c.type === 'Ready');
  const parts = [ready ? (ready.status === 'True' ? 'Ready' : ready.status === 'False' ? 'NotReady' : 'Unknown') : 'Unknown'];
  if (o.spec?.unschedulable) parts.push('SchedulingDisabled');
  return parts.join(',');
}

function nodeRoles(o: KObject): string {
  const roles = Object.keys(o.metadata?.labels ?? {}).filter((k) => k.startsWith('node-role.kubernetes.io/')).map((k) => k.slice('node-role.kubernetes.io/'.length)).filter(Boolean);
  const kr = o.metadata?.labels?.['kubernetes.io/role'];
  if (kr) roles.push(kr);
  return roles.length ? roles.sort().join(',') : '<none>';
}

function podCells(o: KObject, now: number): Cell[] {
  const statuses: KObject[] = o.status?.containerStatuses ?? [];
  const total = (o.spec?.containers ?? []).length;
  const ready = statuses.filter((s) => s.ready).length;
  const restarts = statuses.reduce((n, s) => n + (s.restartCount ?? 0), 0);
  const reason = o.metadata?.deletionTimestamp ? 'Terminating' : o.status?.reason ?? o.status?.phase ?? '';
  return [o.metadata.name, `${ready}/${total}`, reason, restarts, age(o, now), o.status?.podIP ?? '<none>', o.spec?.nodeName ?? '<none>', o.status?.nominatedNodeName ?? '<none>', '<none>'];
}

function eventObject(o: KObject): string {
  const r = o.involvedObject ?? {};
  return `${String(r.kind ?? '').toLowerCase()}/${r.name ?? ''}`;
}

function intOrStr(v: unknown): string {
  return v === undefined || v === null ? 'N/A' : String(v);
}

const printers: Record<string, Printer> = {
  '/namespaces': { columns: [nameCol, { name: 'Status', type: 'string' }, ageCol], cells: (o, now) => [o.metadata.name, o.status?.phase ?? '', age(o, now)] },
  '/nodes': {
    columns: [nameCol, { name: 'Status', type: 'string' }, { name: 'Roles', type: 'string' }, ageCol, { name: 'Version', type: 'string' },
      { name: 'Internal-IP', type: 'string', priority: 1 }, { name: 'External-IP', type: 'string', priority: 1 }, { name: 'OS-Image', type: 'string', priority: 1 },
      { name: 'Kernel-Version', type: 'string', priority: 1 }, { name: 'Container-Runtime', type: 'string', priority: 1 }],
    cells: (o, now) => {
      const addr = (t: string) => (o.status?.addresses ?? []).find((a: KObject) => a.type === t)?.address ?? '<none>';
      const info = o.status?.nodeInfo ?? {};
      return [o.metadata.name, nodeStatus(o), nodeRoles(o), age(o, now), info.kubeletVersion ?? '', addr('InternalIP'), addr('ExternalIP'), info.osImage || '<unknown>', info.kernelVersion || '<unknown>', info.containerRuntimeVersion || '<unknown>'];
    },
  },
  '/pods': {
    columns: [nameCol, { name: 'Ready', type: 'string' }, { name: 'Status', type: 'string' }, { name: 'Restarts', type: 'string' }, ageCol,
      { name: 'IP', type: 'string', priority: 1 }, { name: 'Node', type: 'string', priority: 1 }, { name: 'Nominated Node', type: 'string', priority: 1 }, { name: 'Readiness Gates', type: 'string', priority: 1 }],
    cells: podCells,
  },
  '/events': {
    columns: [{ name: 'Last Seen', type: 'string' }, { name: 'Type', type: 'string' }, { name: 'Reason', type: 'string' }, { name: 'Object', type: 'string' },
      { name: 'Subobject', type: 'string', priority: 1 }, { name: 'Source', type: 'string', priority: 1 }, { name: 'Message', type: 'string' },
      { name: 'First Seen', type: 'string', priority: 1 }, { name: 'Count', type: 'string', priority: 1 }, { name: 'Name', type: 'string', priority: 1 }],
    cells: (o, now) => {
      const last = o.series?.lastObservedTime ?? o.lastTimestamp ?? o.eventTime ?? o.metadata.creationTimestamp;
      const src = o.source?.component ? `${o.source.component}${o.source.host ? `, ${o.source.host}` : ''}` : o.reportingComponent ?? '';
      return [since(last, now), o.type ?? '', o.reason ?? '', eventObject(o), o.involvedObject?.fieldPath ?? '', src, String(o.message ?? '').trim(), since(o.firstTimestamp ?? o.eventTime, now), o.series?.count ?? o.count ?? 1, o.metadata.name];
    },
  },
  '/configmaps': { columns: [nameCol, { name: 'Data', type: 'integer' }, ageCol], cells: (o, now) => [o.metadata.name, Object.keys(o.data ?? {}).length + Object.keys(o.binaryData ?? {}).length, age(o, now)] },
  'coordination.k8s.io/leases': { columns: [nameCol, { name: 'Holder', type: 'string' }, ageCol], cells: (o, now) => [o.metadata.name, o.spec?.holderIdentity ?? '', age(o, now)] },
  'policy/poddisruptionbudgets': {
    columns: [nameCol, { name: 'Min Available', type: 'string' }, { name: 'Max Unavailable', type: 'string' }, { name: 'Allowed Disruptions', type: 'integer' }, ageCol],
    cells: (o, now) => [o.metadata.name, intOrStr(o.spec?.minAvailable), intOrStr(o.spec?.maxUnavailable), o.status?.disruptionsAllowed ?? 0, age(o, now)],
  },
  'apiextensions.k8s.io/customresourcedefinitions': {
    columns: [nameCol, { name: 'Created At', type: 'date' }],
    cells: (o) => [o.metadata.name, o.metadata.creationTimestamp],
  },
};

/** Evaluates the simple JSONPath an additionalPrinterColumn carries (`.spec.x`, `.status.conditions[0].type`). */
function jsonPath(o: KObject, path: string): unknown {
  const parts = path.replace(/^\{?\.?/, '').replace(/\}$/, '').split(/\.|\[(\d+)\]/).filter((p) => p !== undefined && p !== '');
  let cur: unknown = o;
  for (const p of parts) cur = cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[p] : undefined;
  return cur;
}

function crPrinter(def: ResourceDef, crd: KObject | undefined): Printer {
  const version = (crd?.spec?.versions ?? []).find((v: KObject) => v.name === def.version);
  const extra: KObject[] = version?.additionalPrinterColumns?.length ? version.additionalPrinterColumns : [{ name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }];
  return {
    columns: [nameCol, ...extra.map((c) => ({ name: c.name, type: c.type, format: c.format ?? '', description: c.description ?? '', priority: c.priority ?? 0 }))],
    cells: (o, now) => [o.metadata.name, ...extra.map((c) => {
      const v = jsonPath(o, c.jsonPath);
      if (v === undefined || v === null) return null;
      if (c.type === 'date') return typeof v === 'string' ? since(v, now) : null;
      if (typeof v === 'object') return JSON.stringify(v);
      return v as Cell;
    })],
  };
}

/** The Table for some objects; each row carries the object's metadata (includeObject=Metadata). */
export function toTable(def: ResourceDef, items: KObject[], listMeta: KObject, crd: KObject | undefined, includeObject: string | null): KObject {
  const p = def.crd ? crPrinter(def, crd) : printers[`${def.group}/${def.resource}`] ?? { columns: [nameCol, ageCol], cells: (o: KObject, now: number) => [o.metadata.name, age(o, now)] };
  const now = Date.now();
  return {
    kind: 'Table', apiVersion: 'meta.k8s.io/v1', metadata: listMeta,
    columnDefinitions: p.columns.map((c) => ({ name: c.name, type: c.type, format: c.format ?? '', description: c.description ?? '', priority: c.priority ?? 0 })),
    rows: items.map((o) => ({
      cells: p.cells(o, now),
      object: includeObject === 'None' ? undefined
        : includeObject === 'Object' ? o
        : { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata },
    })),
  };
}
