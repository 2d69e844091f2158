// Unit tests of the wire codec: frame headers, publish and update frames, the stream
// assembler over arbitrary message splits, control frames through FlatBuffers both ways, the
// delta apply and XXH3 checksum against the C++ encoder's vectors (tests/vectors/deltas.json),
// the value cache's refusal of a broken delta, selectors, and the recovery log.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import * as flatbuffers from 'flatbuffers';

import { loadChecksum } from '../src/checksum';
import { applyDelta, DeltaError } from '../src/delta';
import {
  decodePublish,
  decodeUpdate,
  encodePublish,
  encodeUpdate,
  FRAME_FLAG_RESYNC,
  FRAME_FLAG_SEQUENCED,
  FrameAssembler,
  FrameError,
  FrameKind,
  readHeader,
  UpdateEncoding,
  writeHeader,
} from '../src/frames';
import { ControlEncoder, decodeControl, FILE_IDENTIFIER } from '../src/messages';
import { TopicType, WIRE_VERSION } from '../src/protocol';
import { parseSelector, selectorMatches } from '../src/selector';
import { SentLog } from '../src/sent-log';
import { TopicCache } from '../src/values';
import { Body } from '../src/generated/brook/wire/body';
import { Connect } from '../src/generated/brook/wire/connect';
import { Connected } from '../src/generated/brook/wire/connected';
import { Message } from '../src/generated/brook/wire/message';
import { Subscribe } from '../src/generated/brook/wire/subscribe';

interface DeltaVector {
  name: string;
  old: string;
  new: string;
  delta: string;
  checksum: string;
}

// dist/test/codec.test.js -> the repository's tests/vectors.
const vectors: DeltaVector[] = JSON.parse(
  readFileSync(new URL('../../../../tests/vectors/deltas.json', import.meta.url), 'utf8'),
);

function hex(text: string): Uint8Array {
  return Uint8Array.from(Buffer.from(text, 'hex'));
}

const utf8 = new TextEncoder();

// A control frame as the broker builds it: header + Message with the BRK1 identifier.
function brokerFrame(build: (b: flatbuffers.Builder) => [Body, flatbuffers.Offset]): Uint8Array {
  const b = new flatbuffers.Builder(64);
  const [type, body] = build(b);
  b.finish(Message.createMessage(b, type, body), FILE_IDENTIFIER);
  const message = b.asUint8Array();
  const frame = new Uint8Array(8 + message.length);
  writeHeader(frame, frame.length, FrameKind.Control, 0);
  frame.set(message, 8);
  return frame;
}

describe('frames', () => {
  test('header fields are little-endian at their offsets', () => {
    const frame = new Uint8Array(8);
    writeHeader(frame, 0x01020304, FrameKind.Update, 3);
    assert.deepEqual([...frame], [4, 3, 2, 1, 2, 0, 3, 0]);
    assert.deepEqual(readHeader(frame), { size: 0x01020304, kind: FrameKind.Update, flags: 3 });
  });

  test('a publish frame round-trips, with and without a topic type', () => {
    const frame = encodePublish(7, 'Distribution/Football/NFL', utf8.encode('{"a":1}'), TopicType.Json);
    assert.equal(readHeader(frame).size, frame.length);
    assert.equal(readHeader(frame).kind, FrameKind.Publish);
    const p = decodePublish(frame);
    assert.equal(p.requestId, 7);
    assert.equal(p.path, 'Distribution/Football/NFL');
    assert.equal(p.type, TopicType.Json);
    assert.equal(new TextDecoder().decode(p.value), '{"a":1}');
    assert.equal(frame[14], TopicType.Json);
    const untyped = encodePublish(0, 'a', new Uint8Array(0));
    assert.equal(untyped.length, 17);
    assert.equal(untyped[14], 0xff);
    assert.equal(decodePublish(untyped).type, undefined);
  });

  test('an update frame round-trips with 64-bit sequences', () => {
    const body = utf8.encode('value');
    const frame = encodeUpdate({ sessionSeq: 2n ** 40n + 1n, topicSeq: 2n ** 63n + 5n, alias: 9, encoding: UpdateEncoding.Delta, body, flags: FRAME_FLAG_SEQUENCED | FRAME_FLAG_RESYNC });
    const u = decodeUpdate(frame);
    assert.equal(u.sessionSeq, 2n ** 40n + 1n);
    assert.equal(u.topicSeq, 2n ** 63n + 5n);
    assert.equal(u.alias, 9);
    assert.equal(u.encoding, UpdateEncoding.Delta);
    assert.equal(u.flags, FRAME_FLAG_SEQUENCED | FRAME_FLAG_RESYNC);
    assert.deepEqual([...u.body], [...body]);
    assert.throws(() => decodeUpdate(frame.subarray(0, 31)), FrameError);
  });

  test('the assembler finds the same frames however the stream is cut', () => {
    const frames = [
      encodePublish(1, 'a/b', utf8.encode('x')),
      encodeUpdate({ sessionSeq: 1n, topicSeq: 1n, alias: 0, encoding: UpdateEncoding.Full, body: new Uint8Array(300).fill(7) }),
      encodePublish(2, 'c', new Uint8Array(0)),
    ];
    const stream = Uint8Array.from(frames.flatMap((f) => [...f]));
    for (const cut of [1, 3, 8, 9, 50, stream.length]) {
      const got: number[][] = [];
      const assembler = new FrameAssembler();
      for (let at = 0; at < stream.length; at += cut) assembler.push(stream.slice(at, at + cut), (f) => got.push([...f]));
      assert.deepEqual(got, frames.map((f) => [...f]), `pieces of ${cut} bytes`);
      assert.equal(assembler.buffered, 0);
    }
  });

  test('the assembler refuses a header no Brook peer writes', () => {
    const bad = new Uint8Array(8);
    writeHeader(bad, 8, 9 as FrameKind);
    assert.throws(() => new FrameAssembler().push(bad, () => {}), FrameError);
    const tooSmall = new Uint8Array(8);
    writeHeader(tooSmall, 4, FrameKind.Control);
    assert.throws(() => new FrameAssembler().push(tooSmall, () => {}), FrameError);
  });
});

