// Numbers and times as the page shows them; a missing value is "–".

const TIME_FORMAT = { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" };
const missing = (x) => x === null || x === undefined;

export function fmtCount(n) { return missing(n) ? "–" : Number(n).toLocaleString("en-US"); }
export function fmtMs(ms) { return missing(ms) ? "–" : `${ms >= 100 ? Math.round(ms) : ms.toFixed(1)} ms`; }
export function fmtPct(rate) { return missing(rate) ? "–" : `${(rate * 100).toFixed(rate >= 0.1 ? 1 : 2)}%`; }
export function fmtFixed(x, digits) { return missing(x) ? "–" : x.toFixed(digits); }
export function fmtP(p) { return p >= 0.001 ? p.toFixed(3) : p.toExponential(1); }
export function fmtTime(epochS) { return epochS ? fmtTimeMs(epochS * 1000) : "–"; }
export function fmtTimeMs(epochMs) { return new Date(epochMs).toLocaleString([], TIME_FORMAT); }

export function fmtDuration(s) {
  if (missing(s)) return "–";
  for (const [unit, size] of [["w", 604800], ["d", 86400], ["h", 3600], ["m", 60]]) if (s >= size && s % size === 0) return `${s / size}${unit}`;
  return `${s}s`;
}

export function fmtValue(v) {
  if (missing(v)) return "–";
  if (Math.abs(v) >= 100) return v.toFixed(0);
  return Math.abs(v) >= 0.001 || v === 0 ? v.toPrecision(3) : v.toExponential(1);
}

// Bytes as MiB below 1 GiB, GiB from there (memory figures).
export function fmtBytes(bytes) {
  if (missing(bytes)) return "–";
  const mib = bytes / 2 ** 20;
  return mib >= 1024 ? `${(mib / 1024).toFixed(2)} GiB` : `${mib >= 100 ? mib.toFixed(0) : mib.toFixed(1)} MiB`;
}
