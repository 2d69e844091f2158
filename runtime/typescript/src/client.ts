// The public client: connect(), and BrookClient's subscriptions, publishes, requests and
// request handlers on top of the session (session.ts). It keeps what a new session needs to
// carry on (the subscriptions and handlers to register again) and hands each update to the
// subscriptions whose selector matches its topic, whole and checked (values.ts).
import { loadChecksum, type Checksum } from './checksum';
import { encodePublish, UpdateEncoding, type UpdateFrame } from './frames';
import { ControlEncoder, type BrokerMessage, type TopicPosition } from './messages';
import { BrookError, ErrorCode, parseTopicType, TopicType, topicTypeName, type TopicTypeName } from './protocol';
import { PendingAnswers, PendingRequests, RequestIds } from './requests';
import { isValidTopicPath, parseSelector, selectorMatches, type Selector } from './selector';
import { Session, type ClientState, type Registration, type SessionOwner } from './session';
import { TopicCache, type TopicValue } from './values';

export type { ClientState } from './session';

export interface ConnectOptions {
  url: string; // ws://HOST:PORT/ or wss://HOST:PORT/
  principal?: string; // empty: anonymous
  credentials?: Uint8Array | string;
  // A named session (principal/N): connecting again with the same number resumes it.
  session?: number | bigint | string;
  // How long to keep trying after a dropped connection, and how long the broker keeps the
  // session meanwhile (within its maximum). 0: a drop closes the client. Default 60000.
  reconnectTimeout?: number;
  clientName?: string;
  connectTimeout?: number; // ms for one connection attempt; default 10000
  pingInterval?: number; // ms of silence before a ping; default: the broker's
  recoveryBytes?: number; // session frames kept for resending after a drop; default 16 MiB
  // Sees the states of the first connection too, before connect() resolves.
  onState?: StateListener;
}

export interface Update {
  path: string;
  value: Uint8Array; // the whole value (deltas applied and checked); do not modify
  text(): string; // the value as UTF-8
  json(): any; // the value parsed as JSON
  topicSeq: bigint;
  // Updates before this one were missed: a resync after a gap the broker could not fill, a
  // failed delta replaced by the whole value, or a skip in the topic's sequence (a conflated
  // topic, a topic made anew). Never silent.
  gap: boolean;
  type: TopicTypeName | 'unknown';
  epoch: bigint;
  delta: boolean; // it travelled as a delta
}

export type UpdateHandler = (update: Update) => void;
export type StateListener = (state: ClientState, detail: string) => void;
export type ErrorListener = (error: BrookError) => void;
export type FlowListener = (held: boolean) => void;

export interface RequestInfo {
  endpoint: string;
  requester: string; // the requesting session's id
  type: TopicTypeName | 'unknown';
  text(): string;
}
export type RequestHandler = (body: Uint8Array, info: RequestInfo) => Uint8Array | string | Promise<Uint8Array | string>;

export interface Subscription {
  readonly selector: string;
  unsubscribe(): Promise<void>;
}

interface LocalSubscription {
  id: number;
  selector: Selector;
  handler: UpdateHandler;
  requestId: number; // of the Subscribe that registered it (again, in a new session)
  confirmed: boolean;
  onSubscribed?: (error?: BrookError) => void;
}

interface HandlerEntry {
  handler: RequestHandler;
  sticky: boolean;
  requestId: number; // of its AddHandler
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

function bytesOf(value: Uint8Array | string): Uint8Array {
  return typeof value === 'string' ? utf8.encode(value) : value;
}

export class BrookClient implements SessionOwner {
  private readonly session: Session;
  private readonly cache: TopicCache;
  private readonly encoder = new ControlEncoder();
  private readonly ids = new RequestIds();
  private readonly answers = new PendingAnswers();
  private readonly requests = new PendingRequests();
  private readonly subscriptions = new Map<number, LocalSubscription>();
  // The subscriptions each topic path matches, worked out once per path rather than once per
  // update (a feed's updates come from few paths, many times); emptied whenever the
  // subscriptions change.
  private readonly matching = new Map<string, LocalSubscription[]>();
  private readonly handlers = new Map<string, HandlerEntry>();
  private readonly listeners = {
    state: new Set<StateListener>(),
    error: new Set<ErrorListener>(),
    flow: new Set<FlowListener>(),
  };
  private nextSubscriptionId = 1;
  private held = false;

