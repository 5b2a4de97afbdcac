/**
 * The lab's responders: a tiny node:http server (cilium-health's port) and optionally a TCP
 * greeter, run with `node -e` inside a namespace so start-up costs no TypeScript loader.
 * argv: <label> <httpPort> [tcpPort]. Prints "ready" once listening.
 *
 * Delay (the kernel here has no netem), on every HTTP request it answers:
 * - the `?delayMs=` query, plus
 * - the control file named by $LAB_RESPONDER_CONTROL (JSON `{ all?: {delayMs, jitterMs},
 *   targets?: { <label>: {delayMs, jitterMs} } }`), re-read when its inode, mtime or size change,
 *   so a running responder follows it without a restart: delayMs ± jitterMs, uniform, never < 0.
 * The answer is `{ lab: <label>, ok: true, delayMs: <applied> }`. The TCP greeter is never delayed.
 */
export const RESPONDER_SOURCE = String.raw`
const http = require('node:http');
const net = require('node:net');
const fs = require('node:fs');
const [label, httpPort, tcpPort] = process.argv.slice(1);
const control = process.env.LAB_RESPONDER_CONTROL;
let seen = '';
let cfg = { delayMs: 0, jitterMs: 0 };
function current() {
  if (!control) return cfg;
  try {
    const st = fs.statSync(control);
    const key = st.ino + ':' + st.mtimeMs + ':' + st.size;
    if (key !== seen) {
      const all = JSON.parse(fs.readFileSync(control, 'utf8'));
      cfg = (all.targets && all.targets[label]) || all.all || { delayMs: 0, jitterMs: 0 };
      seen = key;
    }
  } catch {
    if (seen !== 'none') { seen = 'none'; cfg = { delayMs: 0, jitterMs: 0 }; }
  }
  return cfg;
}
let pending = 1 + (tcpPort ? 1 : 0);
const ready = () => { if (--pending === 0) process.stdout.write('ready\n'); };
http.createServer((req, res) => {
  const q = Number(new URL(req.url, 'http://x').searchParams.get('delayMs') || 0);
  const c = current();
  const d = Math.max(0, (Number(c.delayMs) || 0) + (Math.random() * 2 - 1) * (Number(c.jitterMs) || 0));
  const delay = Math.min(q + d, 60000);
  setTimeout(() => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ lab: label, ok: true, delayMs: Math.round(delay) }));
  }, delay);
}).listen(Number(httpPort), '::', ready);
if (tcpPort) net.createServer((s) => { s.on('error', () => {}); s.end('lab-ok ' + label + '\n'); }).listen(Number(tcpPort), '0.0.0.0', ready);
process.on('SIGTERM', () => process.exit(0));
`;

/** The responders' control file (see RESPONDER_SOURCE). */
export interface ResponderControl {
  all?: { delayMs: number; jitterMs: number };
  targets?: Record<string, { delayMs: number; jitterMs: number }>;
}