describe('control messages', () => {
  test('Connect carries every field the broker reads', () => {
    const token = Uint8Array.from({ length: 16 }, (_, i) => i);
    const frame = new ControlEncoder().connect({
      clientName: 'brook-ts',
      principal: 'alice',
      credentials: utf8.encode('secret'),
      sessionNumber: 42n,
      token,
      lastReceived: 2n ** 50n,
      reconnectTimeoutMs: 60000,
      resendFrom: 17n,
    });
    assert.equal(readHeader(frame).kind, FrameKind.Control);
    assert.equal(readHeader(frame).size, frame.length);
    const bb = new flatbuffers.ByteBuffer(frame.subarray(8));
    assert.ok(Message.bufferHasIdentifier(bb));
    const m = Message.getRootAsMessage(bb);
    assert.equal(m.bodyType(), Body.Connect);
    const c = m.body(new Connect()) as Connect;
    assert.equal(c.protocolVersion(), WIRE_VERSION);
    assert.equal(c.clientName(), 'brook-ts');
    assert.equal(c.principal(), 'alice');
    assert.equal(new TextDecoder().decode(c.credentialsArray()!), 'secret');
    assert.equal(c.sessionNumber(), 42n);
    assert.deepEqual([...c.tokenArray()!], [...token]);
    assert.equal(c.lastReceived(), 2n ** 50n);
    assert.equal(c.reconnectTimeoutMs(), 60000);
    assert.equal(c.resendFrom(), 17n);
    assert.equal(c.newIfMissing(), false);
  });

  test('a resuming Subscribe lists the positions held', () => {
    const frame = new ControlEncoder().subscribe(5, 'a//', [{ path: 'a/b', epoch: 3n, seq: 99n }]);
    const m = Message.getRootAsMessage(new flatbuffers.ByteBuffer(frame.subarray(8)));
    const s = m.body(new Subscribe()) as Subscribe;
    assert.equal(s.requestId(), 5);
    assert.equal(s.selector(), 'a//');
    assert.equal(s.resume(), true);
    assert.equal(s.positionsLength(), 1);
    assert.equal(s.positions(0)!.path(), 'a/b');
    assert.equal(s.positions(0)!.seq(), 99n);
  });

  test('Connected decodes into a plain object', () => {
    const token = Uint8Array.from({ length: 16 }, (_, i) => 100 + i);
    const frame = brokerFrame((b) => {
      const id = b.createString('alice/3');
      const t = Connected.createTokenVector(b, token);
      return [Body.Connected, Connected.createConnected(b, id, 1 << 20, t, true, false, 12n, 5000, 90000, 34n, false, true)];
    });
    const m = decodeControl(frame);
    assert.equal(m.type, 'connected');
    if (m.type !== 'connected') return;
    assert.equal(m.sessionId, 'alice/3');
    assert.equal(m.maxFrameBytes, 1 << 20);
    assert.deepEqual([...m.token], [...token]);
    assert.equal(m.resumed, true);
    assert.equal(m.lastReceived, 12n);
    assert.equal(m.nextSequence, 34n);
    assert.equal(m.journal, true);
  });

  test('a frame without the BRK1 identifier is refused', () => {
    const frame = new ControlEncoder().ping(1n, 2n);
    frame[8 + 4] = 'X'.charCodeAt(0);
    assert.throws(() => decodeControl(frame), FrameError);
  });

  test('a body only clients send is reported as unexpected', () => {
    const frame = new ControlEncoder().refresh(3);
    assert.deepEqual(decodeControl(frame), { type: 'unexpected', body: 'Refresh' });
  });
});

