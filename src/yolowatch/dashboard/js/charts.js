// Every chart on the page comes from here: uPlot (the vendored global that vendor/uplot/uPlot.iife.min.js
// defines), drawn at its box's width and redrawn whenever that box changes width (a window resize, a
// narrower layout), so no caller handles resizing.

const uPlot = globalThis.uPlot;
const MIN_WIDTH_PX = 240;
const PADDING_PX = 10; // the .chart box's padding and border

const widthOf = (box) => Math.max(MIN_WIDTH_PX, box.clientWidth - PADDING_PX);

// A uPlot chart appended to `box`, resized with it.
function plot(box, options, data) {
  const resizes = new ResizeObserver(() => {
    const width = widthOf(box);
    if (box.isConnected && box.clientWidth > 0 && width !== chart.width) chart.setSize({ width, height: options.height });
  });
  const chart = new uPlot({ ...options, width: widthOf(box), hooks: { destroy: [() => resizes.disconnect()] } }, data, box);
  resizes.observe(box);
  return chart;
}

// A line chart appended to `box`.
//   series    [{ label, stroke }], one per y column of `data` ([xs, ...ys])
//   xLabel    null: x is epoch seconds on a time axis; a function: x is a number, labelled by xLabel(x)
//   yRange    [min, max] to fix the y axis; null: fitted to the data
//   points    dot size in px; null: uPlot's own choice (dots only where the data is sparse)
//   stepped   steps instead of lines (histograms)
// Call .destroy() on the answer when the chart goes.
export function lineChart(box, { data, series, height = 120, xLabel = null, yRange = null, points = null, stepped = false, legend = true }) {
  return plot(box, {
    height, legend: { show: legend }, cursor: { drag: { x: false, y: false } },
    scales: { x: { time: !xLabel }, ...(yRange ? { y: { range: yRange } } : {}) },
    series: [
      xLabel ? { value: (u, x) => (x === null ? "–" : xLabel(x)) } : {},
      ...series.map(({ label, stroke }) => ({
        label, stroke, width: 1.5, spanGaps: false,
        ...(points ? { points: { show: true, size: points } } : {}),
        ...(stepped ? { paths: uPlot.paths.stepped({ align: 1 }) } : {}),
      })),
    ],
    axes: [{ size: 30, space: xLabel ? 60 : 80, ...(xLabel ? { values: (u, ticks) => ticks.map(xLabel) } : {}) }, { size: 46 }],
  }, data);
}

// Stacked bars over time: `layers` [{ label, colour, values }], bottom first, each value one bar's share of the
// stack (null counts as 0; a time where every layer is null has no bar). The legend shows each layer's own
// value, formatted by `value`. Call .destroy() on the answer when the chart goes.
export function stackedChart(box, { times, layers, height = 140, value = (v) => String(v) }) {
  const tops = [];
  let below = times.map(() => 0);
  for (const layer of layers) {
    below = below.map((sum, i) => sum + (layer.values[i] ?? 0));
    tops.push(below);
  }
  const empty = times.map((t, i) => layers.every((layer) => layer.values[i] === null || layer.values[i] === undefined));
  // uPlot paints its series in order: the tallest first, so each lower layer paints over the one above it.
  const order = layers.map((layer, k) => k).reverse();
  const bars = uPlot.paths.bars({ size: [0.8, 40] });
  return plot(box, {
    height, cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.05 : 1] } },
    series: [{}, ...order.map((k) => ({
      label: layers[k].label, stroke: layers[k].colour, fill: layers[k].colour, width: 1, paths: bars, points: { show: false },
      value: (u, v, s, i) => (i === null || i === undefined ? "–" : value(layers[k].values[i] ?? null)),
    }))],
    axes: [{ size: 30, space: 80 }, { size: 46 }],
  }, [times, ...order.map((k) => tops[k].map((top, i) => (empty[i] ? null : top)))]);
}
