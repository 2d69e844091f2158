// Brook's frames at the byte level (codec/include/brook/codec/frame.hpp): the 8-byte header
// (size u32, kind u16, flags u16, little-endian), the update and publish data frames, and
// FrameAssembler, which cuts the broker's byte stream into whole frames however the
// WebSocket messages happened to split it.
import { TopicType } from './protocol';

export const FRAME_HEADER_BYTES = 8;
export const UPDATE_HEAD_BYTES = 32;
export const PUBLISH_HEAD_BYTES = 16;
export const MAX_PATH_BYTES = 1024;
export const DEFAULT_MAX_FRAME_BYTES = 8 << 20;

export enum FrameKind {
  Control = 1,
  Update = 2,
  Publish = 3,
  SharedUpdate = 4, // shared memory only: never over a WebSocket
}
const MAX_FRAME_KIND = 4;

// A broker frame with `sequenced` takes the next number of the session's outbound stream;
// `resync` on an update: the current value sent after a gap the broker could not fill.
export const FRAME_FLAG_SEQUENCED = 1;
export const FRAME_FLAG_RESYNC = 2;

// In a publish frame: "whatever type the topic has" (string when the publish creates it).
export const TOPIC_TYPE_UNSPECIFIED = 0xff;

export enum UpdateEncoding {
  Full = 0,
  Delta = 1,
}

export interface FrameHeader {
  size: number;
  kind: FrameKind;
  flags: number;
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function readHeader(frame: Uint8Array): FrameHeader {
  const v = view(frame);
  return { size: v.getUint32(0, true), kind: v.getUint16(4, true), flags: v.getUint16(6, true) };
}

export function writeHeader(out: Uint8Array, size: number, kind: FrameKind, flags = 0): void {
  const v = view(out);
  v.setUint32(0, size, true);
  v.setUint16(4, kind, true);
  v.setUint16(6, flags, true);
}

export interface UpdateFrame {
  flags: number;
  sessionSeq: bigint;
  topicSeq: bigint;
  alias: number;
  encoding: UpdateEncoding;
  body: Uint8Array; // the whole value, or a delta against the value at topicSeq - 1
}

export class FrameError extends Error {}

export function decodeUpdate(frame: Uint8Array): UpdateFrame {
  if (frame.length < UPDATE_HEAD_BYTES) throw new FrameError('update frame shorter than its head');
  const v = view(frame);
  const encoding = frame[28];
  if (encoding > UpdateEncoding.Delta) throw new FrameError(`update with unknown encoding ${encoding}`);
  return {
    flags: v.getUint16(6, true),
    sessionSeq: v.getBigUint64(8, true),
    topicSeq: v.getBigUint64(16, true),
    alias: v.getUint32(24, true),
    encoding,
    body: frame.subarray(UPDATE_HEAD_BYTES),
  };
}

// Tests only (the broker writes updates): the frame decodeUpdate reads.
export function encodeUpdate(u: Omit<UpdateFrame, 'flags'> & { flags?: number }): Uint8Array {
  const out = new Uint8Array(UPDATE_HEAD_BYTES + u.body.length);
  writeHeader(out, out.length, FrameKind.Update, u.flags ?? FRAME_FLAG_SEQUENCED);
  const v = view(out);
  v.setBigUint64(8, u.sessionSeq, true);
  v.setBigUint64(16, u.topicSeq, true);
  v.setUint32(24, u.alias, true);
  out[28] = u.encoding;
  out.set(u.body, UPDATE_HEAD_BYTES);
  return out;
}

const utf8 = new TextEncoder();

// A publish frame; request id 0 asks for no answer, any other for an Ack (or an Error).
export function encodePublish(requestId: number, path: string, value: Uint8Array, type?: TopicType): Uint8Array {
  const pathBytes = utf8.encode(path);
  if (pathBytes.length > MAX_PATH_BYTES) throw new FrameError(`topic path longer than ${MAX_PATH_BYTES} bytes`);
  const out = new Uint8Array(PUBLISH_HEAD_BYTES + pathBytes.length + value.length);
  writeHeader(out, out.length, FrameKind.Publish);
  const v = view(out);
  v.setUint32(8, requestId, true);
  v.setUint16(12, pathBytes.length, true);
  out[14] = type ?? TOPIC_TYPE_UNSPECIFIED;
  out[15] = 0;
  out.set(pathBytes, PUBLISH_HEAD_BYTES);
  out.set(value, PUBLISH_HEAD_BYTES + pathBytes.length);
  return out;
}

export interface PublishFrame {
  requestId: number;
  path: string;
  type: TopicType | undefined;
  value: Uint8Array;
}

export function decodePublish(frame: Uint8Array): PublishFrame {
  if (frame.length < PUBLISH_HEAD_BYTES) throw new FrameError('publish frame shorter than its head');
  const v = view(frame);
  const pathBytes = v.getUint16(12, true);
  if (PUBLISH_HEAD_BYTES + pathBytes > frame.length) throw new FrameError('publish path beyond the frame');
  const type = frame[14];
  return {
    requestId: v.getUint32(8, true),
    path: new TextDecoder().decode(frame.subarray(PUBLISH_HEAD_BYTES, PUBLISH_HEAD_BYTES + pathBytes)),
    type: type === TOPIC_TYPE_UNSPECIFIED ? undefined : type,
    value: frame.subarray(PUBLISH_HEAD_BYTES + pathBytes),
  };
}

// Cuts a byte stream into frames. WebSocket message boundaries mean nothing: a message may
// hold several frames or a piece of one. Frames wholly inside a chunk are handed out as views
// of it; only a frame cut between chunks is copied together.
export class FrameAssembler {
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxFrameBytes = 0xffffffff) {}