  /** Use connect(). */
  constructor(options: ConnectOptions, checksum: Checksum) {
    const sessionNumber = options.session === undefined ? 0n : BigInt(options.session);
    if (sessionNumber < 0n) throw new TypeError('session: a positive number names a session');
    if (options.onState) this.listeners.state.add(options.onState);
    this.session = new Session(
      {
        url: options.url,
        principal: options.principal ?? '',
        credentials: bytesOf(options.credentials ?? ''),
        sessionNumber,
        clientName: options.clientName ?? 'brook-ts',
        reconnectTimeoutMs: options.reconnectTimeout ?? 60_000,
        connectTimeoutMs: options.connectTimeout ?? 10_000,
        pingIntervalMs: options.pingInterval,
        recoveryBytes: options.recoveryBytes ?? 16 << 20,
      },
      this,
    );
    this.cache = new TopicCache(checksum, this.session.maxFrameBytes);
  }

  /** @internal */
  open(): Promise<void> {
    return this.session.open();
  }

  get state(): ClientState {
    return this.session.state;
  }

  // principal/N, the broker's name for this session.
  get sessionId(): string {
    return this.session.sessionId;
  }

  // Flow control: the broker holds this publisher back until its subscribers catch up.
  get flowHeld(): boolean {
    return this.held;
  }

  on(event: 'state', listener: StateListener): () => void;
  on(event: 'error', listener: ErrorListener): () => void;
  on(event: 'flow', listener: FlowListener): () => void;
  on(event: 'state' | 'error' | 'flow', listener: StateListener | ErrorListener | FlowListener): () => void {
    const set = this.listeners[event] as Set<typeof listener>;
    set.add(listener);
    return () => set.delete(listener);
  }

  async subscribe(selector: string, handler: UpdateHandler): Promise<Subscription> {
    const parsed = parseSelector(selector);
    if (!parsed)
      throw new BrookError(ErrorCode.InvalidSelector, `invalid selector '${selector}' (use PATH, PATH/* for children or PATH// for PATH and below)`);
    this.checkOpen();
    const sub: LocalSubscription = { id: this.nextSubscriptionId++, selector: parsed, handler, requestId: this.ids.next(), confirmed: false };
    const confirmed = new Promise<void>((resolve, reject) => {
      sub.onSubscribed = (error) => (error ? reject(error) : resolve());
    });
    this.subscriptions.set(sub.id, sub);
    this.matching.clear();
    this.session.sendSession(this.encoder.subscribe(sub.requestId, parsed.text), sub.requestId);
    await confirmed;
    return { selector: parsed.text, unsubscribe: () => this.unsubscribe(sub.id) };
  }

  private async unsubscribe(id: number): Promise<void> {
    const sub = this.subscriptions.get(id);
    if (!sub) return;
    this.subscriptions.delete(id);
    this.matching.clear();
    this.cache.forgetUnwanted((path) => this.wanted(path));
    // The broker keys subscriptions by selector: only the last local one unsubscribes.
    for (const other of this.subscriptions.values()) if (other.selector.text === sub.selector.text) return;
    if (this.state === 'closed') return;
    const requestId = this.ids.next();
    const done = this.answers.add(requestId, `unsubscribe '${sub.selector.text}'`);
    this.session.sendSession(this.encoder.unsubscribe(requestId, sub.selector.text), requestId);
    return done;
  }

