// The web console's main loop: once a second it asks brookd (the page's own origin) for the
// broker's totals, the topics with their values and the sessions, and every few seconds for
// the per-shard history, and hands each answer to its view. When brookd does not answer, a
// banner says so and the console retries with a growing delay (up to 5 s) until it does;
// the views keep their last data, dimmed. `window.brookConsole` lets a browser test follow it.
import { ApiError, fetchBroker, fetchHistory, fetchSessions, fetchTopics } from './api.js';
import { BrokerSummary } from './broker_summary.js';
import { SessionsTable } from './sessions_table.js';
import { ShardCharts } from './shard_charts.js';
import { TopicTree } from './topic_tree.js';

const POLL_MS = 1000;
const HISTORY_EVERY_MS = 5000;
const MAX_RETRY_MS = 5000;
const TOPIC_LIMIT = 1000;
const SESSION_LIMIT = 50;

interface ConsoleStats {
  refreshes: number; // polls that every request of succeeded
  topicCount: number;
  sessionCount: number;
  lastError: string | null; // the last poll's failure, null once a poll succeeds
}

declare global {
  interface Window {
    brookConsole: ConsoleStats;
  }
}

const stats: ConsoleStats = { refreshes: 0, topicCount: 0, sessionCount: 0, lastError: null };
window.brookConsole = stats;

const byId = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const summary = new BrokerSummary(byId('broker-id'), byId('tiles'), byId('counters'));
const tree = new TopicTree(byId<HTMLUListElement>('topic-tree'), byId('topics-empty'));
const sessions = new SessionsTable(
  byId<HTMLTableElement>('sessions').tBodies[0],
  byId<HTMLTableElement>('closed').tBodies[0],
  byId('sessions-note'),
);
const charts = new ShardCharts(byId('charts'), byId('legend'));
const banner = byId('banner');
const bannerDetail = byId('banner-detail');
const stateBadge = byId('state');
const topicsNote = byId('topics-note');

byId('expand').addEventListener('click', () => tree.setAllOpen(true));
byId('collapse').addEventListener('click', () => tree.setAllOpen(false));
byId('retry').addEventListener('click', () => {
  if (!polling) schedule(0); // a poll under way schedules the next one itself
});

let timer: ReturnType<typeof setTimeout> | undefined;
let polling = false;
let failures = 0;
let historyAt = 0; // when the charts last got history (ms), 0 to ask on the next poll

async function refresh(): Promise<void> {
  const wantHistory = Date.now() - historyAt >= HISTORY_EVERY_MS;
  const [broker, topics, sessionPage, history] = await Promise.allSettled([
    fetchBroker(),
    fetchTopics(TOPIC_LIMIT),
    fetchSessions(SESSION_LIMIT),
    wantHistory ? fetchHistory() : Promise.resolve(null),
  ]);
  // Whatever did answer is shown, even when another request failed.
  if (broker.status === 'fulfilled') summary.update(broker.value);
  if (topics.status === 'fulfilled') {
    tree.update(topics.value.topics);
    stats.topicCount = tree.topicCount;
    topicsNote.textContent = topics.value.total > topics.value.topics.length
      ? `first ${topics.value.topics.length} of ${topics.value.total} by path`
      : `${topics.value.total}`;
  }
  if (sessionPage.status === 'fulfilled') {
    sessions.update(sessionPage.value);
    stats.sessionCount = sessions.sessionCount;
  }
  if (history.status === 'fulfilled' && history.value) {
    charts.update(history.value);
    historyAt = Date.now();
  }

  const failed = [broker, topics, sessionPage, history].find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}

function showHealthy(): void {
  failures = 0;
  stats.lastError = null;
  stats.refreshes += 1;
  banner.hidden = true;
  document.body.classList.remove('stale');
  stateBadge.textContent = 'live';
  stateBadge.className = 'state live';
}

function showFailure(error: unknown): number {
  failures += 1;
  const message = error instanceof Error ? error.message : String(error);
  // Not an ApiError: brookd answered but the console could not show it (a shape it did not expect).
  const unreachable = error instanceof ApiError && error.unreachable;
  const title = unreachable ? 'brookd unreachable'
    : error instanceof ApiError ? 'brookd answered with an error' : 'the console could not show brookd\'s answer';
  const retryMs = Math.min(POLL_MS * 2 ** (failures - 1), MAX_RETRY_MS);
  stats.lastError = message;
  banner.hidden = false;
  banner.classList.toggle('unreachable', unreachable);
  banner.querySelector('strong')!.textContent = title;
  bannerDetail.textContent = `${message} (failed ${failures} time${failures === 1 ? '' : 's'}; retrying in ${retryMs / 1000} s)`;
  document.body.classList.add('stale');
  stateBadge.textContent = unreachable ? 'unreachable' : 'error';
  stateBadge.className = 'state down';
  return retryMs;
}

function schedule(delayMs: number): void {
  clearTimeout(timer);
  timer = setTimeout(async () => {
    let next = POLL_MS;
    polling = true;
    try {
      await refresh();
      showHealthy();
    } catch (error) {
      next = showFailure(error);
    }
    polling = false;
    schedule(next);
  }, delayMs);
}

schedule(0);
