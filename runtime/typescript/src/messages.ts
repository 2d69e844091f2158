// Control frames: a FlatBuffers `Message` (codec/schema/brook.fbs, file identifier "BRK1")
// behind the 8-byte frame header. Encoders for what this client sends, and a decoder that
// turns what the broker sends into plain objects, so that nothing past this file touches
// the generated FlatBuffers classes.
import * as flatbuffers from 'flatbuffers';

import { FRAME_HEADER_BYTES, FrameError, FrameKind, writeHeader } from './frames';
import { ErrorCode, TopicType, WIRE_VERSION } from './protocol';
import { Ack } from './generated/brook/wire/ack';
import { AddHandler } from './generated/brook/wire/add-handler';
import { Body } from './generated/brook/wire/body';
import { Close } from './generated/brook/wire/close';
import { Connect } from './generated/brook/wire/connect';
import { Connected } from './generated/brook/wire/connected';
import { Error as ErrorBody } from './generated/brook/wire/error';
import { FlowControl } from './generated/brook/wire/flow-control';
import { HandleRequest } from './generated/brook/wire/handle-request';
import { Message } from './generated/brook/wire/message';
import { Ping } from './generated/brook/wire/ping';
import { Pong } from './generated/brook/wire/pong';
import { Received } from './generated/brook/wire/received';
import { Refresh } from './generated/brook/wire/refresh';
import { RemoveHandler } from './generated/brook/wire/remove-handler';
import { Request } from './generated/brook/wire/request';
import { RequestResult } from './generated/brook/wire/request-result';
import { Response } from './generated/brook/wire/response';
import { ResumeSubscriptions } from './generated/brook/wire/resume-subscriptions';
import { Resync } from './generated/brook/wire/resync';
import { Subscribe } from './generated/brook/wire/subscribe';
import { Subscribed } from './generated/brook/wire/subscribed';
import { TopicAdd } from './generated/brook/wire/topic-add';
import { TopicPosition as TopicPositionTable } from './generated/brook/wire/topic-position';
import { Unsubscribe } from './generated/brook/wire/unsubscribe';
import { Unsubscribed } from './generated/brook/wire/unsubscribed';

export const FILE_IDENTIFIER = 'BRK1';
export const SESSION_TOKEN_BYTES = 16;

// Where a client is in a topic: the last sequence it holds, from which history epoch.
export interface TopicPosition {
  path: string;
  epoch: bigint;
  seq: bigint;
}

export interface ConnectFields {
  clientName: string;
  principal: string;
  credentials: Uint8Array;
  sessionNumber: bigint; // 0 new, > 0 a named session, < 0 a broker-numbered one (resuming)
  token?: Uint8Array; // resume by token
  lastReceived: bigint; // the last session sequence this client received
  reconnectTimeoutMs: number;
  newIfMissing?: boolean;
  resendFrom?: bigint; // the first session frame the client still holds (0: unknown)
  transientSession?: boolean;
}

export interface RequestFields {
  requestId: number;
  path: string;
  type: TopicType;
  payload: Uint8Array;
  timeoutMs: number;
}

export interface ResponseFields {
  id: bigint;
  failed: boolean;
  message: string;
  type: TopicType;
  payload: Uint8Array;
}

// What the broker sends, as plain objects.
export type BrokerMessage =
  | {
      type: 'connected';
      sessionId: string;
      maxFrameBytes: number;
      token: Uint8Array;
      resumed: boolean;
      resync: boolean;
      lastReceived: bigint;
      reconnectTimeoutMs: number;
      pingIntervalMs: number;
      nextSequence: bigint;
      restored: boolean;
      journal: boolean;
    }
  | { type: 'subscribed'; requestId: number; selector: string }
  | { type: 'unsubscribed'; requestId: number; selector: string }
  | { type: 'ack'; requestId: number }
  | { type: 'topicAdd'; alias: number; path: string; topicType: TopicType; epoch: bigint }
  | { type: 'ping'; id: bigint; sentNs: bigint }
  | { type: 'pong'; id: bigint; sentNs: bigint }
  | { type: 'close'; reason: string }
  | { type: 'error'; code: ErrorCode; requestId: number; message: string }
  | { type: 'resync'; reason: string }
  | { type: 'requestResult'; requestId: number; code: ErrorCode; message: string; topicType: TopicType; payload: Uint8Array }
  | { type: 'handleRequest'; id: bigint; path: string; requester: string; topicType: TopicType; payload: Uint8Array }
  | { type: 'received'; lastReceived: bigint }
  | { type: 'flowControl'; held: boolean }
  // A body only a client sends (Connect, Publish...): the broker never should.
  | { type: 'unexpected'; body: string };

