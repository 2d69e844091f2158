// The session across connections: the Connect/Connected handshake, numbering the frames both
// ways, keep-alive pings, and what happens when the connection drops: reconnect within the
// reconnect timeout and resume the session by its token (the broker resends what this client
// did not receive, this client resends what the broker did not take), or, when the broker no
// longer has the session, open a new one and have the client layer register its
// subscriptions and handlers again. Knows nothing of topics or requests: those frames go to
// the SessionOwner (client.ts).
import { concat, decodeUpdate, FRAME_FLAG_SEQUENCED, FrameAssembler, FrameError, FrameKind, readHeader, DEFAULT_MAX_FRAME_BYTES, type UpdateFrame } from './frames';
import { ControlEncoder, decodeControl, SESSION_TOKEN_BYTES, type BrokerMessage, type TopicPosition } from './messages';
import { BrookError, ErrorCode } from './protocol';
import { deferred, sleep, type Deferred } from './deferred';
import { SentLog } from './sent-log';
import { openTransport, type Transport } from './transport';

export type ClientState = 'connecting' | 'connected' | 'reconnecting' | 'closed';

export interface SessionOptions {
  url: string;
  principal: string;
  credentials: Uint8Array;
  sessionNumber: bigint; // 0: the broker numbers the session; > 0 names it
  clientName: string;
  reconnectTimeoutMs: number; // 0: a dropped connection ends the session
  connectTimeoutMs: number;
  pingIntervalMs?: number; // undefined: the broker's (Connected.ping_interval_ms)
  recoveryBytes: number;
}

// A frame to send in a new session, and the request id its answer will carry.
export interface Registration {
  bytes: Uint8Array;
  requestId: number;
}

// What the session needs from the layer above it.
export interface SessionOwner {
  onUpdate(update: UpdateFrame): void;
  onMessage(message: BrokerMessage): void; // answers, TopicAdd, HandleRequest, FlowControl...
  onStateChange(state: ClientState, detail: string): void;
  onProblem(error: BrookError): void; // nothing a call waits for, but never to be silent
  // The broker numbers topics afresh (Resync, Connected.resync, a new session).
  onAliasesReset(): void;
  // A new session replaces the lost one: the frames that subscribe again (each subscription
  // resuming after the values held) and register the request handlers again.
  subscriptionRegistrations(): Registration[];
  handlerRegistrations(): Registration[];
  // Where the client is in each topic it holds (a session restored from the broker's journal).
  heldPositions(): TopicPosition[];
  // The calls sent again in the new session (publishes, requests) keep waiting for their
  // answer; the answers to the others were lost with the old session.
  onNewSession(resentRequestIds: ReadonlySet<number>, reason: string): void;
  onClosed(error: BrookError): void;
}

const MIN_PING_INTERVAL_MS = 1000;
const DEFAULT_PING_INTERVAL_MS = 30_000;
const FIRST_RETRY_DELAY_MS = 100;
const MAX_RETRY_DELAY_MS = 2000;
const CLOSE_LINGER_MS = 2000;

function now(): number {
  return Date.now();
}

// The broker's own refusals that a new attempt would meet again.
function isRefusal(e: unknown): e is BrookError {
  return e instanceof BrookError && e.code !== ErrorCode.SessionNotFound && e.code !== ErrorCode.NotConnected;
}

export class Session {
  state: ClientState = 'connecting';
  sessionId = '';
  maxFrameBytes = DEFAULT_MAX_FRAME_BYTES;

  private readonly encoder = new ControlEncoder();
  private readonly assembler = new FrameAssembler();
  private sentLog: SentLog;
  private transport: Transport | undefined;
  private generation = 0; // which connection the transport callbacks are for
  private outbox: Uint8Array[] = [];
  private flushScheduled = false;
  private receivedSeq = 0n; // the last sequenced frame received from the broker
  private token: Uint8Array = new Uint8Array(0);
  private sessionNumber: bigint;
  private hasSession = false;
  private freshSession = false; // the broker lost ours: the next Connect opens a new one
  private freshSessionReason = '';
  private journal = false; // only Received confirms our frames then
  private readonly answerSeq = new Map<number, bigint>(); // request id -> its frame's number
  private handshake: Deferred<void> | undefined;
  private closing = false;
  private closeWaiter: Deferred<void> | undefined; // resolved when the socket ends after our Close
  private retryWait: { wake(): void } | undefined;
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private pingIntervalMs = DEFAULT_PING_INTERVAL_MS;
  private lastHeard = 0;
  private pingSentAt = 0;

