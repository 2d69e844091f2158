// brookd's web console in a real browser (Debian's Chromium, headless, driven by playwright-core).
// A real brookd serves the console (--http-console) beside its HTTP API; topics published with
// `brook pub` and the demo's odds feed must show in the topic tree with their values, a value
// that changes must change on the page, the sessions table must list the live sessions, and
// the shard charts must draw. When brookd stops, the console must say it is unreachable, and
// it must come back by itself when brookd does. A last test feeds the console the contract's
// fixture (tests/web/console_mock.mjs) for what a broker does not produce on cue: held-back
// sessions, closed sessions with a reason, a cut value, a page behind a path prefix.
// Screenshots are kept in $BROOK_ARTIFACTS (build/test-artifacts by default).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { startConsoleMock } from './console_mock.mjs';
import { BROOK, publish, startBroker, startFeed, waitFor } from './support.mjs';

const CONSOLE_DIR = process.env.BROOK_CONSOLE_DIR ?? new URL('../../tools/console/dist', import.meta.url).pathname;
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = process.env.BROOK_ARTIFACTS ?? new URL('../../build/test-artifacts', import.meta.url).pathname;

// A headless page whose script errors and console errors are collected. A fetch that fails
// while brookd is down logs "Failed to load resource": expected there, so the caller says.
async function openConsole(t, url, { allowFailedLoads = false } = {}) {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const problems = [];
  page.on('pageerror', (e) => problems.push(String(e)));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (allowFailedLoads && /^Failed to load resource: net::ERR_/.test(m.text())) return;
    problems.push(m.text());
  });
  await page.goto(url);
  const stats = () => page.evaluate(() => window.brookConsole);
  return { page, stats, problems };
}

// How many pixels of a canvas are close to `rgb` (a chart line's colour).
function pixelsOfColor(page, selector, rgb) {
  return page.evaluate(([selector, [r, g, b]]) => {
    const canvas = document.querySelector(selector);
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] > 128 && Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 60) n += 1;
    }
    return n;
  }, [selector, rgb]);
}
const SHARD_0_RGB = [0x1f, 0x77, 0xb4];
const SHARD_1_RGB = [0xd6, 0x27, 0x28];

const valueOf = (page, topic) => page.locator(`li[data-path="${topic}"] > .row > .value`).textContent();

test('the console shows a real brookd\'s topics with their values, its sessions and its shard charts', async (t) => {
  await mkdir(ARTIFACTS, { recursive: true });
  const broker = await startBroker('', { http: '127.0.0.1:0', consoleDir: CONSOLE_DIR });
  t.after(() => broker.stop());
  await publish(broker.tcpUrl, 'console/greeting', 'hello console', ['--type', 'string']);
  await publish(broker.tcpUrl, 'console/odds/home', '{"price":1.95}', ['--type', 'json']);
  await publish(broker.tcpUrl, 'console/count', '42', ['--type', 'int64']);
  const feed = startFeed(broker.tcpUrl, 30, 20);
  t.after(() => feed.kill());
  // A subscriber that stays: a live session, and a subscriber on the console's topics.
  const sub = spawn(BROOK, ['sub', '--url', broker.tcpUrl, '--timeout', '60', 'console//'], { stdio: 'ignore' });
  t.after(() => sub.kill('SIGTERM'));

  const { page, stats, problems } = await openConsole(t, broker.httpUrl);
  await waitFor(async () => (await stats())?.refreshes >= 2 && (await stats()).topicCount >= 3 + 16, 15_000,
                'the console to show the three topics and the feed\'s 16 matches');
  assert.equal(await valueOf(page, 'console/greeting'), 'hello console');
  assert.equal(await valueOf(page, 'console/odds/home'), '{"price":1.95}');
  assert.equal(await valueOf(page, 'console/count'), '42');
  const feedTopic = page.locator('li[data-path^="Distribution/Football/NFL/"].topic > .row > .value').first();
  assert.match(await feedTopic.textContent(), /"Home_Odds"/);
  // The tree nests on '/': the greeting sits under the "console" node, which counts its topics.
  assert.equal(await page.locator('li[data-path="console"] > .row > .count').textContent(), '3');
  assert.equal(await page.locator('li[data-path="console"] li[data-path="console/greeting"]').count(), 1);
  await waitFor(async () => /1 sub\b/.test(await page.locator('li[data-path="console/greeting"] > .row > .meta').textContent()),
                5_000, 'the greeting to show its subscriber');

  // A new value shows within a poll or two, highlighted.
  await publish(broker.tcpUrl, 'console/greeting', 'hello again');
  await waitFor(async () => (await valueOf(page, 'console/greeting')) === 'hello again', 5_000, 'the new greeting');
  assert.ok(await page.locator('li[data-path="console/greeting"] > .row > .value.changed').count() === 1, 'the change highlighted');

  // Collapsing a node hides what is under it.
  await page.locator('li[data-path="console"] > .row > .name').click();
  assert.equal(await page.locator('li[data-path="console/greeting"]').isVisible(), false);
  await page.locator('li[data-path="console"] > .row > .name').click();
  assert.equal(await page.locator('li[data-path="console/greeting"]').isVisible(), true);

  // The sessions: the subscriber and the feed at least.
  await waitFor(async () => (await stats()).sessionCount >= 2, 5_000, 'two sessions in the table');
  assert.ok(await page.locator('#sessions tbody tr[data-id]').count() >= 2);

  // The charts: brookd keeps a sample a second; once a few are in, every shard's line is drawn.
  await waitFor(async () => Number(await page.locator('canvas.chart').nth(1).getAttribute('data-points')) >= 6, 15_000,
                'the publishes/s chart to draw');
  for (const [i, rgb] of [SHARD_0_RGB, SHARD_1_RGB].entries())
    assert.ok(await pixelsOfColor(page, 'canvas.chart:nth-of-type(2)', rgb) > 20, `shard ${i}'s publishes/s line drawn`);
  assert.match(await page.locator('#tiles').textContent(), /publishes\/s/);
  assert.equal((await stats()).lastError, null);
  assert.deepEqual(problems, []);
  await page.screenshot({ path: path.join(ARTIFACTS, 'console.png'), fullPage: true });
});

