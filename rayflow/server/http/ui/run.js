// A run's page: its state and the buttons its caller's scope allows (cancel, resume,
// retry the failed part), metrics, the Gantt chart, the DAG, the component table (a page
// at a time) and one component's attempts, error and log, followed live while it runs.
import { COLOURS, drawDag, drawGantt, ganttModel } from "./charts.js";
import { api, canAct, el, every, fmtBytes, fmtS, fmtTime, nodeLink, shownState, stateBadge } from "./common.js";

const LIVE = new Set(["PENDING", "RUNNING"]);
const LIVE_COMPONENT = new Set(["PENDING", "RUNNING"]);
const PAGE = 50;
const POLL_MS = 2000;
const LOG_MS = 1500;

export async function runPage(main, runId) {
  const base = `/v1/runs/${encodeURIComponent(runId)}`;
  const view = { run: null, table: { page: 0, state: "", search: "" }, selected: null, attempt: null, logTimer: null,
                 detailKey: null, watchUntil: 0 };
  const detailKey = () => {
    const c = view.selected && view.run.components[view.selected];
    return c ? `${view.selected}|${shownState(c)}|${c.attempts}|${view.attempt}|${view.run.status}` : null;
  };
  const head = el("div", { id: "run-head" });
  const actions = el("div", { class: "row", id: "actions" });
  const actionError = el("div", { class: "field-error", id: "action-error", role: "alert" });
  const metrics = el("div", { class: "panel", id: "metrics" });
  const canvas = el("canvas", { id: "gantt" });
  const tip = el("div", { id: "gantt-tip", hidden: true });
  const dag = el("div", { id: "dag", style: "overflow:auto" });
  const tableBox = el("div", { id: "components" });
  const detail = el("div", { class: "panel", id: "component-detail", hidden: true });
  const legend = el("div", { class: "legend" }, el("span", {}, el("i", { style: "background:#d5dbe5" }), "queue wait"),
    ...["SUCCEEDED", "RUNNING", "FAILED", "CACHED", "CANCELLED"].map((s) => el("span", {}, el("i", { style: `background:${COLOURS[s]}` }), s.toLowerCase())),
    el("span", {}, el("i", { style: "background:#fff;border:2px solid #e4572e" }), "critical path"));
  main.replaceChildren(head, actions, actionError, metrics,
    el("h2", {}, "Timeline"), legend, el("div", {}, canvas), tip,
    el("h2", {}, "DAG"), dag, el("h2", {}, "Components"), tableBox, detail);

  const pick = (id) => { view.selected = id; view.attempt = null; drawTable(); drawDetail(); };

  function drawHead() {
    const r = view.run;
    head.replaceChildren(
      el("h1", {}, "Run ", el("span", { id: "run-id" }, r.run_id), " ", el("span", { id: "run-status", "data-status": r.status }, stateBadge(r.status)),
         r.cancel_requested && LIVE.has(r.status) ? el("span", { class: "muted" }, " cancelling…") : ""),
      el("dl", { class: "kv" },
        el("dt", {}, "workflow"), el("dd", {}, r.name),
        el("dt", {}, "target"), el("dd", {}, r.target || ""),
        el("dt", {}, "inputs"), el("dd", {}, JSON.stringify(r.inputs || {})),
        el("dt", {}, "created"), el("dd", {}, fmtTime(r.created_at)),
        el("dt", {}, "started / ended"), el("dd", {}, `${fmtTime(r.started_at)} — ${fmtTime(r.ended_at)}`),
        el("dt", {}, "driven by"), el("dd", {}, r.owner || "nobody (queued)"),
        r.error ? [el("dt", {}, "error"), el("dd", { class: "bad", id: "run-error" }, r.error)] : []));
    actions.replaceChildren();
    if (canAct("submit")) {
      if (LIVE.has(r.status)) actions.append(button("btn-cancel", "Cancel", "cancel", "danger"));
      if (r.status === "FAILED" || r.status === "CANCELLED") {
        actions.append(button("btn-retry", "Retry the failed part", "retry", "primary"));
        actions.append(button("btn-resume", "Resume", "resume", ""));
      }
    }
    actions.append(el("button", { type: "button", id: "btn-report", onclick: openReport }, "Download report"));
  }

  function button(id, label, verb, cls) {
    return el("button", { type: "button", id, class: cls, onclick: async (ev) => {
      ev.target.disabled = true;
      actionError.textContent = "";
      try { await api(`${base}/${verb}`, { method: "POST" }); view.watchUntil = Date.now() + 15000; await refresh(); }
      catch (e) { actionError.textContent = `${verb}: ${e.message}`; ev.target.disabled = false; }
    } }, label);
  }

  async function openReport() {   // a download: the report is a page of its own, with its own scripts
    const html = await api(`${base}/report`, { text: true });
    const a = el("a", { href: URL.createObjectURL(new Blob([html], { type: "text/html" })), download: `${view.run.run_id}.html` });
    document.body.append(a);
    a.click();
    a.remove();
  }

  function drawMetrics() {
    const m = view.run.metrics || {};
    const q = m.queue_wait_s || {};
    const d = m.duration_s || {};
    const counts = Object.entries(m.counts || {}).map(([s, n]) => el("span", { class: "counts" }, stateBadge(s), ` ${n} `));
    metrics.replaceChildren(el("dl", { class: "kv" },
      el("dt", {}, "components"), el("dd", {}, counts),
      el("dt", {}, "wall"), el("dd", { "data-metric": "wall_s" }, fmtS(m.wall_s)),
      el("dt", {}, "critical path"), el("dd", { "data-metric": "critical_path_s" }, `${fmtS(m.critical_path_s)} through ${(m.critical_path || []).length} components`),
      el("dt", {}, "queue wait p50 / p95"), el("dd", {}, `${fmtS(q.p50) || "–"} / ${fmtS(q.p95) || "–"}`),
      el("dt", {}, "duration p50 / p95"), el("dd", {}, `${fmtS(d.p50) || "–"} / ${fmtS(d.p95) || "–"}`),
      el("dt", {}, "throughput"), el("dd", {}, `${(m.throughput_cps || 0).toFixed(1)} components/s`),
      el("dt", {}, "attempts (retries)"), el("dd", {}, `${m.attempts ?? 0} (${m.retries ?? 0})`),
      el("dt", {}, "CPU time / peak memory"), el("dd", {}, `${fmtS(m.cpu_s) || "–"} / ${fmtBytes(m.peak_rss_bytes) || "–"}`)));
  }

  function drawCharts() {
    const r = view.run;
    const critical = new Set((r.metrics && r.metrics.critical_path) || []);
    drawGantt(canvas, ganttModel(r, r.components, critical), tip, pick);
    drawDag(dag, r.components, critical, pick);
  }

  function drawTable() {
    const comps = view.run.components;
    const t = view.table;
    const states = [...new Set(Object.values(comps).map(shownState))].sort();
    const matching = Object.entries(comps).filter(([id, c]) => (!t.state || shownState(c) === t.state) && (!t.search || id.includes(t.search)));
    const pages = Math.max(1, Math.ceil(matching.length / PAGE));
    t.page = Math.min(t.page, pages - 1);
    const shown = matching.slice(t.page * PAGE, (t.page + 1) * PAGE);
    const filter = el("select", { id: "comp-filter-state" }, el("option", { value: "" }, "any state"),
      states.map((s) => el("option", { value: s, selected: s === t.state }, s)));
    filter.addEventListener("change", () => { t.state = filter.value; t.page = 0; drawTable(); });
    const search = el("input", { id: "comp-search", placeholder: "component id contains", value: t.search });
    search.addEventListener("change", () => { t.search = search.value.trim(); t.page = 0; drawTable(); });
    const prev = el("button", { id: "comp-prev", type: "button", disabled: t.page === 0, onclick: () => { t.page--; drawTable(); } }, "‹");
    const next = el("button", { id: "comp-next", type: "button", disabled: t.page >= pages - 1, onclick: () => { t.page++; drawTable(); } }, "›");
    const rows = shown.map(([id, c]) => el("tr", { class: `clickable${id === view.selected ? " selected" : ""}`, "data-component-id": id, onclick: () => pick(id) },
      el("td", {}, id), el("td", {}, stateBadge(shownState(c))), el("td", { class: "num" }, c.attempts),
      el("td", { class: "num" }, c.started_at && c.submitted_at ? fmtS(c.started_at - c.submitted_at) : fmtS(c.queued_s)),
      el("td", { class: "num" }, fmtS(c.duration_s)), el("td", {}, c.node_id ? c.node_id.slice(0, 12) : ""),
      el("td", { class: "bad" }, (c.error || "").split("\n")[0])));
    tableBox.replaceChildren(el("div", { class: "row" }, filter, search, prev,
      el("span", { id: "comp-info", class: "muted" }, `page ${t.page + 1} of ${pages} · ${matching.length} components`), next),
      el("table", { id: "components-table" }, el("thead", {}, el("tr", {},
        ["Component", "State", "Attempts", "Queued", "Ran", "Node", "Error"].map((h) => el("th", {}, h)))), el("tbody", {}, rows)));
  }

  function drawDetail() {
    clearInterval(view.logTimer);
    view.logTimer = null;
    view.detailKey = detailKey();
    const id = view.selected;
    const c = id && view.run.components[id];
    if (!c) { detail.hidden = true; return; }
    detail.hidden = false;
    const attempts = Math.max(1, c.attempts || 0);
    const attempt = view.attempt ?? attempts;
    const select = el("select", { id: "attempt-select" },
      Array.from({ length: attempts }, (_, i) => el("option", { value: i + 1, selected: i + 1 === attempt }, `attempt ${i + 1}`)));
    select.addEventListener("change", () => { view.attempt = Number(select.value); drawDetail(); });
    const log = el("pre", { id: "log" }, "loading…");
    const live = LIVE_COMPONENT.has(c.state) && LIVE.has(view.run.status) && attempt === attempts;
    detail.replaceChildren(
      el("h2", {}, "Component ", el("span", { id: "detail-id" }, id), " ", stateBadge(shownState(c))),
      el("dl", { class: "kv" },
        el("dt", {}, "attempts"), el("dd", {}, attempts),
        el("dt", {}, "upstream"), el("dd", {}, (c.upstream || []).join(", ") || "none"),
        el("dt", {}, "submitted / started / ended"), el("dd", {}, `${fmtTime(c.submitted_at)} / ${fmtTime(c.started_at)} / ${fmtTime(c.ended_at)}`),
        el("dt", {}, "node / worker"), el("dd", {}, `${c.node_id || "–"} / ${c.worker_id || "–"}`,
          nodeLink(c.node_id) ? [" · ", el("a", { href: nodeLink(c.node_id), target: "_blank", rel: "noopener", id: "node-link" },
                                      "the node in the Ray dashboard")] : ""),
        el("dt", {}, "cached"), el("dd", {}, c.cached ? "yes" : "no")),
      c.error ? el("pre", { class: "error", id: "component-error" }, c.traceback ? `${c.error}\n\n${c.traceback}` : c.error) : "",
      el("div", { class: "row" }, select, el("span", { id: "log-follow", class: "muted" }, live ? "following live" : "")),
      log);
    const load = async () => {
      try {
        const text = await api(`${base}/components/${encodeURIComponent(id)}/logs?attempt=${attempt}`, { text: true });
        const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
        log.textContent = text || "(this attempt printed nothing)";
        if (atEnd) log.scrollTop = log.scrollHeight;
      } catch (e) { log.textContent = e.status === 404 ? "(no log for this attempt yet)" : e.message; }
    };
    load();
    if (live) view.logTimer = setInterval(load, LOG_MS);
  }

  async function refresh() {
    view.run = await api(`${base}?metrics=summary`);   // the components once (not again inside metrics)
    drawHead();
    drawMetrics();
    drawCharts();
    drawTable();
    if (view.selected && detailKey() !== view.detailKey) drawDetail();   // only when the component changed
  }
  await refresh();
  every(POLL_MS, async () => {   // while the run is live, and a while after a button was pressed
    if (document.hidden || (!LIVE.has(view.run.status) && Date.now() > view.watchUntil)) return;
    try { await refresh(); } catch (_) { /* the next poll tries again */ }
  });
  window.addEventListener("hashchange", () => clearInterval(view.logTimer), { once: true });
}
