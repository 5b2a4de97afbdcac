/**
 * Issue 19: the kustomize base applied with the real kubectl against the test API server, as an
 * operator applies it — a server-side dry run first, then for real, then again (unchanged) — with
 * the kubectl the dispatcher picks for a server reporting 1.30 and one reporting 1.33; the
 * objects read back with kubectl get; the optional beacon after the base; the pre-1.30 variant
 * (without the admission policy) applies too. The test server stores the workloads and the policy
 * and runs none of them (docs/kube-apiserver.md); their schemas are checked in
 * test/unit/deploy/manifests.test.ts.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKubeApiServer, type KubeApiServer } from '../../scripts/kube-apiserver/server.js';
import { BASE, kustomize } from '../unit/deploy/support.js';

const run = promisify(execFile);

for (const version of ['1.30', '1.33']) {
  describe(`kubectl ${version}: kubectl apply -k deploy/kubernetes`, () => {
    let server: KubeApiServer;
    let dir: string;

    const kubectl = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
      try {
        const r = await run('/usr/bin/kubectl', ['--kubeconfig', server.kubeconfigPath, '--cache-dir', join(dir, 'cache'), ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir }, timeout: 60_000 });
        return { code: 0, stdout: r.stdout, stderr: r.stderr };
      } catch (e) {
        const err = e as { code?: number; stdout?: string; stderr?: string };
        return { code: typeof err.code === 'number' ? err.code : 1, stdout: err.stdout ?? '', stderr: err.stderr ?? String(e) };
      }
    };
    const ok = async (...args: string[]): Promise<string> => {
      const r = await kubectl(...args);
      if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} → ${r.code}: ${r.stderr}`);
      return r.stdout;
    };

    beforeAll(async () => {
      server = await startKubeApiServer({ version });
      dir = await mkdtemp(join(tmpdir(), 'connwatch-manifests-'));
    });
    afterAll(async () => {
      await server?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it(`is kubectl ${version} (the dispatcher picked it by the reported version)`, async () => {
      const v = JSON.parse(await ok('version', '-o', 'json')) as { clientVersion: { major: string; minor: string } };
      expect(`${v.clientVersion.major}.${v.clientVersion.minor}`).toBe(version);
    });

    it('--dry-run=server accepts every object once the namespace exists, and stores nothing', async () => {
      // As the real server: a dry run cannot create into a namespace that does not exist yet.
      const fresh = await kubectl('apply', '-k', BASE, '--dry-run=server');
      expect(fresh.code).not.toBe(0);
      expect(fresh.stderr).toContain('namespaces "connwatch" not found');
      await ok('apply', '-f', join(BASE, 'namespace.yaml'));
      const out = await ok('apply', '-k', BASE, '--dry-run=server');
      const expected = kustomize(BASE).length;
      expect(out.trim().split('\n').filter((l) => / (created|configured|unchanged) \(server dry run\)$/.test(l))).toHaveLength(expected);
      expect((await kubectl('get', 'crd', 'connwatchnodes.connwatch.io')).code).not.toBe(0);
      expect((await kubectl('get', 'ds', '-n', 'connwatch', 'connwatch-agent')).code).not.toBe(0);
    });

    it('applies for real; a second apply changes nothing; kubectl get shows the objects', async () => {
      const first = await ok('apply', '-k', BASE);
      const lines = first.trim().split('\n');
      // Everything but the namespace (created above) is new.
      expect(lines.filter((l) => / created$/.test(l))).toHaveLength(kustomize(BASE).length - 1);
      const again = await ok('apply', '-k', BASE);
      expect(again.trim().split('\n').every((l) => / unchanged$/.test(l)), again).toBe(true);
      expect(await ok('get', 'daemonset,deployment,pdb,configmap,serviceaccount', '-n', 'connwatch', '-o', 'name')).toEqual(expect.stringContaining('daemonset.apps/connwatch-agent'));
      expect(await ok('get', 'crd', 'connwatchnodes.connwatch.io', '-o', 'jsonpath={.status.conditions[?(@.type=="Established")].status}')).toBe('True');
      expect(await ok('get', 'validatingadmissionpolicy,validatingadmissionpolicybinding', '-o', 'name')).toMatch(/connwatch-agent-own-status[\s\S]*connwatch-agent-own-status/);
      const roles = await ok('get', 'roles', '-A', '-o', 'jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {end}');
      expect(roles.trim().split(' ').sort()).toEqual(['connwatch/connwatch-agent', 'connwatch/connwatch-controller', 'default/connwatch-agent-events', 'default/connwatch-controller-events', 'kube-system/connwatch-controller-cilium']);
      const ds = JSON.parse(await ok('get', 'ds', '-n', 'connwatch', 'connwatch-agent', '-o', 'json')) as { spec: { template: { spec: { hostNetwork: boolean } } } };
      expect(ds.spec.template.spec.hostNetwork).toBe(true);
      // Operators edit the control ConfigMap with kubectl; a re-apply keeps a value they set only if the manifest does not name it.
      await ok('-n', 'connwatch', 'patch', 'configmap', 'connwatch', '--type', 'merge', '-p', '{"data":{"killSwitch":"true"}}');
      expect(await ok('-n', 'connwatch', 'get', 'configmap', 'connwatch', '-o', 'jsonpath={.data.killSwitch}')).toBe('true');
    });

    it("docs/kubernetes.md's by-hand ConnwatchNode snippet (no controller running) creates them, and kubectl get cwn shows them", async () => {
      const nodes = server.api.registry.find('', 'v1', 'nodes')!;
      for (const n of ['node-1', 'node-2']) server.api.create(nodes, undefined, { metadata: { name: n } });
      const doc = readFileSync(join(BASE, '../../docs/kubernetes.md'), 'utf8');
      const snippet = doc.match(/\*\*One ConnwatchNode per node\*\*[\s\S]*?```sh\n([\s\S]*?)```/)![1]!;
      await run('/bin/bash', ['-euo', 'pipefail', '-c', snippet], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, KUBECONFIG: server.kubeconfigPath, KUBECACHEDIR: join(dir, 'cache') }, timeout: 60_000 });
      expect(await ok('get', 'cwn', '-n', 'connwatch', '-o', 'name')).toBe('connwatchnode.connwatch.io/node-1\nconnwatchnode.connwatch.io/node-2\n');
    });

    it('the optional beacon applies after the base', async () => {
      const out = await ok('apply', '-k', join(BASE, 'beacon'));
      expect(out.trim()).toBe('daemonset.apps/connwatch-beacon created');
    });

    it('the pre-1.30 variant (without the admission policy) renders and applies without the policy', async () => {
      const overlay = join(dir, 'pre130');
      await rm(overlay, { recursive: true, force: true });
      await (await import('node:fs/promises')).mkdir(overlay, { recursive: true });
      await writeFile(join(overlay, 'kustomization.yaml'), [
        'apiVersion: kustomize.config.k8s.io/v1beta1', 'kind: Kustomization', 'resources:', `  - ${relative(overlay, BASE)}`, 'patches:',
        ...['ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding'].flatMap((kind) => ['status', 'events'].flatMap((what) => ['  - patch: |-', '      $patch: delete', '      apiVersion: admissionregistration.k8s.io/v1', `      kind: ${kind}`, '      metadata:', `        name: connwatch-agent-own-${what}`])),
        '',
      ].join('\n'));
      const out = await ok('apply', '-k', overlay, '--dry-run=server');
      expect(out).not.toMatch(/validatingadmissionpolic/i);
      expect(out.trim().split('\n')).toHaveLength(kustomize(BASE).length - 4);
    });
  });
}
