// /openapi/v2 as kubectl ≤1.28 fetches it: protobuf only (gnostic openapi_v2.Document), read
// before `kubectl apply` does anything. An empty document (no paths, no definitions) makes it
// take its built-in patch types and the OpenAPI v3 documents for everything else.

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

/** A length-delimited protobuf field (wire type 2). */
function field(num: number, payload: Uint8Array): Uint8Array {
  return Uint8Array.from([...varint((num << 3) | 2), ...varint(payload.length), ...payload]);
}

const text = (s: string) => new TextEncoder().encode(s);
const concat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));

/** Document{swagger: "2.0", info: {title, version}, paths: {}}. */
export function openapiV2Protobuf(version: string): Buffer {
  const info = concat(field(1, text('Kubernetes')), field(2, text(version)));
  return Buffer.from(concat(field(1, text('2.0')), field(2, info), field(8, new Uint8Array())));
}

export const openapiV2ContentType = 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf';
