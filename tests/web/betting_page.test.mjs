// The betting page in a real browser (Debian's Chromium, headless, driven by playwright-core):
// brookd serves the page (ws.static_dir) and the demo's odds feed runs; the page talks to the
// broker through a proxy that cuts its connection for 2 s while the feed goes on. The page
// must show the odds, say it is reconnecting, come back by itself, and have every update of
// every match in order with no gap: the topic sequences it saw end where a TCP subscriber's
// do. Screenshots are kept in $BROOK_ARTIFACTS (build/test-artifacts by default).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { BROOK, startBroker, startFeed, startProxy, waitFor } from './support.mjs';

const PAGE_DIR = process.env.BROOK_PAGE_DIR ?? new URL('../../tools/betting-page/dist', import.meta.url).pathname;
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = process.env.BROOK_ARTIFACTS ?? new URL('../../build/test-artifacts', import.meta.url).pathname;

// The last topic sequence of each match as `brook sub` (over TCP) printed them.
function tcpSubscriber(tcpUrl, seconds) {
  const child = spawn(BROOK, ['sub', '--url', tcpUrl, '--timeout', String(seconds), 'Distribution/Football/NFL//'],
                      { stdio: ['ignore', 'pipe', 'pipe'] });
  const lastSeq = {};
  let pending = '';
  child.stdout.on('data', (d) => {
    pending += d;
    const lines = pending.split('\n');
    pending = lines.pop();
    for (const line of lines) {
      const [topic, seq] = line.split('\t');
      if (seq !== undefined) lastSeq[topic] = Number(seq);
    }
  });
  return { lastSeq, done: new Promise((resolve) => child.on('exit', resolve)), kill: () => child.kill('SIGTERM') };
}

test('the betting page shows the odds live and every update through a 2 s cut, in order', async (t) => {
  await mkdir(ARTIFACTS, { recursive: true });
  const broker = await startBroker(`[ws]\nstatic_dir = "${PAGE_DIR}"\n`);
  t.after(() => broker.stop());
  const proxy = await startProxy(broker.wsPort);
  t.after(() => proxy.close());
  const feedSeconds = 14;
  const feed = startFeed(broker.tcpUrl, feedSeconds, 20);
  t.after(() => feed.kill());
  const tcp = tcpSubscriber(broker.tcpUrl, feedSeconds + 10);
  t.after(() => tcp.kill());

  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
  const problems = [];
  page.on('pageerror', (e) => problems.push(String(e)));
  // Chromium logs each refused WebSocket attempt during the cut itself: expected, not a fault.
  page.on('console', (m) => {
    if (m.type() === 'error' && !/^WebSocket connection to .* failed/.test(m.text())) problems.push(m.text());
  });
  await page.goto(`http://127.0.0.1:${broker.wsPort}/?ws=ws://127.0.0.1:${proxy.port}/`);

  const stats = () => page.evaluate(() => window.brookPage);
  await waitFor(async () => (await stats())?.updates >= 40, 15_000, 'the page to show 40 updates');
  assert.equal((await stats()).state, 'connected');
  assert.ok(await page.locator('#odds tbody tr').count() >= 10, 'a row per match');
  await page.screenshot({ path: path.join(ARTIFACTS, 'betting-page.png') });

  // The connection drops for 2 s while the feed goes on.
  const before = (await stats()).updates;
  proxy.cut(2000);
  await waitFor(async () => (await stats()).state === 'reconnecting', 5_000, 'the page to say it is reconnecting');
  await page.screenshot({ path: path.join(ARTIFACTS, 'betting-page-reconnecting.png') });
  await waitFor(async () => (await stats()).state === 'connected' && (await stats()).reconnects >= 1, 15_000,
                'the page to reconnect by itself');
  await waitFor(async () => (await stats()).updates >= before + 60, 15_000, 'updates after the cut');

  // The feed ends; the page's last sequence of each match is the TCP subscriber's.
  const ended = await feed.done;
  assert.equal(ended.code, 0, ended.stderr);
  await waitFor(async () => {
    const seen = (await stats()).lastSeq;
    return Object.keys(tcp.lastSeq).length > 0 &&
           Object.entries(tcp.lastSeq).every(([topic, seq]) => seen[topic] === seq);
  }, 10_000, 'the page to have the last update of every match');
  const final = await stats();
  assert.equal(final.outOfOrder, 0, 'every update after the one before it');
  assert.equal(final.gaps, 0, 'no gap: the session resumed with nothing missed');
  assert.deepEqual(problems, []);
  await page.screenshot({ path: path.join(ARTIFACTS, 'betting-page-after-cut.png') });
});
