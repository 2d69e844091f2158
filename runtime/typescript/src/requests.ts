// The calls waiting for the broker's answer: acknowledged calls (publish, unsubscribe,
// handler registration), which resolve on Ack, Unsubscribed or fail on Error; and requests
// to other sessions' handlers, which resolve with the handler's answer or fail on their
// deadline. Request ids are shared by all of them, as the broker's answers carry them.
import { deferred, type Deferred } from './deferred';
import { BrookError, ErrorCode } from './protocol';

export class RequestIds {
  private last = 0;

  // 1 .. 2^32 - 1: 0 means "no answer wanted" on the wire.
  next(): number {
    this.last = this.last >= 0xffffffff ? 1 : this.last + 1;
    return this.last;
  }
}

// Calls whose answer is only "done" or an error.
export class PendingAnswers {
  private readonly calls = new Map<number, { done: Deferred<void>; what: string }>();

  add(requestId: number, what: string): Promise<void> {
    const done = deferred<void>();
    this.calls.set(requestId, { done, what });
    return done.promise;
  }

  has(requestId: number): boolean {
    return this.calls.has(requestId);
  }

  resolve(requestId: number): boolean {
    const call = this.calls.get(requestId);
    if (!call) return false;
    this.calls.delete(requestId);
    call.done.resolve();
    return true;
  }

  reject(requestId: number, error: BrookError): boolean {
    const call = this.calls.get(requestId);
    if (!call) return false;
    this.calls.delete(requestId);
    call.done.reject(new BrookError(error.code, `${call.what}: ${error.message}`));
    return true;
  }

  // The same call, answered under a new request id (registered again in a new session).
  move(from: number, to: number): void {
    const call = this.calls.get(from);
    if (!call) return;
    this.calls.delete(from);
    this.calls.set(to, call);
  }

  rejectAllExcept(keep: ReadonlySet<number>, error: BrookError): void {
    for (const id of [...this.calls.keys()]) if (!keep.has(id)) this.reject(id, error);
  }
}

// Requests to an endpoint's handler, each with a deadline of its own.
export class PendingRequests {
  private readonly requests = new Map<number, { answer: Deferred<Uint8Array>; timer: ReturnType<typeof setTimeout>; endpoint: string }>();

  add(requestId: number, endpoint: string, timeoutMs: number, onTimeout: () => void): Promise<Uint8Array> {
    const answer = deferred<Uint8Array>();
    const timer = setTimeout(() => {
      if (!this.requests.delete(requestId)) return;
      onTimeout();
      answer.reject(new BrookError(ErrorCode.RequestTimeout, `request to '${endpoint}': no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    this.requests.set(requestId, { answer, timer, endpoint });
    return answer.promise;
  }

  has(requestId: number): boolean {
    return this.requests.has(requestId);
  }

  // Returns false when the request is not waiting (timed out here already).
  settle(requestId: number, code: ErrorCode, message: string, payload: Uint8Array): boolean {
    const r = this.requests.get(requestId);
    if (!r) return false;
    this.requests.delete(requestId);
    clearTimeout(r.timer);
    if (code === ErrorCode.None) r.answer.resolve(payload);
    else r.answer.reject(new BrookError(code, `request to '${r.endpoint}': ${message || ErrorCode[code]}`));
    return true;
  }

  rejectAllExcept(keep: ReadonlySet<number>, error: BrookError): void {
    for (const id of [...this.requests.keys()]) if (!keep.has(id)) this.settle(id, error.code, error.message, new Uint8Array(0));
  }
}
