// The fleet's world map, drawn as SVG from the vendored Natural Earth land (vendor/world-atlas, TopoJSON),
// with no library: the TopoJSON is decoded here, projected equirectangular, and every pin's text goes in as
// text (a <title> node), never as markup. Only SVG attributes are set (the page's CSP allows no inline style).

const SVG = "http://www.w3.org/2000/svg";
const LAND_URL = new URL("../vendor/world-atlas/land-110m.json", import.meta.url);
// The map shows latitudes 84 N to 58 S: no cloud region lies further south, and the land above is Greenland's.
const NORTH = 84, SOUTH = -58;
export const WIDTH = 360, HEIGHT = NORTH - SOUTH;
const MIN_RADIUS = 1.6, MAX_RADIUS = 6; // in map units (degrees)

let landRequest = null;

// The land topology, fetched once (same origin); null if it cannot be had (the pins are drawn anyway).
export function loadLand() {
  landRequest ??= fetch(LAND_URL, { cache: "force-cache" }).then((r) => (r.ok ? r.json() : null)).catch(() => null);
  return landRequest;
}

// TopoJSON -> rings of [longitude, latitude]: arcs are delta-encoded integers, scaled and translated by the
// topology's transform; a ring lists arc indices, ~i meaning arc i reversed, each arc starting where the last ended.
export function landRings(topology) {
  const { scale: [sx, sy], translate: [tx, ty] } = topology.transform;
  const arcs = topology.arcs.map((arc) => {
    let x = 0, y = 0;
    return arc.map(([dx, dy]) => { x += dx; y += dy; return [x * sx + tx, y * sy + ty]; });
  });
  const ring = (indices) => {
    const points = [];
    for (const index of indices) {
      const arc = index < 0 ? arcs[~index].slice().reverse() : arcs[index];
      points.push(...(points.length ? arc.slice(1) : arc));
    }
    return points;
  };
  const rings = [];
  const collect = (geometry) => {
    if (geometry.type === "GeometryCollection") geometry.geometries.forEach(collect);
    else if (geometry.type === "Polygon") rings.push(...geometry.arcs.map(ring));
    else if (geometry.type === "MultiPolygon") for (const polygon of geometry.arcs) rings.push(...polygon.map(ring));
  };
  Object.values(topology.objects).forEach(collect);
  return rings;
}

const project = (longitude, latitude) => [longitude + 180, NORTH - latitude];
const fixed = (n) => Math.round(n * 100) / 100;

// One ring as path data. A ring that crosses the antimeridian (Chukotka, Fiji) is unwrapped into one piece
// past ±180 and drawn a second time 360° over; the map's edges cut both copies. One that circles a pole
// (Antarctica) is closed along the pole.
function ringPath(points) {
  const unwrapped = [];
  let shift = 0;
  for (let i = 0; i < points.length; i++) {
    if (i > 0) {
      const jump = points[i][0] - points[i - 1][0];
      if (jump > 180) shift -= 360; else if (jump < -180) shift += 360;
    }
    unwrapped.push([points[i][0] + shift, points[i][1]]);
  }
  if (shift !== 0) { // the last point is a whole turn from the first: around a pole
    const pole = unwrapped.reduce((sum, p) => sum + p[1], 0) < 0 ? -90 : 90;
    unwrapped.push([unwrapped[unwrapped.length - 1][0], pole], [unwrapped[0][0], pole]);
  }
  const lons = unwrapped.map((p) => p[0]);
  const offsets = [0];
  if (Math.max(...lons) > 180) offsets.push(-360);
  if (Math.min(...lons) < -180) offsets.push(360);
  return offsets.map((offset) => "M" + unwrapped.map(([lon, lat]) => project(lon + offset, lat).map(fixed).join(",")).join("L") + "Z").join("");
}

function svgNode(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) if (value !== undefined && value !== null) node.setAttribute(name, value);
  for (const child of children) if (child) node.append(child);
  return node;
}

const decoded = new WeakMap(); // topology -> its land as one path's data

function landPath(topology) {
  if (!decoded.has(topology)) decoded.set(topology, landRings(topology).map(ringPath).join(""));
  return decoded.get(topology);
}

function graticule() {
  const lines = [];
  for (let lon = -150; lon <= 150; lon += 30) lines.push(`M${lon + 180},0V${HEIGHT}`);
  for (let lat = -30; lat <= 60; lat += 30) lines.push(`M0,${NORTH - lat}H${WIDTH}`);
  return svgNode("path", { class: "graticule", d: lines.join("") });
}

// Draws the map into `container` (replacing what it held) and answers the <svg>.
//   land   the TopoJSON topology (loadLand()), or null for pins on an empty map
//   pins   [{ name, latitude, longitude, healthy, weight /* 0..1 */, title }]: a circle each, its area growing
//          with weight, class "pin healthy" or "pin unhealthy"; title is the tooltip (as text)
export function drawWorldMap(container, land, pins) {
  const svg = svgNode("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "worldmap", role: "img", "aria-label": "Fleet regions on a world map" });
  svg.append(svgNode("rect", { class: "ocean", width: WIDTH, height: HEIGHT }), graticule());
  if (land) svg.append(svgNode("path", { class: "land", "fill-rule": "evenodd", d: landPath(land) }));
  const layer = svgNode("g", { class: "pins" });
  // The largest first, so a small pin near a large one stays on top, where it can be pointed at.
  const ordered = [...pins].sort((a, b) => (b.weight || 0) - (a.weight || 0));
  for (const pin of ordered) {
    if (!Number.isFinite(pin.latitude) || !Number.isFinite(pin.longitude)) continue;
    const weight = Math.min(1, Math.max(0, Number(pin.weight) || 0));
    const [x, y] = project(pin.longitude, pin.latitude);
    const title = svgNode("title");
    title.textContent = pin.title ?? pin.name;
    layer.append(svgNode("circle", {
      class: `pin ${pin.healthy ? "healthy" : "unhealthy"}`, "data-region": pin.name,
      cx: fixed(x), cy: fixed(y), r: fixed(MIN_RADIUS + (MAX_RADIUS - MIN_RADIUS) * Math.sqrt(weight)),
    }, title));
  }
  svg.append(layer);
  container.replaceChildren(svg);
  return svg;
}