// Builds control frames. One builder, reused: each encode returns a fresh array.
export class ControlEncoder {
  private readonly b = new flatbuffers.Builder(256);

  connect(f: ConnectFields): Uint8Array {
    const b = this.start();
    const name = b.createString(f.clientName);
    const principal = b.createString(f.principal);
    const credentials = Connect.createCredentialsVector(b, f.credentials);
    const token = f.token && f.token.length > 0 ? Connect.createTokenVector(b, f.token) : 0;
    const body = Connect.createConnect(
      b,
      WIRE_VERSION,
      name,
      principal,
      credentials,
      f.sessionNumber,
      token,
      f.lastReceived,
      f.reconnectTimeoutMs,
      f.newIfMissing ?? false,
      f.resendFrom ?? 0n,
      f.transientSession ?? false,
    );
    return this.finish(Body.Connect, body);
  }

  subscribe(requestId: number, selector: string, resumeFrom?: readonly TopicPosition[]): Uint8Array {
    const b = this.start();
    const positions = resumeFrom ? this.positions(resumeFrom) : 0;
    const text = b.createString(selector);
    Subscribe.startSubscribe(b);
    Subscribe.addRequestId(b, requestId);
    Subscribe.addSelector(b, text);
    if (resumeFrom) {
      Subscribe.addResume(b, true);
      Subscribe.addPositions(b, positions);
    }
    return this.finish(Body.Subscribe, Subscribe.endSubscribe(b));
  }

  resumeSubscriptions(positions: readonly TopicPosition[]): Uint8Array {
    this.start();
    const list = this.positions(positions);
    return this.finish(Body.ResumeSubscriptions, ResumeSubscriptions.createResumeSubscriptions(this.b, list));
  }

  unsubscribe(requestId: number, selector: string): Uint8Array {
    const b = this.start();
    const text = b.createString(selector);
    return this.finish(Body.Unsubscribe, Unsubscribe.createUnsubscribe(b, requestId, text));
  }

  refresh(alias: number): Uint8Array {
    const b = this.start();
    return this.finish(Body.Refresh, Refresh.createRefresh(b, alias));
  }

  addHandler(requestId: number, path: string, sticky: boolean): Uint8Array {
    const b = this.start();
    const text = b.createString(path);
    return this.finish(Body.AddHandler, AddHandler.createAddHandler(b, requestId, text, sticky));
  }

  removeHandler(requestId: number, path: string): Uint8Array {
    const b = this.start();
    const text = b.createString(path);
    return this.finish(Body.RemoveHandler, RemoveHandler.createRemoveHandler(b, requestId, text));
  }

  request(f: RequestFields): Uint8Array {
    const b = this.start();
    const path = b.createString(f.path);
    const payload = Request.createPayloadVector(b, f.payload);
    return this.finish(Body.Request, Request.createRequest(b, f.requestId, path, f.type, payload, f.timeoutMs));
  }

  response(f: ResponseFields): Uint8Array {
    const b = this.start();
    const message = b.createString(f.message);
    const payload = Response.createPayloadVector(b, f.payload);
    return this.finish(Body.Response, Response.createResponse(b, f.id, f.failed, message, f.type, payload));
  }

  ping(id: bigint, sentNs: bigint): Uint8Array {
    const b = this.start();
    return this.finish(Body.Ping, Ping.createPing(b, id, sentNs));
  }

  pong(id: bigint, sentNs: bigint): Uint8Array {
    const b = this.start();
    return this.finish(Body.Pong, Pong.createPong(b, id, sentNs));
  }

  close(reason: string): Uint8Array {
    const b = this.start();
    const text = b.createString(reason);
    return this.finish(Body.Close, Close.createClose(b, text));
  }

  private start(): flatbuffers.Builder {
    this.b.clear();
    return this.b;
  }

  private positions(positions: readonly TopicPosition[]): flatbuffers.Offset {
    const entries = positions.map((p) =>
      TopicPositionTable.createTopicPosition(this.b, this.b.createString(p.path), p.epoch, p.seq),
    );
    return Subscribe.createPositionsVector(this.b, entries);
  }