  // Resolves once the broker has taken the value (its Ack), rejects with why it refused.
  publish(path: string, value: Uint8Array | string, options: { type?: TopicTypeName } = {}): Promise<void> {
    try {
      this.checkOpen();
      if (!isValidTopicPath(path)) throw new BrookError(ErrorCode.InvalidPath, `invalid topic path '${path}'`);
      const requestId = this.ids.next();
      const type = options.type === undefined ? undefined : parseTopicType(options.type);
      const frame = encodePublish(requestId, path, bytesOf(value), type);
      this.checkFrameSize(frame, `publish to '${path}'`);
      const done = this.answers.add(requestId, `publish to '${path}'`);
      this.session.sendSession(frame, requestId, true);
      return done;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  // Sends `body` to a handler of `endpoint`; resolves with its answer.
  request(endpoint: string, body: Uint8Array | string, options: { timeoutMs?: number } = {}): Promise<Uint8Array> {
    try {
      this.checkOpen();
      const timeoutMs = Math.max(1, Math.min(options.timeoutMs ?? 10_000, 0xffffffff));
      const requestId = this.ids.next();
      const frame = this.encoder.request({
        requestId,
        path: endpoint,
        type: typeof body === 'string' ? TopicType.String : TopicType.Binary,
        payload: bytesOf(body),
        timeoutMs,
      });
      this.checkFrameSize(frame, `request to '${endpoint}'`);
      const answer = this.requests.add(requestId, endpoint, timeoutMs, () => this.session.forgetAnswer(requestId));
      this.session.sendSession(frame, requestId, true);
      return answer;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  // Answers requests sent to `endpoint`; resolves once the broker has registered it.
  addRequestHandler(endpoint: string, handler: RequestHandler, options: { sticky?: boolean } = {}): Promise<void> {
    try {
      this.checkOpen();
      const entry: HandlerEntry = { handler, sticky: options.sticky ?? true, requestId: this.ids.next() };
      this.handlers.set(endpoint, entry);
      const done = this.answers.add(entry.requestId, `add request handler '${endpoint}'`);
      this.session.sendSession(this.encoder.addHandler(entry.requestId, endpoint, entry.sticky), entry.requestId);
      return done;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  removeRequestHandler(endpoint: string): Promise<void> {
    try {
      this.checkOpen();
      this.handlers.delete(endpoint);
      const requestId = this.ids.next();
      const done = this.answers.add(requestId, `remove request handler '${endpoint}'`);
      this.session.sendSession(this.encoder.removeHandler(requestId, endpoint), requestId);
      return done;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  // Ends the session; calls still waiting fail with NotConnected.
  close(): Promise<void> {
    return this.session.close();
  }

  // ---- SessionOwner: what the session hands up ----

  /** @internal */
  onUpdate(frame: UpdateFrame): void {
    this.cache.maxValueBytes = Math.max(this.session.maxFrameBytes, 8 << 20);
    const outcome = this.cache.apply(frame, (path) => this.wanted(path));
    switch (outcome.kind) {
      case 'deliver':
        this.deliver(outcome.update);
        return;
      case 'refresh':
        this.session.sendSession(this.encoder.refresh(outcome.alias));
        if (outcome.refused)
          this.emitError(
            new BrookError(
              ErrorCode.DeltaRejected,
              `topic '${outcome.path}' update ${frame.topicSeq}: delta refused (${outcome.refused}); asked the broker for the whole value`,
            ),
          );
        return;
      case 'unknownAlias':
        throw new BrookError(ErrorCode.MalformedFrame, `update for unknown topic alias ${frame.alias}`);
      case 'drop':
        return;
    }
  }

  /** @internal */
  onMessage(m: BrokerMessage): void {
    switch (m.type) {
      case 'topicAdd':
        this.cache.addAlias(m.alias, m.path, m.topicType, m.epoch);
        return;
      case 'subscribed':
        for (const sub of this.subscriptions.values())
          if (sub.requestId === m.requestId) {
            sub.confirmed = true;
            const confirm = sub.onSubscribed;
            sub.onSubscribed = undefined; // once: a new session confirms it again
            confirm?.();
          }
        return;
      case 'unsubscribed':
      case 'ack':
        this.answers.resolve(m.requestId);
        return;
      case 'error':
        this.onErrorAnswer(m.requestId, new BrookError(m.code, m.message));
        return;
      case 'requestResult':
        this.requests.settle(m.requestId, m.code, m.message, m.payload);
        return;
      case 'handleRequest':
        this.onHandleRequest(m);
        return;
      case 'flowControl':
        if (this.held === m.held) return;
        this.held = m.held;
        for (const l of this.listeners.flow) this.guard(() => l(m.held));
        return;
      default:
        return;
    }
  }

  /** @internal */
  onStateChange(state: ClientState, detail: string): void {
    // A hold belongs to a connection: the broker says so again on the next one.
    if (state !== 'connected' && this.held) {
      this.held = false;
      for (const l of this.listeners.flow) this.guard(() => l(false));
    }
    for (const l of this.listeners.state) this.guard(() => l(state, detail));
  }

  /** @internal */
  onProblem(error: BrookError): void {
    this.emitError(error);
  }

  /** @internal */
  onAliasesReset(): void {
    this.cache.clearAliases();
  }

  /** @internal */
  subscriptionRegistrations(): Registration[] {
    const out: Registration[] = [];
    for (const sub of this.subscriptions.values()) {
      sub.requestId = this.ids.next();
      const positions = this.cache.positions((path) => selectorMatches(sub.selector, path));
      out.push({ bytes: this.encoder.subscribe(sub.requestId, sub.selector.text, positions), requestId: sub.requestId });
    }
    return out;
  }

  /** @internal */
  handlerRegistrations(): Registration[] {
    const out: Registration[] = [];
    for (const [endpoint, entry] of this.handlers) {
      const requestId = this.ids.next();
      this.answers.move(entry.requestId, requestId); // a caller still waiting gets this answer
      entry.requestId = requestId;
      out.push({ bytes: this.encoder.addHandler(requestId, endpoint, entry.sticky), requestId });
    }
    return out;
  }

  /** @internal */
  heldPositions(): TopicPosition[] {
    return this.cache.positions();
  }

  /** @internal */
  onNewSession(resent: ReadonlySet<number>, reason: string): void {
    const keep = new Set(resent);
    for (const entry of this.handlers.values()) keep.add(entry.requestId);
    const lost = new BrookError(ErrorCode.SessionClosed, reason);
    this.answers.rejectAllExcept(keep, lost);
    this.requests.rejectAllExcept(keep, lost);
  }

  /** @internal */
  onClosed(error: BrookError): void {
    const closed = new BrookError(ErrorCode.NotConnected, `session closed: ${error.message}`);
    this.answers.rejectAllExcept(new Set(), closed);
    this.requests.rejectAllExcept(new Set(), closed);
    for (const sub of this.subscriptions.values()) {
      const confirm = sub.onSubscribed;
      sub.onSubscribed = undefined;
      confirm?.(closed);
    }
    if (error.code !== ErrorCode.NotConnected || !error.message.startsWith('closed by the client')) this.emitError(error);
  }

  // ---- internals ----

  private matches(path: string): LocalSubscription[] {
    let subs = this.matching.get(path);
    if (!subs) {
      subs = [...this.subscriptions.values()].filter((sub) => selectorMatches(sub.selector, path));
      this.matching.set(path, subs);
    }
    return subs;
  }

  private wanted(path: string): boolean {
    return this.matches(path).length > 0;
  }

  private deliver(v: TopicValue): void {
    let text: string | undefined;
    const update: Update = {
      path: v.path,
      value: v.value,
      text: () => (text ??= utf8Decoder.decode(v.value)),
      json: () => JSON.parse(update.text()),
      topicSeq: v.topicSeq,
      gap: v.gap,
      type: topicTypeName(v.type),
      epoch: v.epoch,
      delta: v.encoding === UpdateEncoding.Delta,
    };
    // The list stays as it is while handlers run (a change makes a new one); a handler may
    // unsubscribe another subscription, which then hears no more.
    for (const sub of this.matches(v.path)) if (this.subscriptions.has(sub.id)) this.guard(() => sub.handler(update));
  }

  private onErrorAnswer(requestId: number, error: BrookError): void {
    for (const sub of this.subscriptions.values()) {
      if (sub.requestId !== requestId) continue;
      // Refused (an invalid selector, a permission): the subscription never was.
      this.subscriptions.delete(sub.id);
      this.matching.clear();
      const confirm = sub.onSubscribed;
      sub.onSubscribed = undefined;
      const refused = new BrookError(error.code, `subscribe '${sub.selector.text}': ${error.message}`);
      if (confirm) confirm(refused);
      else this.emitError(refused);
      return;
    }
    if (this.answers.reject(requestId, error)) return;
    if (this.requests.settle(requestId, error.code, error.message, new Uint8Array(0))) return;
    this.emitError(error);
  }

  private onHandleRequest(m: Extract<BrokerMessage, { type: 'handleRequest' }>): void {
    const entry = this.handlers.get(m.path);
    const respond = (failed: boolean, message: string, type: TopicType, payload: Uint8Array) => {
      if (this.state === 'closed') return;
      let frame = this.encoder.response({ id: m.id, failed, message, type, payload });
      if (frame.length > this.session.maxFrameBytes)
        frame = this.encoder.response({
          id: m.id,
          failed: true,
          message: `the answer of ${payload.length} bytes is larger than the broker takes (${this.session.maxFrameBytes} bytes a frame)`,
          type: TopicType.String,
          payload: new Uint8Array(0),
        });
      this.session.sendSession(frame);
    };
    if (!entry) {
      // Removed here while the request was on its way.
      respond(true, `this session no longer handles '${m.path}'`, TopicType.String, new Uint8Array(0));
      return;
    }
    const info: RequestInfo = {
      endpoint: m.path,
      requester: m.requester,
      type: topicTypeName(m.topicType),
      text: () => utf8Decoder.decode(m.payload),
    };
    Promise.resolve()
      .then(() => entry.handler(m.payload, info))
      .then(
        (answer) => respond(false, '', typeof answer === 'string' ? TopicType.String : TopicType.Binary, bytesOf(answer)),
        (e: unknown) => respond(true, e instanceof Error ? e.message : String(e), TopicType.String, new Uint8Array(0)),
      );
  }

  private checkOpen(): void {
    if (this.state === 'closed') throw new BrookError(ErrorCode.NotConnected, 'the client is closed');
  }

  private checkFrameSize(frame: Uint8Array, what: string): void {
    if (frame.length > this.session.maxFrameBytes)
      throw new BrookError(ErrorCode.FrameTooLarge, `${what}: a frame of ${frame.length} bytes is larger than the broker takes (${this.session.maxFrameBytes})`);
  }

  private emitError(error: BrookError): void {
    for (const l of this.listeners.error) this.guard(() => l(error));
  }

  // A listener's or handler's exception is the application's: it must not break the stream.
  private guard(call: () => void): void {
    try {
      call();
    } catch (e) {
      if (this.listeners.error.size === 0) {
        queueMicrotask(() => {
          throw e;
        });
        return;
      }
      const error = e instanceof BrookError ? e : new BrookError(ErrorCode.Internal, `a handler threw: ${(e as Error)?.message ?? e}`);
      for (const l of this.listeners.error) {
        try {
          l(error);
        } catch {
          // an error listener that throws has nobody left to tell
        }
      }
    }
  }
}

export async function connect(options: ConnectOptions): Promise<BrookClient> {
  if (!/^wss?:\/\//i.test(options.url)) throw new TypeError(`url must be ws:// or wss://, not '${options.url}'`);
  const checksum = await loadChecksum();
  const client = new BrookClient(options, checksum);
  await client.open();
  return client;
}
