// What Brook's wire protocol shows an application: the protocol version, topic types, error
// codes (mirroring brook/protocol.hpp and brook.wire.ErrorCode in codec/schema/brook.fbs), and
// the error type every failed call of this client rejects with.

// Sent in every Connect; a broker refuses another version (ErrorCode.ProtocolVersion).
export const WIRE_VERSION = 2;

export enum TopicType {
  Json = 0,
  String = 1,
  Binary = 2,
  Int64 = 3,
  Double = 4,
}

export type TopicTypeName = 'json' | 'string' | 'binary' | 'int64' | 'double';

const topicTypeNames: readonly TopicTypeName[] = ['json', 'string', 'binary', 'int64', 'double'];

export function topicTypeName(type: TopicType): TopicTypeName | 'unknown' {
  return topicTypeNames[type] ?? 'unknown';
}

export function parseTopicType(name: TopicTypeName): TopicType {
  const index = topicTypeNames.indexOf(name);
  if (index < 0) throw new TypeError(`unknown topic type '${name}'`);
  return index as TopicType;
}

// Values travel on the wire: append, never renumber (as in C++).
export enum ErrorCode {
  None = 0,
  MalformedFrame = 1,
  FrameTooLarge = 2,
  UnknownFrame = 3,
  InvalidSelector = 4,
  InvalidPath = 5,
  TypeMismatch = 6,
  InvalidValue = 7,
  NotConnected = 8,
  ProtocolVersion = 9,
  QueueFull = 10,
  Internal = 11,
  AuthenticationFailed = 12,
  SessionNotFound = 13,
  SessionClosed = 14,
  DeltaRejected = 15,
  NoHandler = 16,
  HandlerGone = 17,
  HandlerFailed = 18,
  RequestTimeout = 19,
  TooManyRequests = 20,
  MemoryLimit = 21,
  BackPressured = 22,
  StorageFailed = 23,
  PermissionDenied = 24,
}

// A call's failure: `code` says why (the broker's or the client's), the message says more.
export class BrookError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'BrookError';
    this.code = code;
  }

  get codeName(): string {
    return ErrorCode[this.code] ?? `Unknown(${this.code})`;
  }
}
