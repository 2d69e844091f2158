// The WebSocket under a session: the browser's (or a Node that has one), else the `ws`
// package, loaded only then so that a browser bundle never needs it. Brook's byte stream
// travels in binary messages whose boundaries mean nothing; this file hands on the bytes and
// says when the socket is gone, and nothing more.

export const SUBPROTOCOL = 'brook';

// The part of the WebSocket API that the browser's and `ws` share, and that we use.
interface SocketLike {
  binaryType: string;
  readonly bufferedAmount: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}
type SocketConstructor = new (url: string, protocols: string[]) => SocketLike;

export interface Transport {
  send(bytes: Uint8Array): void;
  close(): void;
  readonly bufferedAmount: number;
}

export interface TransportHandlers {
  onBytes(bytes: Uint8Array): void;
  // Once, however the socket ended (closed by either side, failed); never after close().
  onClosed(reason: string): void;
}

// `binaryType`: a browser's WebSocket hands binary messages over as ArrayBuffers; the `ws`
// package can hand over the Buffer it read them into, without copying each message again.
let socketConstructor: Promise<{ ctor: SocketConstructor; binaryType: string }> | undefined;

function webSocketConstructor(): Promise<{ ctor: SocketConstructor; binaryType: string }> {
  socketConstructor ??= (async () => {
    const native = (globalThis as { WebSocket?: unknown }).WebSocket;
    if (typeof native === 'function') return { ctor: native as SocketConstructor, binaryType: 'arraybuffer' };
    // Node before 22 has no WebSocket of its own.
    const ws = await import('ws');
    return { ctor: ws.default as unknown as SocketConstructor, binaryType: 'nodebuffer' };
  })();
  return socketConstructor;
}

function describeClose(event: { code: number; reason: string }): string {
  return `websocket closed (code ${event.code}${event.reason ? `: ${event.reason}` : ''})`;
}

// Opens a socket to `url` within `timeoutMs`; rejects with why it could not.
export async function openTransport(url: string, timeoutMs: number, handlers: TransportHandlers): Promise<Transport> {
  const { ctor: WebSocketImpl, binaryType } = await webSocketConstructor();
  return new Promise<Transport>((resolve, reject) => {
    let socket: SocketLike;
    try {
      socket = new WebSocketImpl(url, [SUBPROTOCOL]);
    } catch (e) {
      reject(new Error(`cannot open ${url}: ${(e as Error).message}`));
      return;
    }
    socket.binaryType = binaryType;
    let open = false;
    let ended = false; // closed by us, or reported once
    const timer = setTimeout(() => fail(`no connection to ${url} within ${timeoutMs} ms`), timeoutMs);

    function fail(reason: string): void {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      try {
        socket.close();
      } catch {
        // already closing
      }
      if (open) handlers.onClosed(reason);
      else reject(new Error(reason));
    }

    socket.onopen = () => {
      clearTimeout(timer);
      if (ended) return;
      open = true;
      resolve({
        send: (bytes) => socket.send(bytes),
        close: () => {
          if (ended) return;
          ended = true;
          socket.close(1000);
        },
        get bufferedAmount() {
          return socket.bufferedAmount;
        },
      });
    };
    socket.onmessage = (event) => {
      if (ended) return;
      const data = event.data;
      if (data instanceof ArrayBuffer) handlers.onBytes(new Uint8Array(data));
      else if (ArrayBuffer.isView(data)) handlers.onBytes(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      else fail('the broker sent a text message: Brook speaks in binary messages only');
    };
    socket.onerror = (event) => {
      const message = (event as { message?: string; error?: Error }).error?.message ?? (event as { message?: string }).message;
      fail(`websocket error${message ? `: ${message}` : ''} (${url})`);
    };
    socket.onclose = (event) => fail(describeClose(event));
  });
}