describe('deltas against the C++ vectors', () => {
  test('the vectors cover empty, equal, small-edit and multi-KiB values', () => {
    assert.ok(vectors.length >= 10);
    assert.ok(vectors.some((v) => v.old === '' || v.new === ''));
    assert.ok(vectors.some((v) => v.old !== '' && v.old === v.new));
    assert.ok(vectors.some((v) => v.new.length / 2 >= 2048));
  });

  test('XXH3-64 gives the C++ checksum of every new value', async () => {
    const checksum = await loadChecksum();
    for (const v of vectors) {
      assert.equal(checksum(hex(v.new)).toString(16).padStart(16, '0'), v.checksum, v.name);
      const carried = new DataView(hex(v.delta).buffer).getBigUint64(0, true);
      assert.equal(carried.toString(16).padStart(16, '0'), v.checksum, `${v.name}: the delta carries it`);
    }
  });

  test('applying each delta to its old value gives the new value', async () => {
    const checksum = await loadChecksum();
    for (const v of vectors) {
      const result = applyDelta(hex(v.old), hex(v.delta), 1 << 20, checksum);
      assert.equal(result.error, undefined, v.name);
      assert.equal(Buffer.from(result.value!).toString('hex'), v.new, v.name);
    }
  });

  test('a damaged delta is refused, never applied', async () => {
    const checksum = await loadChecksum();
    const v = vectors.find((x) => x.name === 'odds one field')!;
    const old = hex(v.old);
    const delta = hex(v.delta);

    const wrongSum = delta.slice();
    wrongSum[0] ^= 1;
    assert.equal(applyDelta(old, wrongSum, 1 << 20, checksum).error, DeltaError.ChecksumMismatch);

    const otherOld = old.slice();
    otherOld[old.length - 1] ^= 1; // the suffix copy brings the damage along
    assert.equal(applyDelta(otherOld, delta, 1 << 20, checksum).error, DeltaError.ChecksumMismatch);

    assert.equal(applyDelta(old, delta.subarray(0, 7), 1 << 20, checksum).error, DeltaError.Malformed);
    assert.notEqual(applyDelta(old, delta.subarray(0, delta.length - 1), 1 << 20, checksum).error, undefined);
    assert.equal(applyDelta(old.subarray(0, 10), delta, 1 << 20, checksum).error, DeltaError.CopyOutOfRange);
    assert.equal(applyDelta(old, delta, 10, checksum).error, DeltaError.TooLarge);

    const zeroLength = Uint8Array.from([...delta.subarray(0, 8), 0x00]);
    assert.equal(applyDelta(old, zeroLength, 1 << 20, checksum).error, DeltaError.Malformed);
    const longVarint = Uint8Array.from([...delta.subarray(0, 8), ...new Array(10).fill(0xff), 0x01]);
    assert.equal(applyDelta(old, longVarint, 1 << 20, checksum).error, DeltaError.Malformed);
  });
});

