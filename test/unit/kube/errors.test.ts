import { describe, expect, it } from 'vitest';
import { CONNECT_FAILURE_CODES, KUBE_ERROR_CODES, codeForStatus, isRetryable, parseRetryAfter, rbacHint } from '../../../src/kube/errors.js';
import { rbacResourceName, RESOURCES, resourcePath, defineResource } from '../../../src/kube/resources.js';

describe('retry classification (one table)', () => {
  it.each([
    [429, 'throttled', true],
    [500, 'server-error', true],
    [503, 'server-error', true],
    [401, 'unauthorized', false],
    [403, 'forbidden', false],
    [404, 'not-found', false],
    [409, 'conflict', false],
    [410, 'gone', false],
    [422, 'invalid', false],
    [400, 'invalid', false],
    [418, 'http-status', false],
  ] as const)('HTTP %i is %s (retried: %s)', (status, code, retried) => {
    expect(codeForStatus(status)).toBe(code);
    expect(isRetryable(code)).toBe(retried);
  });

  it('retries connection trouble and deadlines, never TLS refusals or the caller’s abort', () => {
    expect(isRetryable('unreachable')).toBe(true);
    expect(isRetryable('reset')).toBe(true);
    expect(isRetryable('timeout')).toBe(true);
    expect(isRetryable('tls')).toBe(false);
    expect(isRetryable('aborted')).toBe(false);
    expect(isRetryable('closed')).toBe(false);
  });

  it('every code has a hint', () => {
    for (const [code, rule] of Object.entries(KUBE_ERROR_CODES)) expect(rule.hint.length, code).toBeGreaterThan(10);
  });

  it('only connect-phase failures count as "no connection"', () => {
    expect(CONNECT_FAILURE_CODES.has('ECONNREFUSED')).toBe(true);
    expect(CONNECT_FAILURE_CODES.has('UND_ERR_CONNECT_TIMEOUT')).toBe(true);
    expect(CONNECT_FAILURE_CODES.has('ECONNRESET')).toBe(false);
    expect(CONNECT_FAILURE_CODES.has('UND_ERR_SOCKET')).toBe(false);
  });

  it('reads Retry-After as seconds or an HTTP date', () => {
    expect(parseRetryAfter('3', 0)).toBe(3000);
    expect(parseRetryAfter(['1.5'], 0)).toBe(1500);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4_000)).toBe(6000);
    expect(parseRetryAfter('soon', 0)).toBeUndefined();
    expect(parseRetryAfter(undefined, 0)).toBeUndefined();
  });

  it('names the verb and resource in the RBAC hint', () => {
    expect(rbacHint('update', rbacResourceName(RESOURCES.leases))).toBe('the service account needs update on leases (apiGroup coordination.k8s.io): see deploy/kubernetes/rbac');
    expect(rbacResourceName(RESOURCES.pods, 'eviction')).toBe('pods/eviction');
  });
});

describe('resource paths come from the descriptor table', () => {
  it('builds core, grouped, namespaced, cluster-scoped and subresource paths', () => {
    expect(resourcePath(RESOURCES.nodes, { name: 'n1' })).toBe('/api/v1/nodes/n1');
    expect(resourcePath(RESOURCES.nodes, { name: 'n1', subresource: 'status' })).toBe('/api/v1/nodes/n1/status');
    expect(resourcePath(RESOURCES.pods)).toBe('/api/v1/pods');
    expect(resourcePath(RESOURCES.pods, { namespace: 'kube-system', name: 'p', subresource: 'eviction' })).toBe('/api/v1/namespaces/kube-system/pods/p/eviction');
    expect(resourcePath(RESOURCES.leases, { namespace: 'connwatch', name: 'controller' })).toBe('/apis/coordination.k8s.io/v1/namespaces/connwatch/leases/controller');
    const custom = defineResource({ group: 'connwatch.io', version: 'v1alpha1', plural: 'nodestates', kind: 'NodeState', namespaced: true });
    expect(resourcePath(custom, { namespace: 'connwatch' })).toBe('/apis/connwatch.io/v1alpha1/namespaces/connwatch/nodestates');
  });

  it('escapes names and refuses impossible paths as bugs', () => {
    expect(resourcePath(RESOURCES.configmaps, { namespace: 'a', name: 'x/y' })).toBe('/api/v1/namespaces/a/configmaps/x%2Fy');
    expect(() => resourcePath(RESOURCES.nodes, { namespace: 'a', name: 'n' })).toThrow(/cluster-scoped/);
    expect(() => resourcePath(RESOURCES.pods, { name: 'p' })).toThrow(/needs a namespace/);
    expect(() => resourcePath(RESOURCES.pods, { namespace: 'a', name: '..' })).toThrow(/segment/);
  });
});
