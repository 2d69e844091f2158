// Integration tests against a real brookd over ws://, through the bundle that ships
// (dist/brook.js): publish and subscribe, JSON values that travel as deltas and arrive whole,
// requests answered by another client's handler, and a connection cut mid-stream that the
// client resumes with nothing missed and nothing twice, both ways.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { BrookError, connect, ErrorCode, type BrookClient, type ClientState, type Update } from '../src/index';
import { CuttableProxy, delay, startBroker, waitFor, withTimeout, type Broker } from './support';

let broker: Broker;
const clients: BrookClient[] = [];

async function client(url: string, extra: Parameters<typeof connect>[0] extends infer O ? Partial<O> : never = {}): Promise<BrookClient> {
  const c = await withTimeout(connect({ url, ...extra }), 10_000, `connect to ${url}`);
  clients.push(c);
  return c;
}

describe('brookd over WebSocket', { timeout: 120_000 }, () => {
  before(async () => {
    broker = await startBroker();
  });

  after(async () => {
    await Promise.all(clients.map((c) => withTimeout(c.close(), 5000, 'close').catch(() => {})));
    await broker?.stop();
  });

  test('a published value reaches a subscriber, text and binary, until it unsubscribes', async () => {
    const subscriber = await client(broker.wsUrl);
    const publisher = await client(broker.wsUrl);
    const got: Update[] = [];
    const subscription = await subscriber.subscribe('RoundTrip//', (u) => got.push(u));

    await publisher.publish('RoundTrip/text', 'héllo');
    await publisher.publish('RoundTrip/binary', Uint8Array.of(0, 1, 2, 255), { type: 'binary' });
    await waitFor(() => got.length === 2, 5000, 'two updates');
    assert.equal(got[0].path, 'RoundTrip/text');
    assert.equal(got[0].text(), 'héllo');
    assert.equal(got[0].topicSeq, 1n);
    assert.equal(got[0].gap, false);
    assert.equal(got[1].path, 'RoundTrip/binary');
    assert.deepEqual([...got[1].value], [0, 1, 2, 255]);

    await subscription.unsubscribe();
    await publisher.publish('RoundTrip/text', 'after');
    // The subscriber's own round trip: anything sent before it would have arrived by now.
    await subscriber.publish('RoundTrip/marker', 'x');
    await delay(50);
    assert.equal(got.length, 2);
  });

  test('a publish the broker refuses rejects with its code', async () => {
    const publisher = await client(broker.wsUrl);
    await publisher.publish('Typed/text', 'one', { type: 'string' });
    await assert.rejects(publisher.publish('Typed/text', '{}', { type: 'json' }), (e: unknown) => {
      assert.ok(e instanceof BrookError);
      assert.equal(e.code, ErrorCode.TypeMismatch);
      return true;
    });
    await assert.rejects(publisher.publish('bad//path', 'x'), (e: unknown) => e instanceof BrookError && e.code === ErrorCode.InvalidPath);
    await assert.rejects(publisher.subscribe('a/*/b', () => {}), (e: unknown) => e instanceof BrookError && e.code === ErrorCode.InvalidSelector);
  });

  test('JSON values that change a little travel as deltas and arrive whole, in order', async () => {
    const subscriber = await client(broker.wsUrl);
    const publisher = await client(broker.wsUrl);
    const errors: BrookError[] = [];
    subscriber.on('error', (e) => errors.push(e));
    const got: Update[] = [];
    await subscriber.subscribe('Odds/NFL/*', (u) => got.push(u));

    const markets: Record<string, { Home_Odds: string; Away_Odds: string; Total: string }> = {};
    for (let i = 0; i < 16; ++i) markets[`Market_${i}`] = { Home_Odds: `+${100 + i}`, Away_Odds: `-${110 + i}`, Total: `${40 + i}.5` };
    const versions: string[] = [];
    for (let v = 0; v < 30; ++v) {
      markets[`Market_${v % 16}`].Home_Odds = `+${120 + v}`;
      const value = JSON.stringify({ Event: 'Week 12', Version: v, Markets: markets });
      versions.push(value);
      await publisher.publish('Odds/NFL/Game1', value);
    }
    assert.ok(versions[0].length >= 1000, `a value of ${versions[0].length} bytes`);

    await waitFor(() => got.length === versions.length, 10_000, `${versions.length} versions`);
    assert.deepEqual(got.map((u) => u.text()), versions);
    assert.deepEqual(got.map((u) => u.topicSeq), versions.map((_, i) => BigInt(i + 1)));
    assert.equal(got.filter((u) => u.gap).length, 0);
    assert.deepEqual(got.at(-1)!.json().Markets.Market_13.Home_Odds, '+149');
    const deltas = got.filter((u) => u.delta).length;
    assert.ok(deltas >= versions.length / 2, `only ${deltas} of ${versions.length} came as deltas`);
    assert.deepEqual(errors, []);
  });

  test('a request is answered by the handler another client registered', async () => {
    const handler = await client(broker.wsUrl);
    const requester = await client(broker.wsUrl);
    const requesters: string[] = [];
    await handler.addRequestHandler('Math/Double', async (body, info) => {
      requesters.push(info.requester);
      return JSON.stringify({ doubled: Number(info.text()) * 2 });
    });
    await handler.addRequestHandler('Math/Fail', () => {
      throw new Error('no such market');
    });
    await handler.addRequestHandler('Math/Silent', () => new Promise<string>(() => {}));

    const answer = await requester.request('Math/Double', '21', { timeoutMs: 5000 });
    assert.deepEqual(JSON.parse(new TextDecoder().decode(answer)), { doubled: 42 });
    assert.deepEqual(requesters, [requester.sessionId]);

    const binary = await requester.request('Math/Double', Uint8Array.of(0x34), { timeoutMs: 5000 });
    assert.equal(new TextDecoder().decode(binary), '{"doubled":8}');

    await assert.rejects(requester.request('Math/Fail', 'x', { timeoutMs: 5000 }), (e: unknown) => {
      assert.ok(e instanceof BrookError);
      assert.equal(e.code, ErrorCode.HandlerFailed);
      assert.match(e.message, /no such market/);
      return true;
    });
    await assert.rejects(requester.request('Math/Nobody', 'x', { timeoutMs: 5000 }), (e: unknown) => e instanceof BrookError && e.code === ErrorCode.NoHandler);
    await assert.rejects(requester.request('Math/Silent', 'x', { timeoutMs: 300 }), (e: unknown) => e instanceof BrookError && e.code === ErrorCode.RequestTimeout);
  });

  test('a dropped connection is resumed with every value delivered once, in order, both ways', async () => {
    const proxy = new CuttableProxy(broker.wsPort);
    await proxy.start();
    try {
      const states: ClientState[] = [];
      const proxied = await client(proxy.url, { reconnectTimeout: 20_000, onState: (s) => states.push(s) });
      const direct = await client(broker.wsUrl);
      const errors: BrookError[] = [];
      proxied.on('error', (e) => errors.push(e));

      const toProxied: number[] = [];
      const fromProxied: number[] = [];
      let gaps = 0;
      await proxied.subscribe('Resume/count', (u) => {
        gaps += u.gap ? 1 : 0;
        toProxied.push(Number(u.text()));
      });
      await direct.subscribe('Resume/back', (u) => {
        gaps += u.gap ? 1 : 0;
        fromProxied.push(Number(u.text()));
      });

      const total = 400;
      const cutsAt = new Set([100, 250]);
      const proxiedPublishes: Promise<void>[] = [];
      for (let i = 1; i <= total; ++i) {
        await withTimeout(direct.publish('Resume/count', String(i)), 5000, `publish ${i}`);
        // Not awaited: while the connection is down the publish waits in the recovery log.
        proxiedPublishes.push(proxied.publish('Resume/back', String(i)));
        if (cutsAt.has(i)) assert.ok(proxy.dropAll() > 0, 'there was a connection to cut');
        if (i % 20 === 0) await delay(5);
      }
      await withTimeout(Promise.all(proxiedPublishes), 20_000, 'the proxied client\'s publishes acknowledged');

      const expected = Array.from({ length: total }, (_, i) => i + 1);
      await waitFor(() => toProxied.length >= total && fromProxied.length >= total, 20_000, `${total} values each way`);
      await delay(100); // a duplicate would show up now
      assert.deepEqual(toProxied, expected);
      assert.deepEqual(fromProxied, expected);
      assert.equal(gaps, 0);
      assert.equal(states.filter((s) => s === 'reconnecting').length, 2, `states: ${states.join(' ')}`);
      assert.equal(states.at(-1), 'connected');
      assert.equal(proxy.connections, 3);
      assert.deepEqual(errors, []);
    } finally {
      await proxy.close();
    }
  });

  test('a broker that lost the session: a new one carries the subscriptions, handlers and unconfirmed publishes', async () => {
    let first: Broker | undefined = await startBroker();
    let second: Broker | undefined;
    const proxy = new CuttableProxy(first.wsPort);
    await proxy.start();
    try {
      const details: string[] = [];
      const proxied = await client(proxy.url, { reconnectTimeout: 20_000, onState: (s, d) => details.push(`${s}: ${d}`) });
      const got: Update[] = [];
      await proxied.subscribe('Restart//', (u) => got.push(u));
      await proxied.addRequestHandler('Restart/echo', (body) => body);
      const before = await client(first.wsUrl);
      await before.publish('Restart/a', '1');
      await waitFor(() => got.length === 1, 5000, 'the first value');
      const oldSession = proxied.sessionId;

      await first.stop();
      first = undefined;
      await waitFor(() => proxied.state === 'reconnecting', 5000, 'the drop noticed').catch((e) => { throw new Error(`${e.message}; states: ${details.join(' / ')}`); });
      const publishedWhileDown = proxied.publish('Restart/b', 'while down');

      second = await startBroker();
      proxy.targetPort = second.wsPort;
      await withTimeout(publishedWhileDown, 15_000, 'the publish made while down, sent again in the new session');
      assert.equal(proxied.state, 'connected');
      assert.notEqual(proxied.sessionId, oldSession);
      assert.match(details.at(-1)!, /^connected: new session/);

      const after = await client(second.wsUrl);
      const retained: string[] = [];
      await after.subscribe('Restart/b', (u) => retained.push(u.text()));
      await waitFor(() => retained.length === 1, 5000, 'the value published while down');
      assert.deepEqual(retained, ['while down']);
      await after.publish('Restart/a', '2');
      await waitFor(() => got.some((u) => u.text() === '2'), 5000, 'an update through the subscription made again');
      const echo = await after.request('Restart/echo', 'still here', { timeoutMs: 5000 });
      assert.equal(new TextDecoder().decode(echo), 'still here');
    } finally {
      await proxy.close();
      await first?.stop();
      await second?.stop();
    }
  });

  test('close ends the session and fails later calls', async () => {
    const c = await client(broker.wsUrl);
    const states: ClientState[] = [];
    c.on('state', (s) => states.push(s));
    await c.close();
    assert.equal(c.state, 'closed');
    assert.deepEqual(states, ['closed']);
    await assert.rejects(c.publish('Closed/x', 'y'), (e: unknown) => e instanceof BrookError && e.code === ErrorCode.NotConnected);
  });
});
