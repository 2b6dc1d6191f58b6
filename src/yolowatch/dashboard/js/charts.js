// Every chart on the page comes from here: uPlot (the vendored global that vendor/uplot/uPlot.iife.min.js
// defines), drawn at its box's width and redrawn whenever that box changes width (a window resize, a
// narrower layout), so no caller handles resizing.

const uPlot = globalThis.uPlot;
const MIN_WIDTH_PX = 240;
const PADDING_PX = 10; // the .chart box's padding and border

const widthOf = (box) => Math.max(MIN_WIDTH_PX, box.clientWidth - PADDING_PX);

// A line chart appended to `box`.
//   series    [{ label, stroke }], one per y column of `data` ([xs, ...ys])
//   xLabel    null: x is epoch seconds on a time axis; a function: x is a number, labelled by xLabel(x)
//   yRange    [min, max] to fix the y axis; null: fitted to the data
//   points    dot size in px; null: uPlot's own choice (dots only where the data is sparse)
//   stepped   steps instead of lines (histograms)
// Call .destroy() on the answer when the chart goes.
export function lineChart(box, { data, series, height = 120, xLabel = null, yRange = null, points = null, stepped = false, legend = true }) {
  const resizes = new ResizeObserver(() => {
    const width = widthOf(box);
    if (box.isConnected && box.clientWidth > 0 && width !== chart.width) chart.setSize({ width, height });
  });
  const options = {
    width: widthOf(box), height, legend: { show: legend }, cursor: { drag: { x: false, y: false } },
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
    hooks: { destroy: [() => resizes.disconnect()] },
  };
  const chart = new uPlot(options, data, box);
  resizes.observe(box);
  return chart;
}
