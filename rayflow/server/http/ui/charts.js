// The run page's pictures: a Gantt chart on a canvas (queue wait before each bar, the
// critical path outlined; over MAX_ROWS components the rows aggregate consecutive
// components, so 10,000 stay one quick drawing) and the DAG in SVG (by level; over
// MAX_NODES it aggregates each level into one box with its states).
import { el, shownState } from "./common.js";

export const COLOURS = {
  SUCCEEDED: "#4c78a8", CACHED: "#72b7b2", RUNNING: "#3d8bd9", PENDING: "#a0a7b3",
  QUEUED: "#d5dbe5", FAILED: "#d62728", TIMED_OUT: "#d62728", UPSTREAM_FAILED: "#c9a227", CANCELLED: "#b279a2", SKIPPED: "#bab0ac",
};
const WAIT = "#d5dbe5";
const CRIT = "#e4572e";
const MAX_ROWS = 300;
const MAX_NODES = 250;
const LABEL_W = 170;

export function colour(s) { return COLOURS[s] || "#9d9d9d"; }

// -- Gantt -------------------------------------------------------------------------------------

// Rows of bars: one component each, or consecutive components (in start order) when many.
export function ganttModel(run, comps, critical, now = Date.now() / 1000) {
  const items = [];
  for (const [id, c] of Object.entries(comps)) {
    const s = c.submitted_at ?? c.started_at;
    if (s === null || s === undefined) continue;
    items.push({ id, c, s, b: c.started_at, e: c.ended_at, crit: critical.has(id) });
  }
  items.sort((x, y) => x.s - y.s || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
  let t0 = run.started_at ?? run.created_at;
  let t1 = run.ended_at ?? now;
  for (const it of items) { t0 = Math.min(t0, it.s); t1 = Math.max(t1, it.e ?? now); }
  const per = Math.max(1, Math.ceil(items.length / MAX_ROWS));
  const rows = [];
  for (let i = 0; i < items.length; i += per) rows.push({ first: i, items: items.slice(i, i + per) });
  return { t0, t1: Math.max(t1, t0 + 1e-3), rows, per, n: items.length, now };
}

export function drawGantt(canvas, model, tip, onPick) {
  const rowH = model.per > 1 ? Math.max(3, Math.min(8, Math.floor(900 / Math.max(1, model.rows.length)))) : 16;
  const top = 22;
  const cssW = canvas.parentElement.clientWidth || 900;
  const cssH = top + rowH * model.rows.length + 6;
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(cssW * dpr);
  canvas.height = Math.round(cssH * dpr);
  canvas.style.height = `${cssH}px`;
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, cssW, cssH);
  const plotW = Math.max(50, cssW - LABEL_W - 10);
  const x = (t) => LABEL_W + ((t - model.t0) / (model.t1 - model.t0)) * plotW;
  // the time axis
  g.fillStyle = "#6b7280";
  g.font = "11px system-ui, sans-serif";
  const span = model.t1 - model.t0;
  const step = niceStep(span / 8);
  for (let t = 0; t <= span + 1e-9; t += step) {
    const px = x(model.t0 + t);
    g.fillRect(px, top - 4, 1, 4);
    g.fillText(`${+t.toFixed(3)} s`, px + 2, top - 8);
    g.fillStyle = "#eef1f5";
    g.fillRect(px, top, 1, cssH - top);
    g.fillStyle = "#6b7280";
  }
  const crit = [];
  model.rows.forEach((row, r) => {
    const y = top + r * rowH;
    if (model.per === 1) {
      g.fillStyle = "#1d2330";
      g.fillText(clip(g, row.items[0].id, LABEL_W - 8), 4, y + rowH - 4);
    } else if (r % Math.ceil(20 / rowH * 2) === 0) {
      g.fillStyle = "#6b7280";
      g.fillText(`#${row.first + 1}–${row.first + row.items.length}`, 4, y + Math.min(rowH, 10));
    }
    if (model.per > 1) g.globalAlpha = Math.max(0.25, 1 / Math.sqrt(row.items.length));
    for (const it of row.items) {
      const barY = y + 2;
      const h = Math.max(1, rowH - 4);
      const started = it.b ?? null;
      g.fillStyle = WAIT;                                     // queue wait: submitted -> started
      g.fillRect(x(it.s), barY, Math.max(1, x(started ?? it.e ?? model.now) - x(it.s)), h);
      if (started !== null) {
        g.fillStyle = colour(it.c.state);
        g.fillRect(x(started), barY, Math.max(1, x(it.e ?? model.now) - x(started)), h);
      }
      if (it.crit) crit.push([it, barY, h]);
    }
    g.globalAlpha = 1;
  });
  g.strokeStyle = CRIT;
  g.lineWidth = 2;
  for (const [it, barY, h] of crit) {
    const from = x(it.s);
    g.strokeRect(from, barY, Math.max(2, x(it.e ?? model.now) - from), h);
  }
  canvas.onmousemove = (ev) => {
    const r = Math.floor((ev.offsetY - top) / rowH);
    const row = model.rows[r];
    if (!row) { tip.hidden = true; return; }
    tip.hidden = false;
    tip.style.left = `${ev.clientX + 12}px`;
    tip.style.top = `${ev.clientY + 12}px`;
    tip.textContent = model.per === 1 ? describe(row.items[0]) : summarise(row);
  };
  canvas.onmouseleave = () => { tip.hidden = true; };
  canvas.onclick = (ev) => {
    const row = model.rows[Math.floor((ev.offsetY - top) / rowH)];
    if (!row) return;
    const t = model.t0 + ((ev.offsetX - LABEL_W) / plotW) * (model.t1 - model.t0);
    const hit = row.items.find((it) => it.s <= t && t <= (it.e ?? model.now)) || row.items[0];
    onPick(hit.id);
  };
}