  private finish(type: Body, body: flatbuffers.Offset): Uint8Array {
    this.b.finish(Message.createMessage(this.b, type, body), FILE_IDENTIFIER);
    const message = this.b.asUint8Array();
    const frame = new Uint8Array(FRAME_HEADER_BYTES + message.length);
    writeHeader(frame, frame.length, FrameKind.Control);
    frame.set(message, FRAME_HEADER_BYTES);
    return frame;
  }
}

// Decodes one whole control frame (header included). The TypeScript FlatBuffers runtime has
// no verifier: the offsets the message points at are checked as they are read, and anything
// unreadable throws FrameError.
export function decodeControl(frame: Uint8Array): BrokerMessage {
  const bytes = frame.subarray(FRAME_HEADER_BYTES);
  const bb = new flatbuffers.ByteBuffer(bytes);
  if (bytes.length < 8 || !Message.bufferHasIdentifier(bb))
    throw new FrameError('control frame without the BRK1 identifier');
  try {
    return decodeMessage(Message.getRootAsMessage(bb));
  } catch (e) {
    if (e instanceof FrameError) throw e;
    throw new FrameError(`undecodable control frame: ${(e as Error).message}`);
  }
}

function copy(bytes: Uint8Array | null): Uint8Array {
  return bytes ? bytes.slice() : new Uint8Array(0);
}

function decodeMessage(m: Message): BrokerMessage {
  switch (m.bodyType()) {
    case Body.Connected: {
      const c = m.body(new Connected()) as Connected;
      return {
        type: 'connected',
        sessionId: c.sessionId() ?? '',
        maxFrameBytes: c.maxFrameBytes(),
        token: copy(c.tokenArray()),
        resumed: c.resumed(),
        resync: c.resync(),
        lastReceived: c.lastReceived(),
        reconnectTimeoutMs: c.reconnectTimeoutMs(),
        pingIntervalMs: c.pingIntervalMs(),
        nextSequence: c.nextSequence(),
        restored: c.restored(),
        journal: c.journal(),
      };
    }
    case Body.Subscribed: {
      const s = m.body(new Subscribed()) as Subscribed;
      return { type: 'subscribed', requestId: s.requestId(), selector: s.selector() ?? '' };
    }
    case Body.Unsubscribed: {
      const s = m.body(new Unsubscribed()) as Unsubscribed;
      return { type: 'unsubscribed', requestId: s.requestId(), selector: s.selector() ?? '' };
    }
    case Body.Ack:
      return { type: 'ack', requestId: (m.body(new Ack()) as Ack).requestId() };
    case Body.TopicAdd: {
      const t = m.body(new TopicAdd()) as TopicAdd;
      return { type: 'topicAdd', alias: t.alias(), path: t.path() ?? '', topicType: t.type() as number, epoch: t.epoch() };
    }
    case Body.Ping: {
      const p = m.body(new Ping()) as Ping;
      return { type: 'ping', id: p.id(), sentNs: p.sentNs() };
    }
    case Body.Pong: {
      const p = m.body(new Pong()) as Pong;
      return { type: 'pong', id: p.id(), sentNs: p.sentNs() };
    }
    case Body.Close:
      return { type: 'close', reason: (m.body(new Close()) as Close).reason() ?? '' };
    case Body.Error: {
      const e = m.body(new ErrorBody()) as ErrorBody;
      return { type: 'error', code: e.code() as number, requestId: e.requestId(), message: e.message() ?? '' };
    }
    case Body.Resync:
      return { type: 'resync', reason: (m.body(new Resync()) as Resync).reason() ?? '' };
    case Body.RequestResult: {
      const r = m.body(new RequestResult()) as RequestResult;
      return {
        type: 'requestResult',
        requestId: r.requestId(),
        code: r.code() as number,
        message: r.message() ?? '',
        topicType: r.type() as number,
        payload: copy(r.payloadArray()),
      };
    }
    case Body.HandleRequest: {
      const h = m.body(new HandleRequest()) as HandleRequest;
      return {
        type: 'handleRequest',
        id: h.id(),
        path: h.path() ?? '',
        requester: h.requester() ?? '',
        topicType: h.type() as number,
        payload: copy(h.payloadArray()),
      };
    }
    case Body.Received:
      return { type: 'received', lastReceived: (m.body(new Received()) as Received).lastReceived() };
    case Body.FlowControl:
      return { type: 'flowControl', held: (m.body(new FlowControl()) as FlowControl).held() };
    case Body.NONE:
      throw new FrameError('control frame without a body');
    default:
      return { type: 'unexpected', body: Body[m.bodyType()] ?? `body ${m.bodyType()}` };
  }
}
