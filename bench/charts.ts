/**
 * Charts of the comparison report: Vega-Lite specs compiled to Vega, rendered to
 * SVG by Vega's headless view (no canvas), rasterised to PNG by resvg (a prebuilt
 * binary from npm, no install script). When rasterising fails the SVG is kept.
 */
import fs from 'node:fs';
import * as vega from 'vega';
import { compile } from 'vega-lite';
import type { TopLevelSpec } from 'vega-lite';

/** One bar: `group` on the x axis (a workload), `series` the colour (a system). */
export interface BarPoint {
  group: string;
  series: string;
  value: number;
}

/** One latency point: `series` (a system) at percentile `percentile` ('p50', …). */
export interface LatencyPoint {
  series: string;
  percentile: string;
  ms: number;
}

/** Where a chart went: the PNG, or the SVG and why there is no PNG. */
export interface ChartFile {
  file: string;
  note?: string;
}

const FONT = 'DejaVu Sans';

async function render(spec: TopLevelSpec, fileBase: string): Promise<ChartFile> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  try {
    const { Resvg } = await import('@resvg/resvg-js');
    const png = new Resvg(svg, { background: 'white', fitTo: { mode: 'zoom', value: 2 }, font: { loadSystemFonts: true, defaultFontFamily: FONT } }).render().asPng();
    fs.writeFileSync(`${fileBase}.png`, png);
    return { file: `${fileBase}.png` };
  } catch (err) {
    fs.writeFileSync(`${fileBase}.svg`, svg);
    return { file: `${fileBase}.svg`, note: `PNG rasterising failed (${(err as Error).message}); SVG written instead` };
  }
}

const config = { font: FONT, axis: { labelFontSize: 11, titleFontSize: 12 }, legend: { labelFontSize: 11 }, title: { fontSize: 14 } };

/** Grouped bars: one group per `group`, one bar per `series`; `seriesOrder` fixes each series' colour across charts. */
export function barChart(points: BarPoint[], title: string, yTitle: string, fileBase: string, seriesOrder?: readonly string[]): Promise<ChartFile> {
  return render(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title,
      config,
      data: { values: points },
      mark: { type: 'bar', tooltip: false },
      width: { step: 22 },
      height: 260,
      encoding: {
        x: { field: 'group', type: 'nominal', title: null, axis: { labelAngle: 0 } },
        xOffset: { field: 'series', type: 'nominal' },
        y: { field: 'value', type: 'quantitative', title: yTitle },
        color: { field: 'series', type: 'nominal', title: 'system', ...colourScale(seriesOrder) },
      },
    },
    fileBase,
  );
}

function colourScale(seriesOrder: readonly string[] | undefined): { scale?: { domain: string[] }; sort?: string[] } {
  return seriesOrder === undefined ? {} : { scale: { domain: [...seriesOrder] }, sort: [...seriesOrder] };
}

/** Lines of latency against percentile, one per `series`, on a log scale; `seriesOrder` as for barChart. */
export function latencyChart(points: LatencyPoint[], percentiles: string[], title: string, fileBase: string, seriesOrder?: readonly string[]): Promise<ChartFile> {
  return render(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title,
      config,
      data: { values: points.filter((p) => Number.isFinite(p.ms) && p.ms > 0) },
      mark: { type: 'line', point: true },
      width: 420,
      height: 260,
      encoding: {
        x: { field: 'percentile', type: 'ordinal', sort: percentiles, title: 'percentile', axis: { labelAngle: 0 } },
        y: { field: 'ms', type: 'quantitative', scale: { type: 'log' }, title: 'latency, ms (log scale)' },
        color: { field: 'series', type: 'nominal', title: 'system', ...colourScale(seriesOrder) },
      },
    },
    fileBase,
  );
}
