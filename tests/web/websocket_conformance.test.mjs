// RFC 6455 as brookd speaks it, from Node's `ws` client (and a raw socket where `ws` would
// refuse to break the protocol): the upgrade with the brook subprotocol, Brook's Connect
// answered inside binary messages however they are fragmented, ping/pong, and each way of
// breaking the protocol closed with its code while a well-behaved client carries on.
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import WebSocket from 'ws';
import { startBroker, waitFor } from './support.mjs';

// Brook's control frames have kind 1 in their 8-byte header (codec/include/brook/codec/frame.hpp):
// what the broker answers garbage with (an Error) is one. Sessions over WebSocket are the
// TypeScript client's tests (runtime/typescript) and the C++ integration tests'.
const CONTROL_KIND = 1;

function open(url, options = {}) {
  const ws = new WebSocket(url, 'brook', options);
  ws.binaryType = 'nodebuffer';
  const closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })));
  const opened = new Promise((resolve, reject) => {
    ws.on('open', resolve);
    ws.on('error', reject);
    ws.on('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
  return { ws, opened, closed };
}

test('RFC 6455 edge cases against brookd', async (t) => {
  const broker = await startBroker('[limits]\nmax_frame_bytes = 1024\n[ws]\nallowed_origins = ["https://odds.example"]\n');
  t.after(() => broker.stop());
  const url = `ws://127.0.0.1:${broker.wsPort}/`;

  await t.test('the upgrade agrees on the brook subprotocol, and a ping is answered', async () => {
    const { ws, opened } = open(url);
    await opened;
    assert.equal(ws.protocol, 'brook');
    const pong = new Promise((resolve) => ws.on('pong', (data) => resolve(String(data))));
    ws.ping('are you there');
    assert.equal(await pong, 'are you there');
    ws.close(1000);
  });

  await t.test('an origin outside ws.allowed_origins is refused with 403', async () => {
    const { opened } = open(url, { origin: 'https://evil.example' });
    await assert.rejects(opened, /HTTP 403/);
    const allowed = open(url, { origin: 'https://odds.example' });
    await allowed.opened;
    allowed.ws.close();
  });

  await t.test('a text message is closed with 1003, invalid UTF-8 text with 1007', async () => {
    const text = open(url);
    await text.opened;
    text.ws.send('hello', { binary: false });
    assert.equal((await text.closed).code, 1003);
    const bad = open(url, { skipUTF8Validation: true });
    await bad.opened;
    bad.ws.send(Buffer.from([0x61, 0xc0, 0xaf]), { binary: false });
    assert.equal((await bad.closed).code, 1007);
  });

  await t.test('a frame over the limit is closed with 1009', async () => {
    const { ws, opened, closed } = open(url);
    await opened;
    ws.send(Buffer.alloc(1024 + 65536 + 1));
    assert.equal((await closed).code, 1009);
  });

  await t.test('garbage in binary messages, fragmented, is Brook protocol error: an error frame, then 1000', async () => {
    const { ws, opened, closed } = open(url);
    await opened;
    const received = [];
    ws.on('message', (data) => received.push(data));
    // A control frame header claiming 16 bytes of garbage, in three fragments.
    const frame = Buffer.alloc(24, 0xee);
    frame.writeUInt32LE(24, 0);
    frame.writeUInt16LE(CONTROL_KIND, 4);
    frame.writeUInt16LE(0, 6);
    ws.send(frame.subarray(0, 5), { fin: false });
    ws.send(frame.subarray(5, 13), { fin: false });
    ws.send(frame.subarray(13), { fin: true });
    const { code } = await closed;
    assert.equal(code, 1000);
    const stream = Buffer.concat(received);
    assert.ok(stream.length >= 8, 'an error frame came before the close');
    assert.equal(stream.readUInt16LE(4), CONTROL_KIND);
  });

  await t.test('an unmasked client frame is closed with 1002', async () => {
    const socket = net.connect(broker.wsPort, '127.0.0.1');
    let received = Buffer.alloc(0);
    socket.on('data', (d) => { received = Buffer.concat([received, d]); });
    const ended = new Promise((resolve) => socket.on('close', resolve));
    socket.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
                 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    await waitFor(() => received.includes('\r\n\r\n'), 5_000, 'the upgrade answer');
    socket.write(Buffer.from([0x82, 0x01, 0x78]));  // binary "x", unmasked
    await ended;
    const head = received.indexOf('\r\n\r\n') + 4;
    assert.equal(received[head], 0x88, 'a close frame');
    assert.equal(received.readUInt16BE(head + 2), 1002);
  });

  await t.test('a plain GET is told to upgrade (426)', async () => {
    const answer = await new Promise((resolve, reject) => {
      const socket = net.connect(broker.wsPort, '127.0.0.1', () => socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
      let text = '';
      socket.on('data', (d) => { text += d; });
      socket.on('close', () => resolve(text));
      socket.on('error', reject);
    });
    assert.match(answer, /^HTTP\/1.1 426 Upgrade Required\r\n/);
  });

  const stderr = await broker.stop();
  assert.match(stderr, /ws_failures=[1-9]/);
});
