// The betting page: connects to Brook over WebSocket (the page's own origin, or ?ws=URL),
// subscribes to the demo's NFL odds and shows each change as it comes, with the connection's
// state. It also keeps count, per match, of the topic sequence numbers it has seen, and
// exposes that as `window.brookPage`: a browser test reads it to check that every update
// arrived in order, through a dropped connection too.
import { connect } from '@brook/client';
import { OddsTable, type Odds } from './odds_table.js';

interface PageStats {
  state: string;
  updates: number;
  gaps: number;       // updates the client flagged as following a hole (resync)
  outOfOrder: number; // a topic sequence that was not the one after the last
  reconnects: number;
  lastSeq: Record<string, number>;
  error?: string;
}

declare global {
  interface Window {
    brookPage: PageStats;
  }
}

const stats: PageStats = { state: 'connecting', updates: 0, gaps: 0, outOfOrder: 0, reconnects: 0, lastSeq: {} };
window.brookPage = stats;

const stateBadge = document.getElementById('state')!;
const footer = document.getElementById('stats')!;
const table = new OddsTable(
  document.querySelector('#odds tbody') as HTMLTableSectionElement,
  document.getElementById('empty')!,
);

function showState(state: string, detail?: string): void {
  if (stats.state === 'reconnecting' && state === 'connected') stats.reconnects += 1;
  stats.state = state;
  stateBadge.textContent = detail ? `${state}: ${detail}` : state;
  stateBadge.className = `state ${state}`;
}

function showStats(): void {
  footer.textContent =
    `${stats.updates} updates, ${table.size} matches, ${stats.reconnects} reconnections, ` +
    `${stats.gaps} gaps, ${stats.outOfOrder} out of order`;
}

function brokerUrl(): string {
  const asked = new URLSearchParams(location.search).get('ws');
  if (asked) return asked;
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`;
}

async function main(): Promise<void> {
  const client = await connect({
    url: brokerUrl(),
    clientName: 'betting-page',
    reconnectTimeout: 60_000,
  });
  client.on('state', (state: string, detail?: string) => showState(state, detail));
  showState(client.state);
  await client.subscribe('Distribution/Football/NFL//', (update) => {
    const seq = Number(update.topicSeq);
    const last = stats.lastSeq[update.path];
    if (update.gap) stats.gaps += 1;
    else if (last !== undefined && seq !== last + 1) stats.outOfOrder += 1;
    stats.lastSeq[update.path] = seq;
    stats.updates += 1;
    table.show(update.path, update.json() as Odds);
    showStats();
  });
}

main().catch((error: unknown) => {
  stats.error = String(error);
  showState('closed', String(error));
});
