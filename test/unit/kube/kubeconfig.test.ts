import { describe, expect, it } from 'vitest';
import { kubeConfig } from '../../../src/kube/config.js';
import { parseKubeconfig } from '../../../src/kube/kubeconfig.js';
import { resolveClusterAccess } from '../../../src/kube/source.js';

const files: Record<string, string> = {
  '/etc/kube/ca.crt': 'CA-PEM',
  '/etc/kube/token': 'file-token\n',
  '/sa/token': 'sa-token',
  '/sa/ca.crt': 'SA-CA',
  '/sa/namespace': 'connwatch\n',
};
const read = async (path: string) => {
  const text = files[path];
  if (text === undefined) throw Object.assign(new Error('nope'), { code: 'ENOENT' });
  return text;
};
const b64 = (text: string) => Buffer.from(text).toString('base64');

function kubeconfig(user: string, cluster = 'server: https://10.0.0.1:6443\n    certificate-authority: ca.crt\n    tls-server-name: kubernetes.default.svc') {
  return `apiVersion: v1
kind: Config
current-context: lab
contexts:
- name: lab
  context: { cluster: c1, user: u1, namespace: connwatch }
- name: other
  context: { cluster: c1, user: u2 }
clusters:
- name: c1
  cluster:
    ${cluster}
users:
- name: u1
  user:
    ${user}
- name: u2
  user: {}
`;
}

describe('kubeconfig', () => {
  it('reads the current context: server, CA file (relative to the kubeconfig), server name, token, namespace', async () => {
    const parsed = await parseKubeconfig(kubeconfig('token: abc'), '/etc/kube/config', read);
    expect(parsed).toEqual({
      ok: true,
      value: { server: 'https://10.0.0.1:6443', serverName: 'kubernetes.default.svc', caPem: 'CA-PEM', credentials: { token: 'abc' }, namespace: 'connwatch', context: 'lab' },
    });
  });

  it('takes a token file and client certificate data', async () => {
    const user = `tokenFile: token\n    client-certificate-data: ${b64('CERT')}\n    client-key-data: ${b64('KEY')}`;
    const parsed = await parseKubeconfig(kubeconfig(user, `server: https://k:6443\n    certificate-authority-data: ${b64('INLINE-CA')}`), '/etc/kube/config', read);
    expect(parsed).toMatchObject({ ok: true, value: { caPem: 'INLINE-CA', credentials: { tokenFile: '/etc/kube/token', certPem: 'CERT', keyPem: 'KEY' } } });
  });

  it.each([
    ['exec plugins', kubeconfig('exec: { command: aws }'), /exec is not supported/],
    ['auth-provider', kubeconfig('auth-provider: { name: gcp }'), /auth-provider is not supported/],
    ['basic auth', kubeconfig('username: admin'), /username is not supported/],
    ['a certificate without its key', kubeconfig(`client-certificate-data: ${b64('C')}`), /needs both/],
    ['http servers', kubeconfig('token: x', 'server: http://10.0.0.1:8080'), /not https/],
    ['insecure-skip-tls-verify', kubeconfig('token: x', 'server: https://k\n    insecure-skip-tls-verify: true'), /insecure-skip-tls-verify is not supported/],
    ['a missing CA file', kubeconfig('token: x', 'server: https://k\n    certificate-authority: /nope'), /cannot read its certificate-authority \(ENOENT\)/],
    ['no current-context', 'apiVersion: v1\nclusters: []', /no current-context/],
    ['not YAML', ': : :\n\t- [', /not YAML|not a kubeconfig/],
  ])('refuses %s with a sentence', async (_what, text, message) => {
    const parsed = await parseKubeconfig(text, '/etc/kube/config', read);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason).toMatch(message);
  });
});

describe('cluster access', () => {
  const base = kubeConfig.parse({ tokenFile: '/sa/token', caFile: '/sa/ca.crt' });

  it('in-cluster: the Service from the environment, the token file, the CA, the namespace', async () => {
    const access = await resolveClusterAccess(base, { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }, read);
    expect(access).toEqual({
      ok: true,
      value: { source: 'in-cluster', endpoints: [{ url: 'https://10.96.0.1:443' }], caPem: 'SA-CA', credentials: { tokenFile: '/sa/token' }, namespace: 'connwatch' },
    });
  });

  it('direct endpoints take precedence, in order, with the TLS server name', async () => {
    const cfg = kubeConfig.parse({ tokenFile: '/sa/token', caFile: '/sa/ca.crt', endpoints: ['https://192.168.1.10:6443', { url: 'https://cp2.example:6443', serverName: 'cp2' }] });
    const access = await resolveClusterAccess(cfg, { KUBERNETES_SERVICE_HOST: '10.96.0.1' }, read);
    expect(access.ok && access.value.endpoints).toEqual([
      { url: 'https://192.168.1.10:6443', serverName: 'kubernetes.default.svc' },
      { url: 'https://cp2.example:6443', serverName: 'cp2' },
    ]);
  });

  it('brackets an IPv6 service host', async () => {
    const access = await resolveClusterAccess(base, { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, read);
    expect(access.ok && access.value.endpoints[0]!.url).toBe('https://[fd00::1]:443');
  });

  it('says what is missing', async () => {
    expect(await resolveClusterAccess(base, {}, read)).toMatchObject({ ok: false, reason: expect.stringContaining('KUBERNETES_SERVICE_HOST is not set') });
    const noToken = kubeConfig.parse({ tokenFile: '/nope', caFile: '/sa/ca.crt' });
    expect(await resolveClusterAccess(noToken, { KUBERNETES_SERVICE_HOST: 'h' }, read)).toMatchObject({ ok: false, reason: expect.stringContaining('automountServiceAccountToken') });
  });

  it('kubeconfig: its server unless endpoints are configured', async () => {
    files['/k/config'] = kubeconfig('token: t');
    files['/k/ca.crt'] = 'K-CA';
    const cfg = kubeConfig.parse({ kubeconfig: '/k/config' });
    const access = await resolveClusterAccess(cfg, {}, read);
    expect(access).toMatchObject({ ok: true, value: { source: 'kubeconfig', endpoints: [{ url: 'https://10.0.0.1:6443', serverName: 'kubernetes.default.svc' }], caPem: 'K-CA' } });
  });
});

describe('kube config section', () => {
  it('defaults validate', () => {
    const cfg = kubeConfig.parse(undefined);
    expect(cfg.qps).toBe(5);
    expect(cfg.watch.relistJitterMs).toBe(30_000);
    expect(cfg.unreachableAfterMs).toBe(30_000);
  });

  it('refuses leader timings that break client-go’s rules, saying which', () => {
    const bad = kubeConfig.safeParse({ leaderElection: { leaseDurationMs: 10_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 } });
    expect(bad.success).toBe(false);
    expect(JSON.stringify(bad.error?.issues)).toMatch(/leaseDurationMs \(10000\) must be greater than renewDeadlineMs/);
    const jitter = kubeConfig.safeParse({ leaderElection: { leaseDurationMs: 15_000, renewDeadlineMs: 2_400, retryPeriodMs: 2_000 } });
    expect(JSON.stringify(jitter.error?.issues)).toMatch(/1.2 × retryPeriodMs/);
  });

  it('takes only https endpoints', () => {
    expect(kubeConfig.safeParse({ endpoints: ['http://10.0.0.1:6443'] }).success).toBe(false);
  });
});
