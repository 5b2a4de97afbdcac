// What is served right now: the built-ins plus every established CRD's versions. Discovery and
// OpenAPI are derived from it; a CRD write changes it at once.

import { CrValidator, crdResources } from './crd.js';
import { builtinResources, type ResourceDef } from './resources.js';
import type { KObject } from './store.js';

export class Registry {
  private readonly byPath = new Map<string, ResourceDef>();
  private readonly crds = new Map<string, { defs: ResourceDef[]; validators: Map<string, CrValidator> }>();
  /** Bumped on every change, so discovery/OpenAPI caches know when to rebuild. */
  generation = 0;

  constructor() {
    for (const d of builtinResources()) this.byPath.set(pathKey(d.group, d.version, d.resource), d);
  }

  find(group: string, version: string, resource: string): ResourceDef | undefined {
    return this.byPath.get(pathKey(group, version, resource));
  }

  all(): ResourceDef[] {
    return [...this.byPath.values()];
  }

  /** Groups in discovery order (built-ins first, then CRD groups sorted), each with its versions. */
  groups(): { name: string; versions: string[] }[] {
    const out = new Map<string, Set<string>>();
    for (const d of this.byPath.values()) {
      if (!d.group) continue;
      let s = out.get(d.group);
      if (!s) out.set(d.group, (s = new Set()));
      s.add(d.version);
    }
    return [...out].map(([name, versions]) => ({ name, versions: [...versions] }));
  }

  /** The defs one group version serves. */
  groupVersion(group: string, version: string): ResourceDef[] {
    return this.all().filter((d) => d.group === group && d.version === version);
  }

  /** Validates (throws 422) and returns the defs a CRD would serve, without serving them. */
  previewCrd(crd: KObject): ResourceDef[] {
    return crdResources(crd);
  }

  /** Serves (or re-serves) a CRD's versions. */
  serveCrd(crd: KObject): void {
    this.unserveCrd(crd.metadata.name);
    const defs = crdResources(crd);
    const validators = new Map<string, CrValidator>();
    for (const d of defs) {
      this.byPath.set(pathKey(d.group, d.version, d.resource), d);
      validators.set(d.version, new CrValidator(d));
    }
    this.crds.set(crd.metadata.name, { defs, validators });
    this.generation++;
  }

  unserveCrd(name: string): ResourceDef[] {
    const had = this.crds.get(name);
    if (!had) return [];
    for (const d of had.defs) this.byPath.delete(pathKey(d.group, d.version, d.resource));
    this.crds.delete(name);
    this.generation++;
    return had.defs;
  }

  validator(def: ResourceDef): CrValidator | undefined {
    return def.crd ? this.crds.get(def.crd.name)?.validators.get(def.crd.version) : undefined;
  }
}

function pathKey(group: string, version: string, resource: string): string {
  return `${group}/${version}/${resource}`;
}