test('the console says brookd is unreachable while it is down and comes back by itself', async (t) => {
  await mkdir(ARTIFACTS, { recursive: true });
  let broker = await startBroker('', { http: '127.0.0.1:0', consoleDir: CONSOLE_DIR });
  t.after(() => broker.stop());
  const address = new URL(broker.httpUrl).host;
  await publish(broker.tcpUrl, 'console/greeting', 'before the stop', ['--type', 'string']);
  const { page, stats, problems } = await openConsole(t, broker.httpUrl, { allowFailedLoads: true });
  await waitFor(async () => (await stats())?.topicCount >= 1, 10_000, 'the console to show the topic');

  await broker.stop();
  await waitFor(async () => (await stats()).lastError !== null, 5_000, 'the console to notice');
  assert.equal(await page.locator('#banner').isVisible(), true);
  assert.match(await page.locator('#banner').textContent(), /brookd unreachable/);
  assert.equal(await valueOf(page, 'console/greeting'), 'before the stop', 'the last data kept');
  await page.screenshot({ path: path.join(ARTIFACTS, 'console-unreachable.png') });

  // The same HTTP address again; the console retries every few seconds at most.
  broker = await startBroker('', { http: address, consoleDir: CONSOLE_DIR });
  await publish(broker.tcpUrl, 'console/greeting', 'after the restart', ['--type', 'string']);
  await waitFor(async () => (await stats()).lastError === null, 10_000, 'the console to reach brookd again');
  assert.equal(await page.locator('#banner').isVisible(), false);
  await waitFor(async () => (await valueOf(page, 'console/greeting')) === 'after the restart', 5_000, 'the new broker\'s value');
  assert.deepEqual(problems, []);
});

test('the console shows the contract\'s fixture: held-back sessions, closed ones with their reason, behind a path prefix', async (t) => {
  await mkdir(ARTIFACTS, { recursive: true });
  const mock = await startConsoleMock({ dir: CONSOLE_DIR, prefix: '/brook/' });
  t.after(() => mock.close());
  const { page, stats, problems } = await openConsole(t, mock.url);
  await waitFor(async () => (await stats())?.refreshes >= 1, 5_000, 'a first refresh');
  // Every request stayed under the prefix: the page's URLs are relative.
  assert.deepEqual(mock.requests.filter((r) => !r.startsWith('/brook/')), []);
  assert.equal((await stats()).topicCount, 8);
  assert.equal((await stats()).sessionCount, 3);
  const slow = page.locator('#sessions tbody tr[data-id="slow/7"]');
  assert.equal(await page.locator('#sessions tbody tr').first().getAttribute('data-id'), 'slow/7', 'the slow one first');
  assert.match(await slow.locator('td.flags').textContent(), /held back.*holding publishers/);
  assert.match(await slow.getAttribute('class'), /flagged/);
  assert.match(await page.locator('#closed tbody tr[data-id="bob/1"] td.reason').textContent(), /^queue limit: outbound queue full/);
  assert.match(await valueOf(page, 'blobs/big'), /…$/, 'a cut value ends in an ellipsis');
  assert.equal(await valueOf(page, 'blobs/raw'), '00ff10ab');
  assert.ok(await pixelsOfColor(page, 'canvas.chart', SHARD_1_RGB) > 20, 'shard 1\'s busy line drawn');
  assert.deepEqual(problems, []);
  await page.screenshot({ path: path.join(ARTIFACTS, 'console-fixture.png'), fullPage: true });
});
