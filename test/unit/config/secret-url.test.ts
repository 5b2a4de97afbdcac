// Review finding: a webhook or dead-man's-switch URL without a scheme used to pass validation and
// crash every agent at the first ping. It is a configuration error now, and still never printed.
import { describe, expect, it } from 'vitest';
import { formatConfigErrors, loadConfig } from '../../../src/config/index.js';

function load(env: Record<string, string>) {
  return loadConfig({ env, hostname: 'h1', fileExists: () => false });
}

describe('secret URLs', () => {
  it.each([
    ['CONNWATCH_ALERTS_HEARTBEAT_URL', 'alerts.heartbeat.url'],
    ['CONNWATCH_ALERTS_SLACK_WEBHOOKURL', 'alerts.slack.webhookUrl'],
  ])('%s without a scheme is refused at start with its path, the value redacted', (name, path) => {
    const result = load({ [name]: 'hooks.example.invalid/T000/secret-token' });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const text = formatConfigErrors(result.errors);
    expect(text).toContain(path);
    expect(text).toContain('http:// or https://');
    expect(text).not.toContain('secret-token');
  });

  it('accepts an https URL', () => {
    const result = load({ CONNWATCH_ALERTS_HEARTBEAT_URL: 'https://hc.example.invalid/ping/abc' });
    expect(result.ok).toBe(true);
  });
});