function describe(it) {
  const c = it.c;
  const wait = c.started_at !== null && c.started_at !== undefined ? c.started_at - it.s : null;
  return [`${it.id}${it.crit ? "  (critical path)" : ""}`, `state ${shownState(c)}, attempts ${c.attempts}`,
          wait === null ? "waiting to start" : `queued ${wait.toFixed(3)} s`,
          c.duration_s === null || c.duration_s === undefined ? "" : `ran ${c.duration_s.toFixed(3)} s`].filter(Boolean).join("\n");
}

function summarise(row) {
  const counts = {};
  for (const it of row.items) { const s = shownState(it.c); counts[s] = (counts[s] || 0) + 1; }
  return [`components #${row.first + 1}–${row.first + row.items.length} (by start)`,
          ...Object.entries(counts).map(([s, n]) => `${s}: ${n}`)].join("\n");
}

function niceStep(raw) {
  const p = 10 ** Math.floor(Math.log10(raw || 1));
  for (const m of [1, 2, 5, 10]) if (raw <= m * p) return m * p;
  return 10 * p;
}

function clip(g, text, w) {
  if (g.measureText(text).width <= w) return text;
  let s = text;
  while (s.length > 1 && g.measureText(`${s}…`).width > w) s = s.slice(0, -1);
  return `${s}…`;
}

// -- the DAG -----------------------------------------------------------------------------------

export function levelsOf(comps) {
  const ids = Object.keys(comps);
  const down = new Map(ids.map((id) => [id, []]));
  const missing = new Map(ids.map((id) => [id, 0]));
  for (const id of ids) {
    for (const u of comps[id].upstream || []) {
      if (!down.has(u)) continue;
      down.get(u).push(id);
      missing.set(id, missing.get(id) + 1);
    }
  }
  const level = new Map();
  const queue = ids.filter((id) => missing.get(id) === 0);
  for (const id of queue) level.set(id, 0);
  for (let i = 0; i < queue.length; i++) {
    const id = queue[i];
    for (const d of down.get(id)) {
      level.set(d, Math.max(level.get(d) ?? 0, level.get(id) + 1));
      missing.set(d, missing.get(d) - 1);
      if (missing.get(d) === 0) queue.push(d);
    }
  }
  return level;
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  if (text !== undefined) n.textContent = text;
  return n;
}

