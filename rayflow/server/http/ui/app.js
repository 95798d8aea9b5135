// rayflow's web UI: a page per hash route (#/runs, #/run/ID, #/workflows, #/cluster) over the
// server's HTTP API. No build step, no dependency: the assets ship inside the package.
// Every value from the server reaches the page as text (el() sets textContent), never as HTML.
import { TOKEN_KEY, api, banner, canAct, el, every, fmtBytes, fmtS, fmtTime, nodeLink, query, state, stateBadge } from "./common.js";
import { runPage } from "./run.js";


// -- the caller --------------------------------------------------------------------------------

async function loadCaller() {
  try {
    state.caller = await api("/v1/whoami");
    banner("");
    try { state.dashboard = (await api("/v1/cluster")).ray.dashboard_url || null; } catch (_) { state.dashboard = null; }
  } catch (e) {
    state.caller = null;
  }
  const who = document.getElementById("who");
  who.textContent = state.caller ? `${state.caller.id} · ${state.caller.scope}` : "no access";
  who.dataset.scope = state.caller ? state.caller.scope : "";
}

function setupToken() {
  const form = document.getElementById("token-form");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const input = document.getElementById("token-input");
    if (input.value.trim()) sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    input.value = "";
    await loadCaller();
    route();
  });
  document.getElementById("token-clear").addEventListener("click", async () => {
    sessionStorage.removeItem(TOKEN_KEY);
    await loadCaller();
    route();
  });
}

// -- runs --------------------------------------------------------------------------------------

const RUN_STATES = ["PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"];
const SINCE = { "": "any time", "3600": "last hour", "86400": "last 24 h", "604800": "last 7 days" };
const PAGE = 50;

async function runsPage(main, params) {
  const filters = { status: params.get("status") || "", workflow: params.get("workflow") || "",
                    since: params.get("since") || "" };
  const cursors = [null];   // the cursor of each page shown so far
  let page = 0;
  const counts = el("div", { class: "counts", id: "counts" });
  const tbody = el("tbody");
  const info = el("span", { class: "muted", id: "runs-info" });
  const prev = el("button", { id: "runs-prev", type: "button" }, "‹ Newer");
  const next = el("button", { id: "runs-next", type: "button" }, "Older ›");
  const status = el("select", { id: "filter-status" }, el("option", { value: "" }, "any state"),
                    RUN_STATES.map((s) => el("option", { value: s, selected: s === filters.status }, s)));
  const workflow = el("input", { id: "filter-workflow", placeholder: "workflow", value: filters.workflow });
  const since = el("select", { id: "filter-since" },
                   Object.entries(SINCE).map(([v, t]) => el("option", { value: v, selected: v === filters.since }, t)));
  const apply = () => {
    const q = query({ status: status.value, workflow: workflow.value.trim(), since: since.value });
    location.hash = `#/runs${q}`;
  };
  status.addEventListener("change", apply);
  since.addEventListener("change", apply);
  workflow.addEventListener("change", apply);
  main.replaceChildren(
    el("h1", {}, "Runs"), counts,
    el("div", { class: "row" }, status, workflow, since, prev, next, info),
    el("table", { id: "runs-table" },
       el("thead", {}, el("tr", {}, ["Run", "Workflow", "State", "Created", "Duration", "Components", "Error"]
         .map((h) => el("th", {}, h)))), tbody));

  const sinceTs = () => (filters.since ? Date.now() / 1000 - Number(filters.since) : null);
  async function load() {
    const q = { status: filters.status, workflow: filters.workflow, since: sinceTs(), limit: PAGE,
                cursor: cursors[page] };
    const [list, n] = await Promise.all([api(`/v1/runs${query(q)}`),
                                         api(`/v1/counts${query({ workflow: filters.workflow, since: sinceTs() })}`)]);
    counts.replaceChildren(el("span", {}, "total ", el("b", { "data-count": "total" }, n.total)),
      ...RUN_STATES.filter((s) => n.runs[s]).map((s) =>
        el("span", {}, stateBadge(s), " ", el("b", { "data-count": s }, n.runs[s]))));
    cursors[page + 1] = list.next_cursor;
    prev.disabled = page === 0;
    next.disabled = !list.next_cursor;
    info.textContent = `page ${page + 1}`;
    const now = Date.now() / 1000;
    tbody.replaceChildren(...list.runs.map((r) => el("tr", {
      class: "clickable", "data-run-id": r.run_id, onclick: () => { location.hash = `#/run/${encodeURIComponent(r.run_id)}`; },
    }, el("td", {}, el("a", { href: `#/run/${encodeURIComponent(r.run_id)}` }, r.run_id)),
       el("td", {}, r.name), el("td", {}, stateBadge(r.status)), el("td", {}, fmtTime(r.created_at)),
       el("td", { class: "num" }, r.started_at ? fmtS((r.ended_at || now) - r.started_at) : ""),
       el("td", { class: "num" }, r.n_components), el("td", { class: "bad" }, (r.error || "").split("\n")[0]))));
    if (!list.runs.length) tbody.append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No runs match.")));
  }
  prev.addEventListener("click", () => { if (page > 0) { page--; load(); } });
  next.addEventListener("click", () => { if (cursors[page + 1]) { page++; load(); } });
  await load();
  every(3000, () => { if (page === 0 && !document.hidden) load().catch(() => {}); });
}

