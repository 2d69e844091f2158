// The odds feed over WebSocket with deltas, in bytes: a Brook TypeScript client subscribes to
// the demo's NFL odds (`brook demo`: 16 matches of JSON odds, a few fields changing at a time)
// while the feed publishes --count updates at --rate; every WebSocket message the client
// receives is counted with its frame header. Against it, the same updates as plain JSON: the
// whole value each time, with nothing around it. Every value is checked whole and in order
// (the client applies the deltas and checks their checksums).
//
//   node odds_bytes.mjs --url ws://HOST:PORT/ --tcp-url tcp://HOST:PORT [--count 2000]
//        [--rate 200] [--json]
import { spawn } from 'node:child_process';
import WebSocket from 'ws';

const options = { count: 2000, rate: 200, json: false };
for (let i = 2; i < process.argv.length; i++) {
  const key = process.argv[i];
  const value = () => process.argv[++i];
  if (key === '--url') options.url = value();
  else if (key === '--tcp-url') options.tcpUrl = value();
  else if (key === '--count') options.count = Number(value());
  else if (key === '--rate') options.rate = Number(value());
  else if (key === '--json') options.json = true;
  else throw new Error(`odds_bytes: unknown argument ${key}`);
}
if (!options.url || !options.tcpUrl) throw new Error('odds_bytes: --url and --tcp-url are needed');

// Bytes as the wire carries them: each message's payload and its (unmasked, server) header.
let wireBytes = 0;
class CountingWebSocket extends WebSocket {
  constructor(url, protocols, settings) {
    super(url, protocols, settings);
    this.on('message', (data) => {
      const n = data.byteLength ?? data.length;  // an ArrayBuffer (the client's binaryType) or a Buffer
      wireBytes += n + (n < 126 ? 2 : n < 65536 ? 4 : 10);
    });
  }
}
globalThis.WebSocket = CountingWebSocket;
const { connect } = await import('@brook/client');

const client = await connect({ url: options.url, clientName: 'odds-bytes', reconnectTimeout: 0 });
let updates = 0;
let jsonBytes = 0;
let deltas = 0;
let gaps = 0;
let outOfOrder = 0;
const lastSeq = new Map();
let counting = false;
await client.subscribe('Distribution/Football/NFL//', (u) => {
  if (!counting) return;  // the current values, before the feed starts
  const last = lastSeq.get(u.path);
  if (u.gap) gaps += 1;
  else if (last !== undefined && u.topicSeq !== last + 1n) outOfOrder += 1;
  lastSeq.set(u.path, u.topicSeq);
  JSON.parse(u.text());  // whole, valid JSON
  updates += 1;
  jsonBytes += u.value.length;
  if (u.delta) deltas += 1;
});
// A first pass makes the topics (their first values are whole), then the counted one.
const seconds = Math.ceil(options.count / options.rate);
const feed = (duration) => new Promise((resolve, reject) => {
  const child = spawn(process.env.BROOK ?? 'brook', ['demo', '--url', options.tcpUrl, '--rate', String(options.rate),
                                                     '--duration', String(duration)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`brook demo: ${stderr}`))));
});
await feed(1);
await new Promise((resolve) => setTimeout(resolve, 300));
counting = true;
wireBytes = 0;
const started = process.hrtime.bigint();
await feed(seconds);
await new Promise((resolve) => setTimeout(resolve, 500));
const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
await client.close();

const result = {
  system: 'brook', scenario: 'ws-odds', transport: 'ws', rate_target: options.rate,
  sent: updates, received: updates, lost: gaps, out_of_order: outOfOrder, seconds: elapsed,
  updates, deltas, wire_bytes_per_update: updates ? wireBytes / updates : 0,
  json_bytes_per_update: updates ? jsonBytes / updates : 0,
  bytes_ratio: wireBytes ? jsonBytes / wireBytes : 0,
};
if (options.json) console.log(JSON.stringify(result));
else console.log(`odds over WebSocket: ${updates} updates (${deltas} as deltas), ${result.wire_bytes_per_update.toFixed(1)} ` +
                 `wire bytes per update against ${result.json_bytes_per_update.toFixed(1)} of plain JSON ` +
                 `(${(100 * wireBytes / Math.max(1, jsonBytes)).toFixed(0)}%), ${gaps} gaps, ${outOfOrder} out of order`);
process.exit(gaps === 0 && outOfOrder === 0 && updates > 0 ? 0 : 1);