export function drawDag(box, comps, critical, onPick) {
  const level = levelsOf(comps);
  const byLevel = [];
  for (const [id, l] of level) (byLevel[l] ||= []).push(id);
  const n = level.size;
  box.replaceChildren();
  if (!n) { box.append(el("p", { class: "muted" }, "No components.")); return; }
  if (n > MAX_NODES) { drawLevels(box, byLevel, comps); return; }
  const W = 160, H = 22, GX = 40, GY = 8;
  const pos = new Map();
  byLevel.forEach((ids, l) => ids.forEach((id, i) => pos.set(id, [l * (W + GX) + 4, i * (H + GY) + 4])));
  const width = byLevel.length * (W + GX);
  const height = Math.max(...byLevel.map((ids) => ids.length)) * (H + GY) + 8;
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, id: "dag-svg" });
  for (const [id, [x, y]] of pos) {
    for (const u of comps[id].upstream || []) {
      if (!pos.has(u)) continue;
      const [ux, uy] = pos.get(u);
      const hot = critical.has(id) && critical.has(u);
      root.append(svg("line", { x1: ux + W, y1: uy + H / 2, x2: x, y2: y + H / 2, stroke: hot ? CRIT : "#b8c0cc",
                                "stroke-width": hot ? 2 : 1 }));
    }
  }
  for (const [id, [x, y]] of pos) {
    const c = comps[id];
    const g = svg("g", { "data-node": id, style: "cursor:pointer" });
    g.append(svg("rect", { x, y, width: W, height: H, rx: 4, fill: colour(shownState(c)),
                           stroke: critical.has(id) ? CRIT : "none", "stroke-width": 2 }));
    g.append(svg("text", { x: x + 6, y: y + 15, fill: "#fff" }, id.length > 22 ? `${id.slice(0, 21)}…` : id));
    g.append(svg("title", {}, `${id}: ${shownState(c)}`));
    g.addEventListener("click", () => onPick(id));
    root.append(g);
  }
  box.append(root);
}

function drawLevels(box, byLevel, comps) {
  const W = 180, H = 46, GX = 40;
  const width = byLevel.length * (W + GX);
  const root = svg("svg", { width, height: H + 30, viewBox: `0 0 ${width} ${H + 30}`, id: "dag-svg" });
  byLevel.forEach((ids, l) => {
    const x = l * (W + GX) + 4;
    if (l > 0) root.append(svg("line", { x1: x - GX, y1: 4 + H / 2, x2: x, y2: 4 + H / 2, stroke: "#b8c0cc" }));
    root.append(svg("rect", { x, y: 4, width: W, height: H, rx: 4, fill: "#fff", stroke: "#b8c0cc" }));
    root.append(svg("text", { x: x + 6, y: 20, fill: "#1d2330" }, `level ${l}: ${ids.length} components`));
    const counts = {};
    for (const id of ids) { const s = shownState(comps[id]); counts[s] = (counts[s] || 0) + 1; }
    let off = 0;
    for (const [s, k] of Object.entries(counts)) {
      const w = (W - 12) * (k / ids.length);
      root.append(svg("rect", { x: x + 6 + off, y: 28, width: Math.max(1, w), height: 12, fill: colour(s) },));
      root.lastChild.append(svg("title", {}, `${s}: ${k}`));
      off += w;
    }
  });
  box.append(el("p", { class: "muted" }, `${byLevel.reduce((a, ids) => a + ids.length, 0)} components: the DAG is drawn by level.`), root);
}