// -- workflows ---------------------------------------------------------------------------------

function kindOf(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return "list";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;   // string, boolean, object
}

// An input's text as the type of its default; {ok, value} or {ok: false, error}.
export function parseInput(name, text, dflt) {
  const kind = kindOf(dflt);
  const bad = (what) => ({ ok: false, error: `input '${name}': expected ${what}, got ${JSON.stringify(text)}` });
  if (kind === "string") return { ok: true, value: text };
  if (kind === "integer") return /^-?\d+$/.test(text.trim()) ? { ok: true, value: Number(text) } : bad("an integer");
  if (kind === "number") {
    const n = Number(text);
    return text.trim() !== "" && Number.isFinite(n) ? { ok: true, value: n } : bad("a number");
  }
  if (kind === "boolean") {
    if (["true", "false"].includes(text.trim())) return { ok: true, value: text.trim() === "true" };
    return bad("true or false");
  }
  try {
    const value = JSON.parse(text);
    if (kind === "null" || kindOf(value) === kind) return { ok: true, value };
    return bad(`JSON of a ${kind}`);
  } catch (_) {
    return bad(kind === "null" ? "JSON" : `JSON of a ${kind}`);
  }
}

async function workflowsPage(main, params) {
  const { workflows } = await api("/v1/workflows");
  const chosen = params.get("start");
  const tbody = el("tbody", {}, workflows.map((w) => el("tr", { "data-workflow": w.name },
    el("td", {}, w.name),
    el("td", {}, w.target || `spec: ${(w.spec.components || []).length} components`),
    el("td", {}, Object.keys(w.spec.inputs || {}).join(", ")),
    el("td", {}, fmtTime(w.updated_at)),
    el("td", {}, canAct("submit")
      ? el("button", { type: "button", "data-start": w.name, onclick: () => { location.hash = `#/workflows${query({ start: w.name })}`; } }, "Start…")
      : ""))));
  if (!workflows.length) tbody.append(el("tr", {}, el("td", { colspan: 5, class: "muted" },
    "No workflows registered (POST /v1/workflows with an admin token).")));
  main.replaceChildren(el("h1", {}, "Workflows"),
    el("table", { id: "workflows-table" }, el("thead", {}, el("tr", {},
      ["Name", "What", "Inputs", "Updated", ""].map((h) => el("th", {}, h)))), tbody));
  if (canAct("submit") && workflows.length) main.append(startForm(workflows, chosen));
}

