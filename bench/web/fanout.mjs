// WebSocket fan-out, the same load generator for every system: one publisher (a worker
// thread of its own, paced at --rate with each message's intended send time in it) and
// --subscribers WebSocket subscribers in this process, all on one topic. Brook through its
// TypeScript client (@brook/client), nats-server through its text protocol over `ws`,
// mosquitto through mqtt.js (QoS 0). Latency is one-way, from the intended send time to the
// subscriber's callback (CLOCK_MONOTONIC, shared by the threads), so a stall is charged to
// every message it delays; every subscriber checks that it got each message once and in order.
//
//   node fanout.mjs --system brook|nats|mqtt --url ws://HOST:PORT/ [--tcp-url tcp://...]
//        [--subscribers 1000] [--rate 100] [--count 500] [--payload 64] [--server-pid PID]
//        [--max-seconds 20] [--json]
// --tcp-url (Brook): where `brook pub` creates the topic first (binary, no deltas), as the TCP
// drivers do. --server-pid: the server's resident memory is read before the subscribers
// connect and after, for its memory per connection. Prints one JSON line with --json, in
// bench/compare's format (scenario "fanout", transport "ws").
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import mqtt from 'mqtt';
import WebSocket from 'ws';

const now = () => process.hrtime.bigint();

// --- the three systems: subscribe(url, topic, onPayload) and publisher(url, topic) --------

// nats-server's client protocol over WebSocket: text control lines, binary payloads, and the
// server's WebSocket messages may cut a line or a payload anywhere.
function natsConnection(url, onMsg) {
  const ws = new WebSocket(url);
  let pending = Buffer.alloc(0);
  let pongs = [];
  ws.on('message', (data) => {
    pending = pending.length ? Buffer.concat([pending, data]) : data;
    for (;;) {
      const eol = pending.indexOf('\r\n');
      if (eol < 0) return;
      const line = pending.toString('latin1', 0, eol);
      if (line.startsWith('MSG ')) {
        const size = Number(line.slice(line.lastIndexOf(' ') + 1));
        if (pending.length < eol + 2 + size + 2) return;
        onMsg(pending.subarray(eol + 2, eol + 2 + size));
        pending = pending.subarray(eol + 2 + size + 2);
        continue;
      }
      if (line === 'PING') ws.send('PONG\r\n');
      else if (line === 'PONG') pongs.shift()?.();
      pending = pending.subarray(eol + 2);
    }
  });
  const opened = new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); });
  return {
    async ready(lines) {
      await opened;
      ws.send('CONNECT {"verbose":false,"pedantic":false,"protocol":1,"no_responders":false}\r\n' + lines + 'PING\r\n');
      await new Promise((resolve) => pongs.push(resolve));
    },
    send: (data) => ws.send(data),
    close: () => ws.close(),
  };
}

const systems = {
  brook: {
    topic: (id) => `Bench/wsfanout/${id}`,
    async prepare(options, topic) {
      // The topic made up front as the TCP drivers make theirs: binary, whole values.
      execFileSync(process.env.BROOK ?? 'brook', ['pub', '--url', options.tcpUrl, '--type', 'binary', '--no-deltas', topic,
                                                  Buffer.alloc(options.payload).toString('base64')]);
    },
    async subscribe(url, topic, onPayload) {
      const { connect } = await import('@brook/client');
      const client = await connect({ url, clientName: 'ws-fanout', reconnectTimeout: 0 });
      let first = true;
      await client.subscribe(topic, (u) => {
        if (first) { first = false; return; }  // the current value, before the run
        onPayload(u.value);
      });
      return { close: () => client.close() };
    },
    async publisher(url, topic) {
      const { connect } = await import('@brook/client');
      const client = await connect({ url, clientName: 'ws-fanout-publisher', reconnectTimeout: 0 });
      return {
        send: (payload) => { client.publish(topic, payload).catch(() => {}); },
        close: () => client.close(),
      };
    },
  },
  nats: {
    topic: (id) => `bench.wsfanout.${id}`,
    async prepare() {},
    async subscribe(url, topic, onPayload) {
      const c = natsConnection(url, onPayload);
      await c.ready(`SUB ${topic} 1\r\n`);
      return c;
    },
    async publisher(url, topic) {
      const c = natsConnection(url, () => {});
      await c.ready('');
      return {
        send: (payload) => c.send(Buffer.concat([Buffer.from(`PUB ${topic} ${payload.length}\r\n`), payload,
                                                 Buffer.from('\r\n')])),
        close: () => c.close(),
      };
    },
  },
  mqtt: {
    topic: (id) => `bench/wsfanout/${id}`,
    async prepare() {},
    async subscribe(url, topic, onPayload) {
      const client = await mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0, clean: true });
      client.on('message', (_topic, payload) => onPayload(payload));
      await client.subscribeAsync(topic, { qos: 0 });
      return { close: () => client.end(true) };
    },
    async publisher(url, topic) {
      const client = await mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0, clean: true });
      return { send: (payload) => client.publish(topic, payload, { qos: 0 }), close: () => client.end() };
    },
  },
};

// --- the publisher: a thread of its own, so that its pacing never waits for the subscribers ---