  // Throws FrameError on a header no Brook peer writes; the stream cannot be followed then.
  push(chunk: Uint8Array, onFrame: (frame: Uint8Array) => void): void {
    let data = chunk;
    if (this.pendingBytes > 0) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      const need = this.neededBytes();
      if (need === 0 || this.pendingBytes < need) return;
      data = concat(this.pending, this.pendingBytes);
      this.pending = [];
      this.pendingBytes = 0;
    }
    let at = 0;
    while (data.length - at >= FRAME_HEADER_BYTES) {
      const size = this.frameSize(data.subarray(at, at + FRAME_HEADER_BYTES));
      if (data.length - at < size) break;
      onFrame(data.subarray(at, at + size));
      at += size;
    }
    if (at < data.length) {
      // Copied: the rest of a chunk is kept, not the whole chunk it lies in.
      this.pending = [data.slice(at)];
      this.pendingBytes = data.length - at;
    }
  }

  reset(): void {
    this.pending = [];
    this.pendingBytes = 0;
  }

  get buffered(): number {
    return this.pendingBytes;
  }

  // Bytes needed before the pending frame is whole; 0 while even its header is incomplete.
  // Reads the header out of the pieces without joining them: a large frame arriving in many
  // small messages is copied once, when whole.
  private neededBytes(): number {
    if (this.pendingBytes < FRAME_HEADER_BYTES) return 0;
    const head = new Uint8Array(FRAME_HEADER_BYTES);
    let filled = 0;
    for (const piece of this.pending) {
      const take = Math.min(piece.length, FRAME_HEADER_BYTES - filled);
      head.set(piece.subarray(0, take), filled);
      filled += take;
      if (filled === FRAME_HEADER_BYTES) break;
    }
    return this.frameSize(head);
  }

  private frameSize(head: Uint8Array): number {
    const h = readHeader(head);
    if (h.size < FRAME_HEADER_BYTES || h.kind < 1 || h.kind > MAX_FRAME_KIND)
      throw new FrameError(`malformed frame header (size ${h.size}, kind ${h.kind})`);
    if (h.size > this.maxFrameBytes) throw new FrameError(`frame of ${h.size} bytes is over the limit`);
    return h.size;
  }
}

export function concat(parts: readonly Uint8Array[], total?: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(total ?? parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
