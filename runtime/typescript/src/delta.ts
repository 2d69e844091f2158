// Applying the broker's binary deltas (format in codec/include/brook/codec/delta.hpp):
//
//   delta := checksum:u64 LE (XXH3-64 of the new value)  op*
//   op    := varint(length << 1 | 0) zigzag_varint(offset - expected)   copy old[offset, +length)
//          | varint(length << 1 | 1) byte[length]                       insert literal bytes
//
// `expected` starts at 0 and becomes offset + length after each copy. Like the C++ apply, it
// refuses without reading or writing out of bounds: a truncated delta, a bad varint or a
// zero length, a copy outside the old value, a result over the size limit, and a result whose
// checksum differs from the one the delta carries.
import type { Checksum } from './checksum';

export const DELTA_CHECKSUM_BYTES = 8;

export enum DeltaError {
  Malformed = 'malformed delta',
  CopyOutOfRange = 'delta copies outside the old value',
  TooLarge = 'delta result too large',
  ChecksumMismatch = 'delta result checksum mismatch',
}

export type DeltaResult = { value: Uint8Array; error?: undefined } | { value?: undefined; error: DeltaError };

// Varints past 2^53 cannot be a length or an offset within any value here; they read as
// `HUGE`, which every range check refuses.
const HUGE = Number.MAX_SAFE_INTEGER;

class OpReader {
  at = DELTA_CHECKSUM_BYTES;

  constructor(private readonly delta: Uint8Array) {}

  get done(): boolean {
    return this.at === this.delta.length;
  }

  get left(): number {
    return this.delta.length - this.at;
  }

  // Unsigned LEB128 of at most 10 bytes (64 bits); undefined when malformed.
  varint(): number | undefined {
    let value = 0;
    let scale = 1;
    for (let shift = 0; shift <= 63; shift += 7) {
      if (this.at === this.delta.length) return undefined;
      const byte = this.delta[this.at++];
      if (shift === 63 && byte > 1) return undefined; // an 11th byte, or bits beyond 64
      value += (byte & 0x7f) * scale;
      scale *= 128;
      if (byte < 0x80) return value > HUGE ? HUGE : value;
    }
    return undefined;
  }

  take(n: number): Uint8Array {
    const bytes = this.delta.subarray(this.at, this.at + n);
    this.at += n;
    return bytes;
  }
}

// Decodes a zigzag varint that is within the safe range: (z >> 1) ^ -(z & 1).
function unzigzag(z: number): number {
  return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
}

export function applyDelta(old: Uint8Array, delta: Uint8Array, maxBytes: number, checksum: Checksum): DeltaResult {
  if (delta.length < DELTA_CHECKSUM_BYTES) return { error: DeltaError.Malformed };
  const expectedSum = new DataView(delta.buffer, delta.byteOffset, 8).getBigUint64(0, true);

  // Two passes: the first checks every op and sizes the result, the second copies.
  const ops: number[] = []; // triples: kind (0 copy, 1 insert), source offset, length
  const reader = new OpReader(delta);
  let expected = 0;
  let size = 0;
  while (!reader.done) {
    const head = reader.varint();
    if (head === undefined) return { error: DeltaError.Malformed };
    const length = Math.floor(head / 2);
    if (length === 0) return { error: DeltaError.Malformed };
    if (head % 2 === 1) {
      if (length > reader.left) return { error: DeltaError.Malformed };
      if (length > maxBytes - size) return { error: DeltaError.TooLarge };
      ops.push(1, reader.at, length);
      reader.take(length);
      size += length;
      continue;
    }
    const relative = reader.varint();
    if (relative === undefined) return { error: DeltaError.Malformed };
    const offset = expected + unzigzag(relative);
    if (offset < 0 || offset > old.length || length > old.length - offset) return { error: DeltaError.CopyOutOfRange };
    if (length > maxBytes - size) return { error: DeltaError.TooLarge };
    ops.push(0, offset, length);
    expected = offset + length;
    size += length;
  }

  const out = new Uint8Array(size);
  let at = 0;
  for (let i = 0; i < ops.length; i += 3) {
    const source = ops[i] === 1 ? delta : old;
    out.set(source.subarray(ops[i + 1], ops[i + 1] + ops[i + 2]), at);
    at += ops[i + 2];
  }
  if (checksum(out) !== expectedSum) return { error: DeltaError.ChecksumMismatch };
  return { value: out };
}
