// The recovery buffer: every session frame this client wrote (publish, subscribe,
// unsubscribe, refresh, handler registrations, requests, responses), numbered from 1 in the
// order written, as the broker counts them, and kept until the broker confirms it has them
// (Received, an answer, Connected.lastReceived on a resumption). After a drop the frames the
// broker lacks are sent again, so that nothing is lost or applied twice.
//
// Bounded: past `limitBytes` the oldest frames already handed to the socket are forgotten; a
// resumption that needs one of them reports the loss instead of hiding it.

export interface LoggedFrame {
  seq: bigint;
  bytes: Uint8Array;
  // The request id of a frame the broker answers (0: none); a new session sends the frames
  // that have one and are `replayable` again (publishes and requests).
  requestId: number;
  replayable: boolean;
}

export class SentLog {
  private entries: LoggedFrame[] = [];
  private head = 0; // index of the first live entry: confirming is O(1) amortised
  private lastSeq = 0n;
  private liveBytes = 0;
  private written = 0n; // frames up to this one went to the socket
  private confirmedSeq = 0n;

  constructor(private readonly limitBytes = 16 << 20) {}

  append(bytes: Uint8Array, requestId = 0, replayable = false): bigint {
    this.lastSeq += 1n;
    this.entries.push({ seq: this.lastSeq, bytes, requestId, replayable });
    this.liveBytes += bytes.length;
    return this.lastSeq;
  }

  get last(): bigint {
    return this.lastSeq;
  }

  // The first frame still held (last + 1 when empty).
  get first(): bigint {
    return this.head < this.entries.length ? this.entries[this.head].seq : this.lastSeq + 1n;
  }

  get size(): number {
    return this.entries.length - this.head;
  }

  // The broker has every frame up to `seq`.
  confirm(seq: bigint): void {
    while (this.head < this.entries.length && this.entries[this.head].seq <= seq) this.dropFront();
    if (seq > this.confirmedSeq) this.confirmedSeq = seq < this.lastSeq ? seq : this.lastSeq;
    this.compact();
  }

  // A named session taken over from an earlier connection counts on from the broker's count
  // of its frames. Only before anything was confirmed.
  rebase(lastReceived: bigint): void {
    for (let i = this.head; i < this.entries.length; ++i) this.entries[i].seq += lastReceived;
    this.lastSeq += lastReceived;
    this.confirmedSeq += lastReceived;
    this.written += lastReceived;
  }

  // The frames up to `seq` went to the socket: those may be forgotten past the limit.
  markWritten(seq: bigint): void {
    if (seq > this.written) this.written = seq;
    while (this.liveBytes > this.limitBytes && this.head < this.entries.length && this.entries[this.head].seq <= this.written)
      this.dropFront();
    this.compact();
  }

  // The frames after `seq`, in order, and how many of those were forgotten (lost).
  framesAfter(seq: bigint): { frames: LoggedFrame[]; missing: bigint } {
    const first = this.first;
    const missing = seq + 1n < first ? first - (seq + 1n) : 0n;
    const frames: LoggedFrame[] = [];
    for (let i = this.head; i < this.entries.length; ++i) if (this.entries[i].seq > seq) frames.push(this.entries[i]);
    return { frames, missing };
  }

  // Every frame still held, in order.
  held(): LoggedFrame[] {
    return this.entries.slice(this.head);
  }

  // Frames forgotten past the limit that the broker never confirmed: perhaps lost.
  get forgottenUnconfirmed(): bigint {
    const forgotten = this.first - 1n;
    return forgotten > this.confirmedSeq ? forgotten - this.confirmedSeq : 0n;
  }

  private dropFront(): void {
    this.liveBytes -= this.entries[this.head].bytes.length;
    this.head += 1;
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }
}
