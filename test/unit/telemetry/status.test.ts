import { describe, expect, it } from 'vitest';
import { Secret } from '../../../src/common/secret.js';
import { StatusBoard } from '../../../src/telemetry/index.js';
import { ManualClock } from '../../support/clock.js';

describe('StatusBoard', () => {
  it('is well-formed when nothing was published', () => {
    const board = new StatusBoard({ version: '0.1.0', mode: 'baremetal', clock: new ManualClock(Date.UTC(2026, 0, 1)) });
    expect(JSON.parse(JSON.stringify(board.snapshot()))).toEqual({
      version: '0.1.0',
      mode: 'baremetal',
      startedAt: '2026-01-01T00:00:00.000Z',
      generatedAt: '2026-01-01T00:00:00.000Z',
    });
  });

  it('replaces a section whole and keeps the others', () => {
    const board = new StatusBoard({ version: 'v', mode: 'kubernetes', clock: new ManualClock() });
    board.publish('detector', { state: 'Suspect', reasons: ['a'] });
    board.publish('gate', { killSwitch: false });
    board.publish('detector', { state: 'Healthy' });
    expect(board.snapshot()).toMatchObject({ detector: { state: 'Healthy' }, gate: { killSwitch: false } });
    expect(board.snapshot().detector).toEqual({ state: 'Healthy' });
  });

  it('copies on publish, so later mutation does not leak in, and redacts Secrets', () => {
    const board = new StatusBoard({ version: 'v', mode: 'baremetal', clock: new ManualClock() });
    const section = { items: [1], key: new Secret('s3cret') };
    board.publish('alerts', section);
    section.items.push(2);
    expect(board.snapshot().alerts).toEqual({ items: [1], key: '[redacted]' });
  });

  it('survives unserializable sections', () => {
    const board = new StatusBoard({ version: 'v', mode: 'baremetal', clock: new ManualClock() });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    board.publish('weird', cyclic);
    expect(board.snapshot().weird).toMatchObject({ unserializable: expect.stringMatching(/circular/i) });
  });

  it('refuses reserved section names', () => {
    const board = new StatusBoard({ version: 'v', mode: 'baremetal', clock: new ManualClock() });
    expect(() => board.publish('mode', {})).toThrow(/reserved/);
  });
});
