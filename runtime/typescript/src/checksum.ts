// XXH3-64, the checksum every delta carries of the value it produces (codec/src/delta.cpp
// uses XXH3_64bits). hash-wasm's WebAssembly build computes it in browsers and Node alike;
// it loads asynchronously once, and then hashes synchronously on the update path.
import { createXXHash3, type IHasher } from 'hash-wasm';

export type Checksum = (bytes: Uint8Array) => bigint;

let loading: Promise<Checksum> | undefined;

export function loadChecksum(): Promise<Checksum> {
  loading ??= createXXHash3().then((hasher: IHasher) => (bytes: Uint8Array) => {
    hasher.init();
    hasher.update(bytes);
    // The canonical digest is big-endian.
    const digest = hasher.digest('binary');
    return new DataView(digest.buffer, digest.byteOffset, 8).getBigUint64(0, false);
  });
  return loading;
}
