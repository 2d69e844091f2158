// The header's view of the broker (api/broker): its version, uptime and readiness beside the
// title, tiles for the rates and the main totals, and every counter brookd reports (new ones
// included, by name) in a list that opens on demand.
import type { BrokerInfo } from './api.js';
import * as format from './format.js';

export class BrokerSummary {
  constructor(
    private readonly identity: HTMLElement,
    private readonly tiles: HTMLElement,
    private readonly counters: HTMLElement,
  ) {}

  update(b: BrokerInfo): void {
    this.identity.textContent =
      `${b.version} · up ${format.duration(b.uptime_s)} · ${b.shard_count} shard${b.shard_count === 1 ? '' : 's'}` +
      (b.ready ? '' : ' · not ready');
    const r = b.rates;
    const t = b.totals;
    fill(this.tiles, [
      ['publishes/s', format.rate(r.publishes_per_s ?? 0)],
      ['deliveries/s', format.rate(r.deliveries_per_s ?? 0)],
      ['in/s', format.bytes(Math.round(r.bytes_in_per_s ?? 0))],
      ['out/s', format.bytes(Math.round(r.bytes_out_per_s ?? 0))],
      ['connections', format.count(t.connections ?? 0)],
      ['sessions', format.count(t.sessions ?? 0)],
      ['topics', format.count(t.topics ?? 0)],
      ['subscriptions', format.count(t.subscriptions ?? 0)],
    ]);
    const listeners = Object.entries(b.listeners).filter(([, address]) => address !== '');
    fill(this.counters, [
      ...Object.entries(t).map(([name, value]): [string, string] => [name.replaceAll('_', ' '), format.count(value)]),
      ...listeners.map(([kind, address]): [string, string] => [`${kind} listener`, address]),
    ]);
  }
}

function fill(list: HTMLElement, entries: [string, string][]): void {
  list.replaceChildren(...entries.map(([name, value]) => {
    const item = document.createElement('div');
    const dt = document.createElement('dt');
    dt.textContent = name;
    const dd = document.createElement('dd');
    dd.textContent = value;
    item.append(dt, dd);
    return item;
  }));
}
