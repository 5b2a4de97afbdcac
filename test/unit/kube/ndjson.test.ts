import { describe, expect, it } from 'vitest';
import { LineSplitter, parseWatchLine } from '../../../src/kube/ndjson.js';

const events = [
  { type: 'ADDED', object: { metadata: { name: 'a', resourceVersion: '10' }, data: { note: 'zürich — ✓ 🚀' } } },
  { type: 'MODIFIED', object: { metadata: { name: 'a', resourceVersion: '11' } } },
  { type: 'BOOKMARK', object: { metadata: { resourceVersion: '12' } } },
];
const stream = Buffer.from(events.map((e) => JSON.stringify(e)).join('\n') + '\n', 'utf8');

function split(chunks: Buffer[]): string[] {
  const splitter = new LineSplitter();
  const lines: string[] = [];
  for (const chunk of chunks) lines.push(...splitter.push(chunk).lines);
  const rest = splitter.end();
  if (rest !== undefined) lines.push(rest);
  return lines;
}

describe('watch stream framing', () => {
  it('gives the same events whatever the chunk boundaries (every split point, multi-byte characters included)', () => {
    for (let cut = 1; cut < stream.length; cut++) {
      const lines = split([stream.subarray(0, cut), stream.subarray(cut)]);
      expect(lines.map((l) => JSON.parse(l))).toEqual(events);
    }
  });

  it('survives one byte per chunk', () => {
    const chunks = [...stream].map((b) => Buffer.from([b]));
    expect(split(chunks).map((l) => JSON.parse(l))).toEqual(events);
  });

  it('keeps a last line that has no newline', () => {
    const text = Buffer.from(`${JSON.stringify(events[0])}\n${JSON.stringify(events[1])}`);
    expect(split([text])).toHaveLength(2);
  });

  it('drops an over-long line and goes on with the next', () => {
    const splitter = new LineSplitter(10);
    const first = splitter.push(Buffer.from('x'.repeat(25)));
    const second = splitter.push(Buffer.from('yyy\n{"ok":1}\n'));
    expect(first.lines).toEqual([]);
    expect(second).toEqual({ lines: ['{"ok":1}'], dropped: 1 });
  });

  it('reports garbage lines and skips blank ones without ending the stream', () => {
    expect(parseWatchLine('')).toBeUndefined();
    expect(parseWatchLine('   ')).toBeUndefined();
    expect(parseWatchLine('<html>proxy error</html>')).toMatchObject({ ok: false, reason: expect.stringContaining('not JSON') });
    expect(parseWatchLine('{"type":"ADDED"}')).toMatchObject({ ok: false, reason: 'ADDED event without an object' });
    expect(parseWatchLine('{"type":"SURPRISE","object":{}}')).toMatchObject({ ok: false });
    expect(parseWatchLine('42')).toMatchObject({ ok: false });
    expect(parseWatchLine(JSON.stringify(events[2]))).toEqual({ ok: true, event: events[2] });
    expect(parseWatchLine('{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired"}}')).toMatchObject({ ok: true, event: { type: 'ERROR', object: { code: 410 } } });
  });
});