function startForm(workflows, chosen) {
  const select = el("select", { id: "start-workflow", name: "workflow" },
                    workflows.map((w) => el("option", { value: w.name, selected: w.name === chosen }, w.name)));
  const fields = el("div", { id: "start-fields" });
  const errors = el("div", { id: "start-errors", class: "field-error", role: "alert" });
  const form = el("form", { id: "start-form", class: "start panel", autocomplete: "off" },
    el("h2", {}, "Start a run"), el("label", { for: "start-workflow" }, "Workflow"), select, fields,
    el("div", { class: "row" }, el("button", { id: "start-submit", type: "submit", class: "primary" }, "Start run")), errors);
  const current = () => workflows.find((w) => w.name === select.value);
  function draw() {
    const w = current();
    const inputs = (w && w.spec && w.spec.inputs) || {};
    fields.replaceChildren();
    if (w && !w.target) {
      for (const [name, dflt] of Object.entries(inputs)) {
        const shown = typeof dflt === "string" ? dflt : JSON.stringify(dflt);
        fields.append(el("label", { for: `input-${name}` }, `${name} `, el("span", { class: "muted" }, `(${kindOf(dflt)})`)),
                      el("input", { id: `input-${name}`, name: `input-${name}`, "data-input": name, value: shown }));
      }
      if (!Object.keys(inputs).length) fields.append(el("p", { class: "muted" }, "This workflow takes no inputs."));
    } else {
      fields.append(el("label", { for: "input-json" }, "Inputs (a JSON object)"),
                    el("textarea", { id: "input-json", rows: 3, cols: 60 }, "{}"));
    }
  }
  select.addEventListener("change", draw);
  draw();
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    errors.replaceChildren();
    const w = current();
    const inputs = {};
    const problems = [];
    if (w.target) {
      try {
        const v = JSON.parse(document.getElementById("input-json").value || "{}");
        if (kindOf(v) !== "object") throw new Error("not an object");
        Object.assign(inputs, v);
      } catch (_) { problems.push("inputs: expected a JSON object"); }
    } else {
      for (const [name, dflt] of Object.entries(w.spec.inputs || {})) {
        const text = document.getElementById(`input-${name}`).value;
        const shown = typeof dflt === "string" ? dflt : JSON.stringify(dflt);
        if (text === shown) continue;           // the default: the spec's own value
        const got = parseInput(name, text, dflt);
        if (got.ok) inputs[name] = got.value; else problems.push(got.error);
      }
    }
    if (problems.length) { errors.replaceChildren(...problems.map((p) => el("div", {}, p))); return; }
    const submit = document.getElementById("start-submit");
    submit.disabled = true;
    try {
      const run = await api("/v1/runs", { method: "POST", body: { workflow: w.name, inputs } });
      location.hash = `#/run/${encodeURIComponent(run.run_id)}`;
    } catch (e) {
      errors.replaceChildren(el("div", {}, e.field ? `${e.field}: ${e.message}` : e.message));
    } finally { submit.disabled = false; }
  });
  return form;
}

// -- the cluster -------------------------------------------------------------------------------

function part(title, id, body) {
  return el("div", { class: "panel", id }, el("h2", {}, title),
            body.ok === false ? el("p", { class: "bad" }, `cannot read: ${body.error}`) : null);
}

