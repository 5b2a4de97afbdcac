/**
 * The lab's responders: a tiny node:http server (cilium-health's port) and optionally a TCP
 * greeter, run with `node -e` inside a namespace so start-up costs no TypeScript loader.
 * argv: <label> <httpPort> [tcpPort]. Prints "ready" once listening. Optional delay per request
 * via the `?delayMs=` query (the kernel here has no netem).
 */
export const RESPONDER_SOURCE = String.raw`
const http = require('node:http');
const net = require('node:net');
const [label, httpPort, tcpPort] = process.argv.slice(1);
let pending = 1 + (tcpPort ? 1 : 0);
const ready = () => { if (--pending === 0) process.stdout.write('ready\n'); };
http.createServer((req, res) => {
  const delay = Number(new URL(req.url, 'http://x').searchParams.get('delayMs') || 0);
  setTimeout(() => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ lab: label, ok: true }));
  }, Math.min(delay, 60000));
}).listen(Number(httpPort), '::', ready);
if (tcpPort) net.createServer((s) => { s.on('error', () => {}); s.end('lab-ok ' + label + '\n'); }).listen(Number(tcpPort), '0.0.0.0', ready);
process.on('SIGTERM', () => process.exit(0));
`;