  constructor(
    private readonly options: SessionOptions,
    private readonly owner: SessionOwner,
  ) {
    this.sessionNumber = options.sessionNumber;
    this.sentLog = new SentLog(options.recoveryBytes);
  }

  // The first connection: resolves once the broker has opened the session.
  async open(): Promise<void> {
    this.setState('connecting', `connecting to ${this.options.url}`);
    try {
      await this.attempt(false);
    } catch (e) {
      const error = e instanceof BrookError ? e : new BrookError(ErrorCode.NotConnected, (e as Error).message);
      this.end(error);
      throw error;
    }
  }

  // A session frame: numbered, kept until the broker confirms it, sent now or on reconnection.
  // `replayable`: sent again in a new session if the old one is lost (publishes, requests).
  sendSession(bytes: Uint8Array, requestId = 0, replayable = false): void {
    if (this.state === 'closed') throw new BrookError(ErrorCode.NotConnected, 'the session is closed');
    const seq = this.sentLog.append(bytes, requestId, replayable);
    if (requestId !== 0) this.answerSeq.set(requestId, seq);
    if (this.state === 'connected') this.enqueue(bytes);
  }

  // A frame of this connection only (ping, pong, close): dropped when there is none.
  private sendConnection(bytes: Uint8Array): void {
    if (this.state === 'connected') this.enqueue(bytes);
  }

  // A call's answer came: with no journal, it says the broker took every frame up to the
  // one answered (with a journal only Received vouches for them).
  private answered(requestId: number): void {
    const seq = this.answerSeq.get(requestId);
    if (seq === undefined) return;
    this.answerSeq.delete(requestId);
    if (!this.journal && seq <= this.sentLog.last) this.sentLog.confirm(seq);
  }

  // Forgets a call that will not be answered any more (it timed out here).
  forgetAnswer(requestId: number): void {
    this.answerSeq.delete(requestId);
  }

  // Sends Close and waits briefly for the broker to end the connection (it answers with
  // Received first, confirming what we sent); while reconnecting, ends at once. Calls the
  // broker never confirmed are reported, not dropped in silence.
  async close(): Promise<void> {
    if (this.state === 'closed' || this.closing) return;
    this.closing = true;
    this.retryWait?.wake();
    if (this.state === 'connected' && this.transport) {
      const closed = deferred<void>();
      this.closeWaiter = closed;
      this.enqueue(this.encoder.close('client closed the session'));
      this.flush();
      const linger = sleep(CLOSE_LINGER_MS);
      await Promise.race([closed.promise, linger.done]);
      linger.wake();
    }
    const unconfirmed = this.sentLog.size;
    this.end(new BrookError(ErrorCode.NotConnected, 'closed by the client'));
    if (unconfirmed > 0)
      this.owner.onProblem(
        new BrookError(ErrorCode.NotConnected, `${unconfirmed} call(s) the broker never confirmed may not have arrived: closed by the client`),
      );
  }

  // One connection attempt: open the socket, send Connect (resuming or not), wait for the
  // broker's answer. Resolves once the session is live on it.
  private async attempt(resume: boolean): Promise<void> {
    const generation = ++this.generation;
    this.assembler.reset();
    const transport = await openTransport(this.options.url, this.options.connectTimeoutMs, {
      onBytes: (bytes) => {
        if (generation === this.generation) this.onBytes(bytes);
      },
      onClosed: (reason) => {
        if (generation === this.generation) this.onTransportClosed(reason);
      },
    });
    if (generation !== this.generation || this.closing) {
      transport.close();
      throw new BrookError(ErrorCode.NotConnected, 'closed by the client');
    }
    this.transport = transport;
    this.handshake = deferred<void>();
    this.lastHeard = now();
    this.pingSentAt = 0;
    transport.send(this.connectFrame(resume));
    const timeout = sleep(this.options.connectTimeoutMs);
    const timedOut = timeout.done.then(() => {
      throw new BrookError(ErrorCode.NotConnected, `no answer to Connect within ${this.options.connectTimeoutMs} ms`);
    });
    try {
      await Promise.race([this.handshake.promise, timedOut]);
    } catch (e) {
      if (generation === this.generation) {
        ++this.generation; // its late callbacks are stale now
        this.transport = undefined;
        transport.close();
      }
      throw e;
    } finally {
      timeout.wake();
      this.handshake = undefined;
    }
  }

