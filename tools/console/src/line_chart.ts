// A time-series line chart drawn on a <canvas>: one line per series over a shared time axis,
// a y axis from 0 to a round maximum, and a break in a line where samples are missing. It
// draws at the screen's pixel density and keeps its last data to redraw on resize.

export interface Series {
  label: string;
  color: string;
  points: [t: number, value: number][]; // t in ms, oldest first
}

export interface ChartOptions {
  title: string;
  yLabel: (value: number) => string;
  yMax?: number; // a fixed top (busy ratio: 1); otherwise a round number above the data
}

const MARGIN = { left: 52, right: 10, top: 22, bottom: 20 };
const MIN_SPAN_MS = 60_000;

export class LineChart {
  private series: Series[] = [];
  private gapMs = Infinity;

  constructor(private readonly canvas: HTMLCanvasElement, private readonly options: ChartOptions) {}

  // Draws the series, not joining samples more than `gapMs` apart, and returns how many points
  // it drew (a test reads it from data-points). With no arguments it redraws the last data.
  draw(series: Series[] = this.series, gapMs: number = this.gapMs): number {
    this.series = series;
    this.gapMs = gapMs;
    const ctx = this.context();
    const width = this.canvas.clientWidth;
    const height = this.canvas.clientHeight;
    const plot = { x: MARGIN.left, y: MARGIN.top, w: width - MARGIN.left - MARGIN.right, h: height - MARGIN.top - MARGIN.bottom };

    const times = series.flatMap((s) => s.points.map(([t]) => t));
    const end = times.length ? Math.max(...times) : Date.now();
    const start = Math.min(end - MIN_SPAN_MS, times.length ? Math.min(...times) : end);
    const { top, steps } = this.options.yMax !== undefined ? { top: this.options.yMax, steps: 4 }
      : roundUp(Math.max(0, ...series.flatMap((s) => s.points.map(([, v]) => v))));
    const x = (t: number) => plot.x + ((t - start) / (end - start)) * plot.w;
    const y = (v: number) => plot.y + plot.h - (Math.min(v, top) / top) * plot.h;

    ctx.clearRect(0, 0, width, height);
    ctx.font = '12px system-ui, sans-serif';
    ctx.fillStyle = '#1b1f24';
    ctx.textBaseline = 'alphabetic';
    ctx.textAlign = 'left';
    ctx.fillText(this.options.title, plot.x, 14);
    this.drawGrid(ctx, plot, top, steps, y);
    this.drawTimeAxis(ctx, plot, start, end, x);

    let drawn = 0;
    ctx.lineWidth = 1.5;
    ctx.lineJoin = 'round';
    for (const s of series) {
      ctx.strokeStyle = s.color;
      ctx.beginPath();
      let last: number | undefined;
      for (const [t, v] of s.points) {
        if (last === undefined || t - last > gapMs) ctx.moveTo(x(t), y(v));
        else ctx.lineTo(x(t), y(v));
        last = t;
        drawn += 1;
      }
      ctx.stroke();
    }
    this.canvas.dataset.points = String(drawn);
    return drawn;
  }

  // Sizes the backing store to the element's size times the pixel ratio, so lines are sharp.
  private context(): CanvasRenderingContext2D {
    const ratio = window.devicePixelRatio || 1;
    const w = Math.round(this.canvas.clientWidth * ratio);
    const h = Math.round(this.canvas.clientHeight * ratio);
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    const ctx = this.canvas.getContext('2d')!;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    return ctx;
  }

  private drawGrid(ctx: CanvasRenderingContext2D, plot: Plot, top: number, steps: number, y: (v: number) => number): void {
    ctx.strokeStyle = '#e3e5e8';
    ctx.lineWidth = 1;
    ctx.fillStyle = '#666';
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (let i = 0; i <= steps; i += 1) {
      const v = (top * i) / steps;
      const py = Math.round(y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(plot.x, py);
      ctx.lineTo(plot.x + plot.w, py);
      ctx.stroke();
      ctx.fillText(this.options.yLabel(v), plot.x - 6, py);
    }
  }

  // Labels in minutes before the newest sample ("now"), at a step that leaves room for them.
  private drawTimeAxis(ctx: CanvasRenderingContext2D, plot: Plot, start: number, end: number, x: (t: number) => number): void {
    ctx.fillStyle = '#666';
    ctx.textBaseline = 'alphabetic';
    const spanS = (end - start) / 1000;
    const stepS = [10, 30, 60, 120, 300].find((step) => spanS / step <= 6) ?? 600;
    for (let back = 0; back <= spanS; back += stepS) {
      const px = x(end - back * 1000);
      ctx.textAlign = back === 0 ? 'right' : 'center';
      const label = back === 0 ? 'now' : back < 60 ? `−${back} s` : `−${back / 60} min`;
      ctx.fillText(label, px, plot.y + plot.h + 15);
    }
  }
}

interface Plot {
  x: number;
  y: number;
  w: number;
  h: number;
}

// The smallest of 1, 2, 5 times a power of ten at or above `value` (1 for nothing yet), and
// how many grid steps divide it into round numbers (2 -> 0.5s, 1 and 5 -> fifths).
function roundUp(value: number): { top: number; steps: number } {
  if (value <= 0) return { top: 1, steps: 5 };
  const power = 10 ** Math.floor(Math.log10(value));
  const m = [1, 2, 5, 10].find((m) => m * power >= value) ?? 10;
  return { top: m * power, steps: m === 2 ? 4 : 5 };
}
