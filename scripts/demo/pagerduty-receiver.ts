/**
 * The demo's receivers: a stand-in for PagerDuty's Events API v2 (POST /v2/enqueue → 202
 * {"status":"success","message":"Event processed","dedup_key":…}; a body without routing_key or
 * event_action → 400), and Alertmanager's webhook notifications (POST /alertmanager, payload
 * version 4). Prints one JSON line per accepted event. Usage: pagerduty-receiver.ts host port
 */
import { createServer } from 'node:http';

const [host = '127.0.0.1', port = '0'] = process.argv.slice(2);

const server = createServer((req, res) => {
  let raw = '';
  req.on('data', (chunk: Buffer) => (raw += chunk.toString()));
  req.on('end', () => {
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'POST' && req.url === '/alertmanager') {
      const note = JSON.parse(raw) as { status: string; alerts: { status: string; labels: Record<string, string> }[] };
      process.stdout.write(JSON.stringify({ t: Date.now(), source: 'alertmanager', status: note.status, alerts: note.alerts.map((a) => `${a.labels.alertname} ${a.labels.node} ${a.status}`) }) + '\n');
      return reply(200, {});
    }
    if (req.method !== 'POST' || req.url !== '/v2/enqueue') return reply(404, { status: 'invalid request', message: 'not found' });
    let event: { routing_key?: string; event_action?: string; dedup_key?: string; payload?: { summary?: string; severity?: string } };
    try {
      event = JSON.parse(raw) as typeof event;
    } catch {
      return reply(400, { status: 'invalid event', message: 'Event object is invalid', errors: ['body is not JSON'] });
    }
    if (!event.routing_key || !event.event_action) return reply(400, { status: 'invalid event', message: 'Event object is invalid', errors: ['routing_key and event_action are required'] });
    process.stdout.write(JSON.stringify({ t: Date.now(), source: 'pagerduty', action: event.event_action, dedupKey: event.dedup_key, summary: event.payload?.summary, severity: event.payload?.severity }) + '\n');
    reply(202, { status: 'success', message: 'Event processed', dedup_key: event.dedup_key });
  });
});
server.listen(Number(port), host);
process.on('SIGTERM', () => server.close(() => process.exit(0)));
