import { describe, expect, it } from 'vitest';
import { formatHostPort, parseHostPort } from '../../../src/common/hostport.js';

describe('host:port', () => {
  it.each([
    ['127.0.0.1:9820', { host: '127.0.0.1', port: 9820 }],
    ['[::1]:9820', { host: '::1', port: 9820 }],
    ['localhost:1', { host: 'localhost', port: 1 }],
    ['0.0.0.0:65535', { host: '0.0.0.0', port: 65535 }],
  ])('accepts %s', (text, value) => {
    expect(parseHostPort(text)).toEqual({ ok: true, value });
    expect(formatHostPort(value)).toBe(text);
  });

  it.each(['9820', '127.0.0.1', '::1:9820', '[nothost]:1', '127.0.0.1:65536', '127.0.0.1:0', 'a b:1', ''])('rejects %j', (text) => {
    expect(parseHostPort(text).ok).toBe(false);
  });

  it('allows port 0 only when asked (tests)', () => {
    expect(parseHostPort('127.0.0.1:0', true)).toEqual({ ok: true, value: { host: '127.0.0.1', port: 0 } });
  });
});