describe('value cache', () => {
  test('a delta that fails its checksum asks for the whole value, which comes flagged as a gap', async () => {
    const checksum = await loadChecksum();
    const cache = new TopicCache(checksum, 1 << 20);
    const v = vectors.find((x) => x.name === 'odds one field')!;
    const wanted = () => true;
    cache.addAlias(0, 'odds', TopicType.Json, 1n);
    const first = cache.apply({ flags: 1, sessionSeq: 1n, topicSeq: 1n, alias: 0, encoding: UpdateEncoding.Full, body: hex(v.old) }, wanted);
    assert.equal(first.kind, 'deliver');
    assert.equal(first.kind === 'deliver' && first.update.gap, false);

    const good = cache.apply({ flags: 1, sessionSeq: 2n, topicSeq: 2n, alias: 0, encoding: UpdateEncoding.Delta, body: hex(v.delta) }, wanted);
    assert.equal(good.kind, 'deliver');
    if (good.kind === 'deliver') assert.equal(Buffer.from(good.update.value).toString('hex'), v.new);

    const broken = hex(v.delta);
    broken[0] ^= 0xff;
    const refused = cache.apply({ flags: 1, sessionSeq: 3n, topicSeq: 3n, alias: 0, encoding: UpdateEncoding.Delta, body: broken }, wanted);
    assert.deepEqual(refused, { kind: 'refresh', alias: 0, path: 'odds', refused: DeltaError.ChecksumMismatch });
    // Deltas are useless until the whole value arrives.
    const ignored = cache.apply({ flags: 1, sessionSeq: 4n, topicSeq: 4n, alias: 0, encoding: UpdateEncoding.Delta, body: hex(v.delta) }, wanted);
    assert.equal(ignored.kind, 'drop');
    const whole = cache.apply({ flags: 1, sessionSeq: 5n, topicSeq: 4n, alias: 0, encoding: UpdateEncoding.Full, body: hex(v.new) }, wanted);
    assert.equal(whole.kind === 'deliver' && whole.update.gap, true);
  });

  test('a skipped topic sequence is a gap; a delta for a sequence not held asks for the value', async () => {
    const cache = new TopicCache(await loadChecksum(), 1 << 20);
    cache.addAlias(4, 't', TopicType.String, 0n);
    cache.apply({ flags: 1, sessionSeq: 1n, topicSeq: 10n, alias: 4, encoding: UpdateEncoding.Full, body: utf8.encode('a') }, () => true);
    const skipped = cache.apply({ flags: 1, sessionSeq: 2n, topicSeq: 12n, alias: 4, encoding: UpdateEncoding.Full, body: utf8.encode('b') }, () => true);
    assert.equal(skipped.kind === 'deliver' && skipped.update.gap, true);
    const delta = cache.apply({ flags: 1, sessionSeq: 3n, topicSeq: 14n, alias: 4, encoding: UpdateEncoding.Delta, body: new Uint8Array(8) }, () => true);
    assert.deepEqual(delta, { kind: 'refresh', alias: 4, path: 't', refused: undefined });
    assert.equal(cache.apply({ flags: 1, sessionSeq: 4n, topicSeq: 1n, alias: 77, encoding: UpdateEncoding.Full, body: new Uint8Array(0) }, () => true).kind, 'unknownAlias');
  });
});

describe('selectors', () => {
  test('match as the broker matches', () => {
    const cases: [string, string, boolean][] = [
      ['a/b', 'a/b', true],
      ['a/b', 'a/b/c', false],
      ['a/b/*', 'a/b/c', true],
      ['a/b/*', 'a/b', false],
      ['a/b/*', 'a/b/c/d', false],
      ['a/b//', 'a/b', true],
      ['a/b//', 'a/b/c/d', true],
      ['a/b//', 'a/bc', false],
      ['//', 'x/y', true],
      ['*', 'x', true],
      ['*', 'x/y', false],
    ];
    for (const [selector, path, expected] of cases)
      assert.equal(selectorMatches(parseSelector(selector)!, path), expected, `${selector} ~ ${path}`);
  });

  test('refuse what the broker refuses', () => {
    for (const bad of ['', '/a', 'a/', 'a//b//', 'a/*/b', 'a\u0001b', 'a/**']) assert.equal(parseSelector(bad), undefined, JSON.stringify(bad));
  });
});

describe('recovery log', () => {
  test('keeps frames until confirmed, numbered as the broker counts them', () => {
    const log = new SentLog();
    for (let i = 1; i <= 5; ++i) log.append(Uint8Array.of(i), i, i % 2 === 1);
    assert.equal(log.first, 1n);
    assert.equal(log.last, 5n);
    log.confirm(2n);
    assert.equal(log.first, 3n);
    const { frames, missing } = log.framesAfter(3n);
    assert.equal(missing, 0n);
    assert.deepEqual(frames.map((f) => f.bytes[0]), [4, 5]);
    log.rebase(100n);
    assert.equal(log.first, 103n);
    assert.equal(log.last, 105n);
  });

  test('past its limit forgets written frames, and says so when they are needed', () => {
    const log = new SentLog(10);
    for (let i = 0; i < 5; ++i) log.append(new Uint8Array(4));
    log.markWritten(5n);
    assert.ok(log.size < 5);
    assert.ok(log.framesAfter(0n).missing > 0n);
    assert.ok(log.forgottenUnconfirmed > 0n);
  });
});
