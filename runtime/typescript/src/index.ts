// The package's public face: connect() and the types its client speaks.
export { connect, BrookClient } from './client';
export type {
  ClientState,
  ConnectOptions,
  ErrorListener,
  FlowListener,
  RequestHandler,
  RequestInfo,
  StateListener,
  Subscription,
  Update,
  UpdateHandler,
} from './client';
export { BrookError, ErrorCode, TopicType } from './protocol';
export type { TopicTypeName } from './protocol';