if (!isMainThread) {
  const { system, url, topic, rate, count, payload, maxSeconds } = workerData;
  const publisher = await systems[system].publisher(url, topic);
  parentPort.postMessage({ ready: true });
  await new Promise((resolve) => parentPort.once('message', resolve));
  const start = now();
  const interval = BigInt(Math.round(1e9 / rate));
  const deadline = start + BigInt(maxSeconds) * 1_000_000_000n;
  let sent = 0;
  while (sent < count && now() < deadline) {
    const intended = start + BigInt(sent) * interval;
    const wait = Number(intended - now()) / 1e6;
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait - 0.5));
    while (now() < intended) { /* the last half millisecond: spin */ }
    const message = Buffer.alloc(payload, 0x2a);
    message.writeBigUInt64LE(BigInt(sent + 1), 0);
    message.writeBigUInt64LE(intended, 8);
    publisher.send(message);
    sent += 1;
  }
  await new Promise((resolve) => setTimeout(resolve, 200));
  parentPort.postMessage({ sent });
  await publisher.close();
  process.exit(0);
}

// --- the subscribers, and the report ---------------------------------------------------------

function parseArgs(argv) {
  const o = { subscribers: 1000, rate: 100, count: 500, payload: 64, maxSeconds: 20, json: false };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i];
    const value = () => argv[++i];
    switch (key) {
      case '--system': o.system = value(); break;
      case '--url': o.url = value(); break;
      case '--tcp-url': o.tcpUrl = value(); break;
      case '--subscribers': o.subscribers = Number(value()); break;
      case '--rate': o.rate = Number(value()); break;
      case '--count': o.count = Number(value()); break;
      case '--payload': o.payload = Math.max(16, Number(value())); break;
      case '--server-pid': o.serverPid = Number(value()); break;
      case '--max-seconds': o.maxSeconds = Number(value()); break;
      case '--json': o.json = true; break;
      default: throw new Error(`fanout: unknown argument ${key}`);
    }
  }
  if (!systems[o.system] || !o.url) throw new Error('fanout: --system brook|nats|mqtt and --url are needed');
  return o;
}

function rssKib(pid) {
  if (!pid) return 0;
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
  return line ? Number(line.split(/\s+/)[1]) : 0;
}

const options = parseArgs(process.argv.slice(2));
const system = systems[options.system];
const topic = system.topic(`${process.pid}-${Date.now()}`);
await system.prepare(options, topic);

const expectedPerSubscriber = options.count;
const latencies = new Float64Array(options.subscribers * expectedPerSubscriber);
let received = 0;
let outOfOrder = 0;
let lastDelivery = now();
const rssBefore = rssKib(options.serverPid);
const subscribers = [];
// Connected in batches: a thousand handshakes at once would measure the server's accept queue.
for (let i = 0; i < options.subscribers; i += 50) {
  const batch = [];
  for (let k = i; k < Math.min(options.subscribers, i + 50); k++) {
    let expected = 1n;
    batch.push(system.subscribe(options.url, topic, (payload) => {
      const at = now();
      const bytes = Buffer.from(payload.buffer, payload.byteOffset, payload.length);
      const seq = bytes.readBigUInt64LE(0);
      const intended = bytes.readBigUInt64LE(8);
      if (seq !== expected) outOfOrder += 1;
      expected = seq + 1n;
      if (received < latencies.length) latencies[received] = Number(at - intended) / 1000;
      received += 1;
      lastDelivery = at;
    }));
  }
  subscribers.push(...(await Promise.all(batch)));
}
await new Promise((resolve) => setTimeout(resolve, 500));
const rssAfter = rssKib(options.serverPid);

const worker = new Worker(new URL(import.meta.url), {
  workerData: { system: options.system, url: options.url, topic, rate: options.rate, count: options.count,
                payload: options.payload, maxSeconds: options.maxSeconds },
});
await new Promise((resolve) => worker.once('message', resolve));
const started = now();
worker.postMessage('go');
const { sent } = await new Promise((resolve) => worker.on('message', (m) => { if ('sent' in m) resolve(m); }));
// Drain: until every delivery came, or nothing came for 3 s.
const expected = sent * options.subscribers;
while (received < expected && Number(now() - lastDelivery) / 1e9 < 3) await new Promise((r) => setTimeout(r, 20));
const seconds = Number(lastDelivery - started) / 1e9;
await Promise.all(subscribers.map((s) => s.close()));

const measured = latencies.subarray(0, Math.min(received, latencies.length)).sort();
const at = (p) => (measured.length ? measured[Math.min(measured.length - 1, Math.floor((p / 100) * measured.length))] : 0);
const percentiles = [0, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100];
const result = {
  system: options.system, scenario: 'fanout', transport: 'ws', payload_bytes: options.payload,
  sent: expected, received, lost: Math.max(0, expected - received), out_of_order: outOfOrder,
  delivered_fraction: expected ? received / expected : 0, seconds, msgs_per_sec: seconds > 0 ? received / seconds : 0,
  rate_target: options.rate, subscribers: options.subscribers,
  p50_us: at(50), p99_us: at(99), p999_us: at(99.9), max_us: at(100), min_us: at(0),
  server_kib_per_connection: options.serverPid ? Math.max(0, rssAfter - rssBefore) / options.subscribers : 0,
  curve: percentiles.map((p) => [p, at(p)]),
};
if (options.json) console.log(JSON.stringify(result));
else console.log(`${options.system} ws fanout: ${options.subscribers} subscribers at ${options.rate}/s: ` +
                 `${received}/${expected} delivered, p50 ${at(50).toFixed(0)} us, p99 ${at(99).toFixed(0)} us, ` +
                 `max ${at(100).toFixed(0)} us, ${result.server_kib_per_connection.toFixed(2)} KiB per connection`);
process.exit(received === expected && outOfOrder === 0 ? 0 : 1);
