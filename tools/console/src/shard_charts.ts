// The per-shard charts: busy ratio, publishes/s and deliveries/s over the minutes brookd
// keeps (api/history), one line per shard in the same colour on every chart, with a legend.
import type { History, HistorySample } from './api.js';
import * as format from './format.js';
import { LineChart, type Series } from './line_chart.js';

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2'];

export function shardColor(shard: number): string {
  return COLORS[shard % COLORS.length];
}

interface Metric {
  title: string;
  pick: (s: HistorySample) => number;
  yLabel: (v: number) => string;
  yMax?: number;
}

const METRICS: Metric[] = [
  { title: 'Busy ratio', pick: (s) => s.busy_ratio, yLabel: (v) => `${Math.round(v * 100)}%`, yMax: 1 },
  { title: 'Publishes/s', pick: (s) => s.publishes_per_s, yLabel: format.rate },
  { title: 'Deliveries/s', pick: (s) => s.deliveries_per_s, yLabel: format.rate },
];

export class ShardCharts {
  private readonly charts: { metric: Metric; chart: LineChart }[];
  private shardsShown = '';

  constructor(container: HTMLElement, private readonly legend: HTMLElement) {
    this.charts = METRICS.map((metric) => {
      const canvas = document.createElement('canvas');
      canvas.className = 'chart';
      canvas.setAttribute('role', 'img');
      canvas.setAttribute('aria-label', `${metric.title} per shard`);
      container.append(canvas);
      return { metric, chart: new LineChart(canvas, { title: metric.title, yLabel: metric.yLabel, yMax: metric.yMax }) };
    });
    window.addEventListener('resize', () => this.charts.forEach(({ chart }) => chart.draw()));
  }

  update(history: History): void {
    const gapMs = history.interval_s * 1000 * 2.5;
    for (const { metric, chart } of this.charts) {
      const series: Series[] = history.shards.map(({ shard, samples }) => ({
        label: `shard ${shard}`,
        color: shardColor(shard),
        points: samples.map((s) => [s.t, metric.pick(s)]),
      }));
      chart.draw(series, gapMs);
    }
    this.showLegend(history.shards.map((s) => s.shard));
  }

  private showLegend(shards: number[]): void {
    const key = shards.join(',');
    if (key === this.shardsShown) return;
    this.shardsShown = key;
    this.legend.replaceChildren(...shards.map((shard) => {
      const item = document.createElement('span');
      item.className = 'legend-item';
      item.style.setProperty('--color', shardColor(shard));
      item.textContent = `shard ${shard}`;
      return item;
    }));
  }
}
