// A promise with its resolve and reject at hand (Promise.withResolvers is newer than Node 18),
// and a sleep that a close can cut short.

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

// Resolves after `ms`, or as soon as `wake` is called, whichever comes first.
export function sleep(ms: number): { done: Promise<void>; wake(): void } {
  let wake!: () => void;
  let timer: ReturnType<typeof setTimeout>;
  const done = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
    wake = () => {
      clearTimeout(timer);
      resolve();
    };
  });
  return { done, wake };
}
