import { isIP } from 'node:net';

/** A listen address split into host and port. */
export interface HostPort {
  host: string;
  port: number;
}

/**
 * Parses "host:port" ("127.0.0.1:9820", "[::1]:9820", "localhost:9820"). Port 0 (any free
 * port) only when `allowZero`, which tests use; operators give a real port.
 */
export function parseHostPort(text: string, allowZero = false): { ok: true; value: HostPort } | { ok: false; reason: string } {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text);
  if (!match) return { ok: false, reason: `"${text}" is not host:port (IPv6 in brackets: [::1]:9820)` };
  const host = match[1] ?? match[2] ?? '';
  const port = Number(match[3]);
  if (match[1] !== undefined && isIP(host) !== 6) return { ok: false, reason: `"${host}" is not an IPv6 address` };
  if (port > 65535 || (port === 0 && !allowZero)) return { ok: false, reason: `port ${port} is out of range 1-65535` };
  return { ok: true, value: { host, port } };
}

/** Renders a HostPort back as text, bracketing IPv6. */
export function formatHostPort({ host, port }: HostPort): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