  private connectFrame(resume: boolean): Uint8Array {
    return this.encoder.connect({
      clientName: this.options.clientName,
      principal: this.options.principal,
      credentials: this.options.credentials,
      sessionNumber: resume ? this.sessionNumber : this.options.sessionNumber,
      token: resume ? this.token : undefined,
      lastReceived: this.receivedSeq,
      reconnectTimeoutMs: Math.max(1, Math.min(this.options.reconnectTimeoutMs, 0xffffffff)),
      // The broker counts on from the first frame we still hold if it restored the session.
      resendFrom: resume ? this.sentLog.first : 0n,
    });
  }

  private onBytes(bytes: Uint8Array): void {
    this.lastHeard = now();
    this.pingSentAt = 0;
    try {
      this.assembler.push(bytes, (frame) => this.onFrame(frame));
    } catch (e) {
      // A frame we cannot read, or a stream we cannot follow (an update for an unknown alias).
      this.protocolFailure(e instanceof Error ? e.message : String(e));
    }
  }

  private onFrame(frame: Uint8Array): void {
    if (this.state === 'closed') return;
    const header = readHeader(frame);
    if (header.flags & FRAME_FLAG_SEQUENCED) this.receivedSeq += 1n;
    if (header.kind === FrameKind.Update) {
      const update = decodeUpdate(frame);
      if (update.sessionSeq !== this.receivedSeq)
        throw new FrameError(`update with session sequence ${update.sessionSeq}, expected ${this.receivedSeq}`);
      this.owner.onUpdate(update);
      return;
    }
    if (header.kind !== FrameKind.Control) throw new FrameError(`unexpected frame kind ${header.kind} from the broker`);
    this.onControl(decodeControl(frame));
  }

  private onControl(m: BrokerMessage): void {
    switch (m.type) {
      case 'connected':
        this.onConnected(m);
        return;
      case 'ping':
        this.sendConnection(this.encoder.pong(m.id, m.sentNs));
        return;
      case 'pong':
        return; // hearing it was the point
      case 'received':
        if (m.lastReceived <= this.sentLog.last) this.sentLog.confirm(m.lastReceived);
        return;
      case 'resync':
        this.owner.onAliasesReset();
        return;
      case 'close':
        if (this.closing) return; // our own Close, answered
        // A broker shutting down: recover as from any drop. A restarted broker with a journal
        // resumes the session; one without opens a new one in its place.
        this.connectionLost(`closed by the broker: ${m.reason}`);
        return;
      case 'error':
        if (m.requestId === 0) {
          const error = new BrookError(m.code, m.message);
          // Refused at Connect: the attempt fails and says why. Later: the broker ends the session.
          if (this.handshake) this.handshake.reject(error);
          else this.endByBroker(error);
          return;
        }
        this.answered(m.requestId);
        break;
      case 'ack':
      case 'subscribed':
      case 'unsubscribed':
      case 'requestResult':
        this.answered(m.requestId);
        break;
      case 'unexpected':
        throw new FrameError(`the broker sent a ${m.body} frame`);
    }
    this.owner.onMessage(m);
  }

  private onConnected(m: Extract<BrokerMessage, { type: 'connected' }>): void {
    const previousId = this.sessionId;
    this.sessionId = m.sessionId;
    if (m.maxFrameBytes > 0) this.maxFrameBytes = m.maxFrameBytes;
    if (m.token.length === SESSION_TOKEN_BYTES) this.token = m.token;
    const slash = m.sessionId.lastIndexOf('/');
    if (slash >= 0) {
      try {
        this.sessionNumber = BigInt(m.sessionId.slice(slash + 1));
      } catch {
        // not a number: keep resuming by the one we asked for
      }
    }
    this.journal = m.journal;
    this.receivedSeq = m.nextSequence - 1n;
    this.pingIntervalMs = Math.max(MIN_PING_INTERVAL_MS, this.options.pingIntervalMs ?? (m.pingIntervalMs || DEFAULT_PING_INTERVAL_MS));

    let detail: string;
    if (!this.hasSession) {
      this.hasSession = true;
      // A named session taken over from an earlier connection counts on from its frames.
      this.sentLog.rebase(m.lastReceived);
      detail = `connected to ${this.options.url} as ${m.sessionId}`;
      this.goLive(detail);
      if (m.restored) this.enqueue(this.encoder.resumeSubscriptions(this.owner.heldPositions()));
    } else if (this.freshSession || !m.resumed) {
      this.restartSession(m, previousId);
    } else {
      this.resumed(m);
    }
    this.handshake?.resolve();
  }

