// Shared by the UI's pages: element building (text only, never HTML), formatting, the API
// call with the session's token, the caller's scope, timers that stop when the page changes.

export const TOKEN_KEY = "rayflow.token";
export const SCOPES = ["read", "submit", "admin"];
export const state = { caller: null, timers: [], dashboard: null };   // dashboard: the Ray dashboard's URL, when known

// A node's page in the Ray dashboard, or null (no dashboard, or a node of the local executor).
export function nodeLink(nodeId) {
  if (!state.dashboard || !nodeId || nodeId.startsWith("local:")) return null;
  return `${state.dashboard}/#/cluster/nodes/${encodeURIComponent(nodeId)}`;
}

// -- helpers ---------------------------------------------------------------------------------

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// A RUNNING component that has not begun yet (handed to the executor, waiting for
// resources) is shown QUEUED, as rayflow.core.states.shown_state does.
export function shownState(c) { return c.state === "RUNNING" && !c.started_at ? "QUEUED" : c.state; }
export function stateBadge(s) { return el("span", { class: `state ${s}`, "data-state": s }, s); }
export function fmtS(s) {
  if (s === null || s === undefined) return "";
  if (s < 1) return `${(s * 1000).toFixed(0)} ms`;
  if (s < 120) return `${s.toFixed(2)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}
export function fmtTime(t) { return t ? new Date(t * 1000).toLocaleString() : ""; }
export function fmtBytes(b) {
  if (!b) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (b >= 1024 && i < units.length - 1) { b /= 1024; i++; }
  return `${b.toFixed(i ? 1 : 0)} ${units[i]}`;
}
export function canAct(scope = "submit") {
  return state.caller !== null && SCOPES.indexOf(state.caller.scope) >= SCOPES.indexOf(scope);
}
export function every(ms, fn) { const t = setInterval(fn, ms); state.timers.push(t); return t; }
export function banner(message) {
  const b = document.getElementById("banner");
  b.textContent = message || "";
  b.hidden = !message;
}

export class ApiError extends Error {
  constructor(status, code, message, field) { super(message); this.status = status; this.code = code; this.field = field; }
}

export async function api(path, { method = "GET", body, text = false } = {}) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (!r.ok) {
    let err = { code: String(r.status), message: r.statusText, field: null };
    try { err = (await r.json()).error || err; } catch (_) { /* not JSON */ }
    if (r.status === 401) banner(`${err.message} — enter a token above`);
    throw new ApiError(r.status, err.code, err.message, err.field);
  }
  return text ? r.text() : r.json();
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}
