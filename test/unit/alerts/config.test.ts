import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { alertsConfig, DEFAULT_DEDUP_TEMPLATE } from '../../../src/alerts/config.js';
import { renderKey, templateProblem } from '../../../src/alerts/template.js';

describe('alerts config', () => {
  it('parses an empty section to working defaults', () => {
    const cfg = alertsConfig.parse({});
    expect(cfg.dedupKey).toBe(DEFAULT_DEDUP_TEMPLATE);
    expect(cfg.alertmanager.resendIntervalSeconds).toBe(60);
    expect(cfg.pagerduty).toBeNull();
    expect(cfg.spool.maxBytes).toBeGreaterThan(0);
  });

  it.each([
    [{ dedupKey: '{{site}}/{{host}}' }, ['dedupKey'], 'unknown template variable'],
    [{ dedupKey: 'constant' }, ['dedupKey'], 'at least one variable'],
    [{ dedupKey: '' }, ['dedupKey'], 'cannot be empty'],
    [{ pagerduty: { routingKey: 'k', dedupKey: '{{zone}}' } }, ['pagerduty', 'dedupKey'], '{{zone}}'],
    [{ pagerduty: {} }, ['pagerduty', 'routingKey'], ''],
    [{ alertmanager: { urls: ['not a url'] } }, ['alertmanager', 'urls', 0], ''],
    [{ webhooks: [{ url: 'http://a/x' }, { url: 'http://b/y' }] }, ['webhooks'], 'used twice'],
    [{ surprise: true }, [], 'surprise'],
  ])('rejects %j at its path', (input, path, message) => {
    const result = alertsConfig.safeParse(input);
    expect(result.success).toBe(false);
    const issue = result.error!.issues.find((i) => JSON.stringify(i.path) === JSON.stringify(path));
    expect(issue, JSON.stringify(result.error!.issues)).toBeDefined();
    expect(JSON.stringify(result.error!.issues)).toContain(message);
  });

  it('keeps secrets out of JSON and inspect output', () => {
    const cfg = alertsConfig.parse({
      pagerduty: { routingKey: 'R0UTINGKEYSECRET' },
      slack: { webhookUrl: 'https://hooks.slack.com/services/T/B/SLACKSECRET' },
      heartbeat: { url: { value: 'https://hc.example/ping/HBSECRET' } },
      webhooks: [{ url: 'https://hook.example/x?token=WHSECRET', headers: { authorization: 'Bearer HDRSECRET' } }],
    });
    const shown = JSON.stringify(cfg) + inspect(cfg, { depth: 10 });
    for (const secret of ['R0UTINGKEYSECRET', 'SLACKSECRET', 'HBSECRET', 'WHSECRET', 'HDRSECRET']) expect(shown).not.toContain(secret);
    expect(cfg.pagerduty!.routingKey.reveal()).toBe('R0UTINGKEYSECRET');
  });
});

describe('dedup-key template', () => {
  const alert = { site: 'eu-1', node: 'node-7', cause: 'ReadyButNoPodNetwork' as const, severity: 'critical' as const, id: 'eu-1/node-7/x' };

  it('renders the per-host default and the fleet alternative', () => {
    expect(renderKey('{{site}}/{{node}}/{{cause}}', alert)).toBe('eu-1/node-7/ReadyButNoPodNetwork');
    expect(renderKey('{{site}}/{{cause}}', alert)).toBe('eu-1/ReadyButNoPodNetwork');
    expect(renderKey('{{ site }}:{{severity}}', alert)).toBe('eu-1:critical');
  });

  it('keeps keys within PagerDuty\'s 255 characters, distinct per input', () => {
    const a = renderKey('{{node}}', { ...alert, node: 'x'.repeat(300) });
    const b = renderKey('{{node}}', { ...alert, node: `${'x'.repeat(299)}y` });
    expect(a.length).toBe(255);
    expect(b.length).toBe(255);
    expect(a).not.toBe(b);
  });

  it('names the accepted variables when one is unknown', () => {
    expect(templateProblem('{{nodename}}')).toMatch(/accepted: \{\{site\}\}, \{\{node\}\}/);
    expect(templateProblem('{{site}}/{{cause}}')).toBeUndefined();
  });
});
