// A stand-in for brookd's HTTP side (issue 24's contract) for working on the web console
// without a broker, and for the console test's cases a real broker does not produce on cue
// (held-back sessions, closed sessions with reasons, cut values). It serves the built console
// under `prefix` and answers api/broker, api/topics, api/sessions and api/history with
// fixture data that moves every second. down() makes it drop every request (brookd gone).
//   node tests/web/console_mock.mjs [PORT]     serves tools/console/dist at http://127.0.0.1:PORT/
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.map': 'application/json' };
const SHARDS = 2;

// Fixture topics: an odds match tree, a string, an int64, a cut value and a binary one.
function topics(tick) {
  const odds = (match, market) => ({
    path: `odds/match/${match}/${market}`, shard: match % SHARDS, type: 'json', sequence: 40 + tick * match,
    rate_per_s: match, subscribers: 2, retained: true, conflate: false, history: 0,
    value: JSON.stringify({ home: (1.5 + ((tick * match) % 10) / 20).toFixed(2), away: '2.10' }),
  });
  const list = [odds(1, 'win'), odds(1, 'total'), odds(2, 'win'), odds(3, 'win'),
    { path: 'status/feed', shard: 0, type: 'string', sequence: 1, rate_per_s: 0, subscribers: 0, retained: true,
      conflate: false, history: 0, value: 'running' },
    { path: 'counters/ticks', shard: 1, type: 'int64', sequence: tick + 1, rate_per_s: 1, subscribers: 1,
      retained: true, conflate: true, history: 0, value: String(tick) },
    { path: 'blobs/big', shard: 1, type: 'json', sequence: 3, rate_per_s: 0, subscribers: 0, retained: true,
      conflate: false, history: 0, value: `[${'1,'.repeat(2047)}`, value_truncated: true },
    { path: 'blobs/raw', shard: 0, type: 'binary', sequence: 1, rate_per_s: 0, subscribers: 0, retained: true,
      conflate: false, history: 0, value: '00ff10ab' }];
  return list.map((t) => ({ ...t, value_bytes: t.value_truncated ? 8192 : t.value.length }))
             .sort((a, b) => (a.path < b.path ? -1 : 1));
}

function sessions(tick) {
  const session = (id, extra) => ({ id, principal: id.split('/')[0], shard: 0, address: '127.0.0.1:51234', transport: 'tcp',
    state: 'attached', subscriptions: 1, pending_frames: 0, pending_bytes: 0, recovery_frames: 0, recovery_bytes: 0,
    age_s: 10 + tick, idle_s: 0.2, holding_publishers: false, held_back: false, ...extra });
  return {
    total: 3, offset: 0, limit: 50, sort: 'queue',
    sessions: [
      session('slow/7', { transport: 'ws', pending_frames: 900, pending_bytes: 1_200_000, recovery_bytes: 64_000, held_back: true, holding_publishers: true }),
      session('alice/3', { pending_frames: 10, pending_bytes: 640, recovery_bytes: 6400 }),
      session('feed/1', { shard: 1, state: 'detached', idle_s: 4.5 }),
    ],
    closed: [{ id: 'bob/1', principal: 'bob', shard: 1, address: '127.0.0.1:5000', transport: 'tcp',
               closed_at: '2026-12-05T16:30:00.123Z', age_s: 30.1, reason: 'queue limit: outbound queue full (1048576 bytes)' }],
  };
}

function broker(tick) {
  return {
    version: '0.mock', uptime_s: 100 + tick, shard_count: SHARDS, ready: true,
    listeners: { tcp: '127.0.0.1:7400', tls: '', ws: '127.0.0.1:7401', wss: '', shm: '', http: 'mock' },
    totals: { connections: 3, sessions: 3, topics: 8, subscriptions: 4, publishes: 1000 + tick * 10, deliveries: 2000 + tick * 20,
              bytes_in: 50_000, bytes_out: 100_000, conflated: 0, resyncs: 0, slow_consumer_closes: 1, flow_stalls: 0,
              refusals: 0, auth_failures: 0 },
    rates: { publishes_per_s: 10, deliveries_per_s: 20, bytes_in_per_s: 500, bytes_out_per_s: 1000 },
    shards: [...Array(SHARDS).keys()].map((shard) => ({ shard, busy_ratio: 0.1, turns: 1000, connections: 1, sessions: 1,
      topics: 4, mailbox_depth: 0, memory_bytes: 1 << 20, publishes: 500, deliveries: 1000 })),
  };
}

// Two minutes of samples per shard, a second apart, with a 5 s hole in shard 1.
function history(now) {
  const samples = (shard) => [...Array(120).keys()].map((i) => {
    const t = now - (119 - i) * 1000;
    return { t, busy_ratio: 0.2 + 0.15 * Math.sin(i / 10 + shard), publishes_per_s: 50 + 40 * Math.sin(i / 15 + shard * 2),
             deliveries_per_s: 100 + 80 * Math.cos(i / 12 + shard), connections: 2, mailbox_depth: 0, memory_bytes: 123 };
  }).filter((s, i) => !(shard === 1 && i > 60 && i < 66));
  return { interval_s: 1, shards: [...Array(SHARDS).keys()].map((shard) => ({ shard, samples: samples(shard) })) };
}

export async function startConsoleMock({ dir, prefix = '/', port = 0 }) {
  const started = Date.now();
  let down = false;
  const requests = [];
  const server = http.createServer(async (req, res) => {
    if (down) {
      req.socket.destroy();
      return;
    }
    const url = new URL(req.url, 'http://mock');
    requests.push(url.pathname + url.search);
    if (!url.pathname.startsWith(prefix)) return send(res, 404, { error: `not under ${prefix}` });
    const rest = url.pathname.slice(prefix.length);
    const tick = Math.floor((Date.now() - started) / 1000);
    const api = { 'api/broker': () => broker(tick), 'api/sessions': () => sessions(tick), 'api/history': () => history(Date.now()),
                  'api/topics': () => { const list = topics(tick); return { total: list.length, offset: 0, limit: 1000, sort: 'path', topics: list }; } };
    if (api[rest]) return send(res, 200, api[rest]());
    if (rest.startsWith('api/')) return send(res, 404, { error: `no such endpoint: ${rest}` });
    const file = path.join(dir, rest === '' ? 'index.html' : path.normalize(rest).replace(/^(\.\.[/\\])+/, ''));
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      send(res, 404, { error: 'not found' });
    }
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}${prefix}`,
    requests,
    setDown(value) { down = value; },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

function send(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = new URL('../../tools/console/dist', import.meta.url).pathname;
  const mock = await startConsoleMock({ dir, port: Number(process.argv[2] ?? 0) });
  console.log(`console mock on ${mock.url}`);
}