  // Resumed after a drop: send what the broker does not have, in order, then carry on.
  private resumed(m: Extract<BrokerMessage, { type: 'connected' }>): void {
    const { frames, missing } = this.sentLog.framesAfter(m.lastReceived);
    this.sentLog.confirm(m.lastReceived);
    if (m.resync || m.restored) this.owner.onAliasesReset();
    this.goLive(`resumed ${m.sessionId} on ${this.options.url}${m.resync ? ' (with a resync: updates were lost)' : ''}`);
    // The broker restarted and brought the session back from its journal, without the
    // updates it had queued: each subscription resumes after what we hold. Outside the
    // counted frames, and first.
    if (m.restored) this.enqueue(this.encoder.resumeSubscriptions(this.owner.heldPositions()));
    for (const f of frames) this.enqueue(f.bytes);
    // Request handlers are not journalled: register them again, after the rest.
    if (m.restored) for (const r of this.owner.handlerRegistrations()) this.sendSession(r.bytes, r.requestId);
    if (missing > 0n)
      this.owner.onProblem(
        new BrookError(ErrorCode.Internal, `${missing} session frame(s) sent before the drop were lost: the recovery buffer (recoveryBytes) was overrun`),
      );
  }

  // The broker opened a new session in place of ours: register the subscriptions and
  // handlers again, then send again the calls the old session never confirmed (publishes,
  // requests), in their order.
  private restartSession(m: Extract<BrokerMessage, { type: 'connected' }>, oldId: string): void {
    const reason = this.freshSessionReason || `the broker did not resume ${oldId}`;
    this.freshSession = false;
    this.freshSessionReason = '';
    const old = this.sentLog;
    const fresh = new SentLog(this.options.recoveryBytes);
    this.answerSeq.clear();
    this.owner.onAliasesReset();
    for (const r of [...this.owner.subscriptionRegistrations(), ...this.owner.handlerRegistrations()]) {
      const seq = fresh.append(r.bytes, r.requestId);
      if (r.requestId !== 0) this.answerSeq.set(r.requestId, seq);
    }
    const resent = new Set<number>();
    for (const f of old.held()) {
      if (!f.replayable) continue;
      const seq = fresh.append(f.bytes, f.requestId, true);
      if (f.requestId !== 0) {
        resent.add(f.requestId);
        this.answerSeq.set(f.requestId, seq);
      }
    }
    const forgotten = old.forgottenUnconfirmed;
    fresh.rebase(m.lastReceived);
    for (const [id, seq] of this.answerSeq) this.answerSeq.set(id, seq + m.lastReceived);
    this.sentLog = fresh;
    this.owner.onNewSession(resent, `session ${oldId} was lost before the broker answered`);
    this.goLive(`new session ${m.sessionId} on ${this.options.url} (${reason})`);
    for (const f of fresh.held()) this.enqueue(f.bytes);
    if (forgotten > 0n)
      this.owner.onProblem(
        new BrookError(ErrorCode.Internal, `${forgotten} call(s) sent before session ${oldId} was lost may not have arrived: the recovery buffer no longer held them`),
      );
  }

  private goLive(detail: string): void {
    this.outbox = []; // the old connection's frames: what mattered is in the log
    this.startKeepAlive();
    this.setState('connected', detail);
  }

  private enqueue(bytes: Uint8Array): void {
    this.outbox.push(bytes);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // The frames of one turn of the event loop leave in one WebSocket message.
    queueMicrotask(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.outbox.length === 0 || !this.transport || this.state !== 'connected') return;
    const bytes = concat(this.outbox);
    this.outbox = [];
    try {
      this.transport.send(bytes);
    } catch (e) {
      this.connectionLost(`send failed: ${(e as Error).message}`);
      return;
    }
    this.sentLog.markWritten(this.sentLog.last);
  }

  private onTransportClosed(reason: string): void {
    this.transport = undefined;
    if (this.closeWaiter) {
      this.closeWaiter.resolve(); // the broker's end of our Close: close() finishes
      return;
    }
    if (this.handshake) {
      this.handshake.reject(new BrookError(ErrorCode.NotConnected, reason));
      return;
    }
    this.connectionLost(reason);
  }