async function clusterPage(main) {
  async function draw() {
    const c = await api("/v1/cluster");
    const servers = part("Servers and their leases", "cluster-servers", c.servers);
    if (c.servers.ok) {
      servers.append(el("table", {}, el("thead", {}, el("tr", {},
        ["Server", "URL", "Host / pid", "Heartbeat", "Driving", "Leases (runs)"].map((h) => el("th", {}, h)))),
        el("tbody", {}, c.servers.servers.map((s) => el("tr", { "data-server": s.server_id },
          el("td", {}, s.server_id, s.this ? el("span", { class: "muted" }, " (this one)") : ""),
          el("td", {}, s.url), el("td", {}, `${s.host} / ${s.pid}`),
          el("td", { class: "num" }, s.heartbeat_age_s === null ? "" : `${s.heartbeat_age_s.toFixed(1)} s ago`),
          el("td", { class: "num" }, `${s.driving ?? ""} / ${s.max_runs ?? ""}`),
          el("td", {}, s.leases.length ? s.leases.map((l) => el("div", {},
            el("a", { href: `#/run/${encodeURIComponent(l.run_id)}` }, l.run_id),
            el("span", { class: "muted" }, ` epoch ${l.epoch}, renewed ${l.heartbeat_age_s === null ? "?" : l.heartbeat_age_s.toFixed(1)} s ago`)))
            : el("span", { class: "muted" }, "none")))))),
        el("p", { class: "muted" }, `A lease lasts ${c.servers.lease_s} s without renewal; then another server takes the run over.`));
      if (c.servers.other_drivers.length) servers.append(el("p", {}, "Runs driven outside a server: ",
        c.servers.other_drivers.map((r) => el("span", {}, el("a", { href: `#/run/${encodeURIComponent(r.run_id)}` }, r.run_id), ` (${r.owner}) `))));
    }
    const ray = part("Ray", "cluster-nodes", c.ray);
    if (c.ray.ok) {
      const names = Object.keys(c.ray.total).sort();
      ray.append(el("p", {}, c.ray.executor !== "ray" ? `executor: ${c.ray.executor} (no Ray)`
        : c.ray.connected ? `${c.ray.nodes.filter((n) => n.alive).length} alive of ${c.ray.nodes.length} nodes` : "not connected",
        c.ray.dashboard_url ? [" · ", el("a", { href: c.ray.dashboard_url, target: "_blank", rel: "noopener", id: "ray-dashboard" }, "Ray dashboard")] : ""));
      if (names.length) ray.append(el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Resource"), el("th", {}, "Available"), el("th", {}, "Total"))),
        el("tbody", {}, names.map((k) => el("tr", {}, el("td", {}, k),
          el("td", { class: "num" }, k.includes("memory") ? fmtBytes(c.ray.available[k] || 0) : (c.ray.available[k] || 0)),
          el("td", { class: "num" }, k.includes("memory") ? fmtBytes(c.ray.total[k]) : c.ray.total[k]))))));
      if (c.ray.nodes.length) ray.append(el("table", {}, el("thead", {}, el("tr", {}, ["Node", "Address", "Alive", "CPU", "GPU", "Memory"].map((h) => el("th", {}, h)))),
        el("tbody", {}, c.ray.nodes.map((n) => el("tr", { "data-node": n.node_id }, el("td", {}, nodeLink(n.node_id)
          ? el("a", { href: nodeLink(n.node_id), target: "_blank", rel: "noopener" }, n.node_id) : n.node_id), el("td", {}, n.address),
          el("td", {}, n.alive ? "yes" : "no"), el("td", { class: "num" }, n.resources.CPU ?? 0),
          el("td", { class: "num" }, n.resources.GPU ?? 0), el("td", { class: "num" }, fmtBytes(n.resources.memory)))))));
    }
    const store = part("Run store", "cluster-store", c.store);
    if (c.store.ok) store.append(el("dl", { class: "kv" }, el("dt", {}, "kind"), el("dd", {}, c.store.kind),
      el("dt", {}, "url"), el("dd", {}, c.store.url), el("dt", {}, "round trip"), el("dd", {}, `${c.store.latency_ms.toFixed(1)} ms`)));
    const cache = part("Result cache", "cluster-cache", c.cache);
    if (c.cache.ok) {
      cache.append(el("p", {}, `hits ${c.cache.hits}, misses ${c.cache.misses}`,
        c.cache.hit_ratio === null ? "" : `, hit ratio ${(c.cache.hit_ratio * 100).toFixed(1)}%`));
      const tiers = Object.entries(c.cache.tiers);
      const wanted = ["policy", "entries", "bytes", "max_bytes", "served", "hits", "misses", "puts", "evictions", "expired", "rejected", "errors"];
      const keys = wanted.filter((k) => tiers.some(([, t]) => t[k] !== undefined));
      if (tiers.length) cache.append(el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Tier"), keys.map((k) => el("th", {}, k)))),
        el("tbody", {}, tiers.map(([name, t]) => el("tr", { "data-tier": name }, el("td", {}, name),
          keys.map((k) => el("td", { class: "num" }, t[k] === undefined || t[k] === null ? ""
            : k.includes("bytes") ? fmtBytes(t[k]) || "0" : String(t[k]))))))));
    }
    main.replaceChildren(el("h1", {}, "Cluster"), el("p", { class: "muted" }, `as of ${fmtTime(c.at)}`), servers, ray, store, cache);
  }
  await draw();
  every(5000, () => { if (!document.hidden) draw().catch(() => {}); });
}

// -- the router --------------------------------------------------------------------------------

async function route() {
  for (const t of state.timers) clearInterval(t);
  state.timers = [];
  const main = document.getElementById("main");
  const [path, qs] = (location.hash.slice(1) || "/runs").split("?");
  const params = new URLSearchParams(qs || "");
  const parts = path.split("/").filter(Boolean);
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === parts[0] || (parts[0] === "run" && a.dataset.nav === "runs"));
  if (!state.caller) {
    main.replaceChildren(el("h1", {}, "Sign in"),
      el("p", {}, "This server needs a token: enter one above (make it with ", el("code", {}, "rayflow token create --scope read"), ")."));
    return;
  }
  try {
    if (parts[0] === "run" && parts[1]) await runPage(main, decodeURIComponent(parts.slice(1).join("/")));
    else if (parts[0] === "workflows") await workflowsPage(main, params);
    else if (parts[0] === "cluster") await clusterPage(main);
    else await runsPage(main, params);
  } catch (e) {
    main.replaceChildren(el("h1", {}, "Error"), el("p", { class: "bad", id: "page-error" }, e.message));
  }
}

async function start() {
  setupToken();
  await loadCaller();
  window.addEventListener("hashchange", route);
  await route();
}

start();
