import { describe, expect, it } from 'vitest';
import { Secret } from '../../../src/common/secret.js';
import { captureLogs, parseLogLines } from '../../../src/telemetry/index.js';

describe('logger', () => {
  it('writes JSON lines with level names and ISO times', () => {
    const { log, records } = captureLogs('info');
    log.info({ node: 'n1' }, 'started');
    const [record] = records();
    expect(record).toMatchObject({ level: 'info', msg: 'started', node: 'n1' });
    expect(Date.parse(record?.time ?? '')).not.toBeNaN();
  });

  it('drops lines below the configured level', () => {
    const { log, records } = captureLogs('warn');
    log.info('quiet');
    log.debug('quieter');
    log.warn('loud');
    expect(records().map((r) => r.msg)).toEqual(['loud']);
  });

  it('redacts secret-looking keys at any of the first levels, and Secret values', () => {
    const { log, text, records } = captureLogs();
    log.info(
      {
        token: 'tok-1',
        sink: { routingKey: 'rk-2', nested: { password: 'pw-3', deeper: { secret: 's-4' } } },
        request: { headers: { authorization: 'Bearer b-5' } },
        key: new Secret('sec-6'),
      },
      'sending',
    );
    for (const secret of ['tok-1', 'rk-2', 'pw-3', 's-4', 'b-5', 'sec-6']) expect(text()).not.toContain(secret);
    expect(records()[0]).toMatchObject({ token: '[redacted]', key: '[redacted]', sink: { routingKey: '[redacted]' } });
  });

  it('parseLogLines skips what is not a JSON line', () => {
    expect(parseLogLines('hello\n{"level":"info","time":"t","msg":"a"}\n{"level":\n')).toEqual([{ level: 'info', time: 't', msg: 'a' }]);
  });
});
