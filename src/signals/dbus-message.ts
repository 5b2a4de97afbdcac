/** Defensive readers for D-Bus message bodies: a malformed message yields undefined, never a throw. */
import type { Message } from 'dbus-next';

/** Message type numbers (dbus-next's MessageType enum values). */
export const SIGNAL_TYPE = 4;

/** Whether `msg` is the signal `iface.member`. */
export function isSignal(msg: Message, iface: string, member: string): boolean {
  return msg.type === SIGNAL_TYPE && msg.interface === iface && msg.member === member;
}

/** The PropertiesChanged body: interface name and the changed values, unwrapped from their Variants. */
export interface PropertiesChanged {
  iface: string;
  changed: Record<string, unknown>;
  invalidated: string[];
}

/** Reads an org.freedesktop.DBus.Properties.PropertiesChanged (sa{sv}as) body. */
export function readPropertiesChanged(msg: Message): PropertiesChanged | undefined {
  const [iface, changed, invalidated] = Array.isArray(msg.body) ? msg.body : [];
  if (typeof iface !== 'string' || changed === null || typeof changed !== 'object' || Array.isArray(changed)) return undefined;
  const values: Record<string, unknown> = {};
  for (const [key, variant] of Object.entries(changed as Record<string, unknown>)) {
    values[key] = variant !== null && typeof variant === 'object' && 'value' in variant ? (variant as { value: unknown }).value : variant;
  }
  const names = Array.isArray(invalidated) ? invalidated.filter((n): n is string => typeof n === 'string') : [];
  return { iface, changed: values, invalidated: names };
}

/** The body's strings, when every one of the first `count` entries is a string. */
export function readStrings(msg: Message, count: number): string[] | undefined {
  const body: unknown[] = Array.isArray(msg.body) ? msg.body : [];
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const v = body[i];
    if (typeof v !== 'string') return undefined;
    out.push(v);
  }
  return out;
}

/** A string property value, or undefined. */
export function stringProp(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** systemd's InvocationID (ay, 16 bytes) as the 32 hex digits `systemctl show` prints; "" when unset. */
export function invocationIdOf(value: unknown): string | undefined {
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return Buffer.from(value).toString('hex');
  if (Array.isArray(value) && value.every((b) => typeof b === 'number')) return Buffer.from(value as number[]).toString('hex');
  if (typeof value === 'string' && /^[0-9a-f]*$/i.test(value)) return value.toLowerCase();
  return undefined;
}

/** A uint64 microsecond timestamp (t) as a bigint, or undefined. */
export function timestampOf(value: unknown): bigint | undefined {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
  return undefined;
}