  private protocolFailure(reason: string): void {
    // A stream we cannot follow cannot be resumed either.
    this.endByBroker(new BrookError(ErrorCode.MalformedFrame, `protocol failure: ${reason}`));
  }

  private connectionLost(reason: string): void {
    if (this.state !== 'connected') return;
    ++this.generation;
    this.transport?.close();
    this.transport = undefined;
    this.outbox = [];
    this.stopKeepAlive();
    if (this.closing || !this.hasSession || this.options.reconnectTimeoutMs <= 0) {
      this.end(new BrookError(ErrorCode.NotConnected, `connection lost: ${reason}`));
      return;
    }
    this.setState('reconnecting', reason);
    void this.recover(reason);
  }

  // Tries again at once, then with a growing delay, until the reconnect timeout passes.
  private async recover(firstReason: string): Promise<void> {
    const deadline = now() + this.options.reconnectTimeoutMs;
    let lastReason = firstReason;
    let delay = 0;
    for (let attempt = 1; ; ++attempt) {
      if (delay > 0) {
        const wait = sleep(Math.max(0, Math.min(delay, deadline - now())));
        this.retryWait = wait;
        await wait.done;
        this.retryWait = undefined;
      }
      if (this.closing || this.state === 'closed') return;
      if (now() >= deadline) {
        this.end(new BrookError(ErrorCode.NotConnected, `no connection within ${this.options.reconnectTimeoutMs} ms after ${attempt - 1} attempt(s): ${lastReason}`));
        return;
      }
      try {
        await this.attempt(!this.freshSession);
        return;
      } catch (e) {
        if (this.closing) return;
        lastReason = (e as Error).message;
        const sessionGone =
          e instanceof BrookError &&
          (e.code === ErrorCode.SessionNotFound || (e.code === ErrorCode.AuthenticationFailed && !this.freshSession));
        if (sessionGone && !this.freshSession) {
          // The broker restarted or the session expired: carry on in a new one, at once.
          this.freshSession = true;
          this.freshSessionReason = lastReason;
          delay = 0;
          continue;
        }
        if (isRefusal(e)) {
          this.end(new BrookError(e.code, `session lost: ${e.message}`));
          return;
        }
        delay = delay === 0 ? FIRST_RETRY_DELAY_MS : Math.min(delay * 2, MAX_RETRY_DELAY_MS);
      }
    }
  }

  // Pings a quiet broker; a ping unanswered for a whole interval means the connection is dead.
  private startKeepAlive(): void {
    this.stopKeepAlive();
    this.lastHeard = now();
    this.pingSentAt = 0;
    const check = Math.max(250, Math.floor(this.pingIntervalMs / 4));
    this.pingTimer = setInterval(() => {
      if (this.state !== 'connected') return;
      const t = now();
      if (this.pingSentAt !== 0) {
        if (t - this.pingSentAt >= this.pingIntervalMs) this.connectionLost(`no answer to a ping within ${this.pingIntervalMs} ms`);
        return;
      }
      if (t - this.lastHeard >= this.pingIntervalMs) {
        this.pingSentAt = t;
        this.sendConnection(this.encoder.ping(0n, BigInt(t) * 1_000_000n));
      }
    }, check);
    // A Node process with nothing else to do need not stay up for our pings.
    (this.pingTimer as { unref?: () => void }).unref?.();
  }

  private stopKeepAlive(): void {
    if (this.pingTimer !== undefined) clearInterval(this.pingTimer);
    this.pingTimer = undefined;
  }

  private endByBroker(error: BrookError): void {
    if (this.handshake) {
      this.handshake.reject(error);
      return;
    }
    this.end(error);
  }

  private end(error: BrookError): void {
    if (this.state === 'closed') return;
    ++this.generation;
    this.stopKeepAlive();
    this.retryWait?.wake();
    this.transport?.close();
    this.transport = undefined;
    this.outbox = [];
    this.closeWaiter?.resolve();
    this.setState('closed', error.message);
    this.owner.onClosed(error);
  }

  private setState(state: ClientState, detail: string): void {
    if (this.state === state && state !== 'connecting') return;
    this.state = state;
    this.owner.onStateChange(state, detail);
  }
}
