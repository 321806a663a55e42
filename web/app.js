// technic dashboard: a plain ES module over the control plane (/api/v1). No framework,
// no bundler; uPlot (vendored, loaded before this module) draws the charts.
//
// Every page polls only while it is shown and the tab is visible; the scanner follows a
// running scan over Server-Sent Events. Every failed call lands in one error panel with
// the API's message, suggestions and a Retry that repeats the call.

const $ = (sel, root = document) => root.querySelector(sel);
const TOKEN_KEY = "technic.token";
const POLL_MS = { performance: 10000, cache: 5000, cluster: 2000 };
const PAGES = ["scanner", "performance", "cache", "cluster"];

const state = {
  page: "scanner",
  timer: null,
  scanId: null,
  running: false,
  events: null,
  results: [],
  sort: null, // { key, dir: 1 | -1 }
  charts: {},
  errorSource: null,
  retry: null,
  ttl: null,
  lastProgress: null,
};

// ---------- numbers and text ----------
const fmtInt = (n) => (n == null ? "—" : Math.round(n).toLocaleString("en-US"));
const fmtNum = (n, d = 2) =>
  n == null || Number.isNaN(n) ? "—" : Number(n).toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
const fmtPct = (f, d = 1) => (f == null ? "—" : `${(f * 100).toFixed(d)}%`);
const fmtSecs = (s) => (s == null ? "—" : s < 1 ? `${(s * 1000).toFixed(0)} ms` : `${s.toFixed(2)} s`);
function fmtBytes(b) {
  if (b == null) return "—";
  const u = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
  return `${b.toFixed(i ? 1 : 0)} ${u[i]}`;
}
function fmtAge(ms) {
  if (ms == null || Number.isNaN(ms)) return "—";
  const s = Math.max(0, ms / 1000);
  if (s < 1) return "just now";
  if (s < 60) return `${s.toFixed(0)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

// ---------- the API ----------
class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `the server answered ${status}`);
    this.status = status;
    this.code = e.code || (status ? `HTTP_${status}` : "NETWORK");
    this.suggestions = Array.isArray(e.suggestions) ? e.suggestions : [];
    this.retryable = !!e.retryable;
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (method !== "GET" && token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, {
      error: {
        code: "NETWORK",
        message: "the server does not answer",
        suggestions: ["check that technic serve is still running", "then press Retry"],
        retryable: true,
      },
    });
  }
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

// ---------- the error panel ----------
function showError(err, source, retry) {
  const panel = $('[data-testid="error-panel"]');
  $("#error-code").textContent = err.code || "ERROR";
  $("#error-message").textContent = err.message;
  const list = $("#error-suggestions");
  list.replaceChildren(...(err.suggestions || []).map((s) => el("li", { text: s })));
  if (err.code === "UNAUTHORIZED") list.append(el("li", { text: "enter the token in the API token field at the top, then press Retry" }));
  state.errorSource = source;
  state.retry = retry;
  $("#error-retry").hidden = !retry;
  panel.hidden = false;
}
function clearError(source) {
  if (source && state.errorSource !== source) return;
  $('[data-testid="error-panel"]').hidden = true;
  state.errorSource = null;
  state.retry = null;
}

// ---------- confirmation ----------
function confirmAction(title, text) {
  const d = $("#confirm");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  return new Promise((resolve) => {
    d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true });
    d.returnValue = "";
    d.showModal();
    $('[data-testid="confirm-cancel"]').focus();
  });
}

// ---------- charts (uPlot) ----------
function drawChart(name, container, opts, data) {
  container.dataset.points = String(data[0].length);
  const width = Math.max(280, container.clientWidth || 600);
  const old = state.charts[name];
  if (!window.uPlot) {
    container.replaceChildren(el("p", { class: "empty", text: "chart library failed to load" }));
    return;
  }
  if (!data[0].length) {
    if (old) { old.destroy(); delete state.charts[name]; }
    container.replaceChildren(el("p", { class: "empty", text: "no data yet" }));
    return;
  }
  if (old && old.series.length === opts.series.length && container.contains(old.root)) {
    old.setData(data);
    if (Math.abs(old.width - width) > 2) old.setSize({ width, height: 260 });
    return;
  }
  if (old) old.destroy();
  container.replaceChildren();
  state.charts[name] = new window.uPlot({ ...opts, width, height: 260 }, data, container);
}
window.addEventListener("resize", () => {
  for (const [name, c] of Object.entries(state.charts)) {
    const box = c.root.parentElement;
    if (box && box.clientWidth) c.setSize({ width: box.clientWidth, height: 260 });
    else delete state.charts[name];
  }
});

// ---------- scanner ----------
const COLUMNS = [
  { key: "rank", label: "#", num: true },
  { key: "symbol", label: "Symbol", text: true },
  { key: "sector", label: "Sector", text: true },
  { key: "signal", label: "Signal", text: true },
  { key: "tech_rating", label: "TechRating", fmt: (v) => fmtNum(v, 1) },
  { key: "close", label: "Close", fmt: (v) => fmtNum(v) },
  { key: "entry", label: "Entry", fmt: (v) => fmtNum(v) },
  { key: "stop", label: "Stop", fmt: (v) => fmtNum(v) },
  { key: "target", label: "Target", fmt: (v) => fmtNum(v) },
  { key: "reward_risk", label: "R:R", fmt: (v) => fmtNum(v, 1) },
  { key: "position_size", label: "Shares", fmt: fmtInt },
  { key: "rsi_14", label: "RSI 14", fmt: (v) => fmtNum(v, 1) },
  { key: "ret_5d", label: "Ret 5d", fmt: (v) => fmtPct(v) },
  { key: "ret_21d", label: "Ret 21d", fmt: (v) => fmtPct(v) },
  { key: "dollar_vol_20", label: "$ Vol 20d", fmt: (v) => (v == null ? "—" : `${fmtNum(v / 1e6, 1)}M`) },
];

function signalClass(s) {
  return String(s || "").toLowerCase().replace(/\s+/g, "-");
}

function renderHead() {
  const row = $("#results-head");
  row.replaceChildren(
    ...COLUMNS.map((c) => {
      const th = el("th", { scope: "col", class: c.text ? "text" : null, "data-key": c.key });
      if (state.sort && state.sort.key === c.key) th.setAttribute("aria-sort", state.sort.dir > 0 ? "ascending" : "descending");
      const b = el("button", { type: "button", class: "sort", "data-sort": c.key, text: c.label });
      b.addEventListener("click", () => sortBy(c.key));
      th.append(b);
      return th;
    }),
  );
}

function sortBy(key) {
  const col = COLUMNS.find((c) => c.key === key);
  // Numbers start descending (highest first), text ascending; a second click flips.
  const first = col.text ? 1 : -1;
  state.sort = state.sort && state.sort.key === key ? { key, dir: -state.sort.dir } : { key, dir: first };
  renderResults();
}

function sortedRows() {
  const rows = state.results.map((r, i) => ({ ...r, rank: i + 1 }));
  if (!state.sort) return rows;
  const { key, dir } = state.sort;
  return rows.sort((a, b) => {
    const x = a[key], y = b[key];
    if (typeof x === "number" && typeof y === "number") return (x - y) * dir || a.rank - b.rank;
    return String(x).localeCompare(String(y)) * dir || a.rank - b.rank;
  });
}

function renderResults() {
  renderHead();
  const body = $("#results-body");
  body.replaceChildren(
    ...sortedRows().map((r) =>
      el(
        "tr",
        { "data-symbol": r.symbol },
        ...COLUMNS.map((c) => {
          const v = r[c.key];
          if (c.key === "signal") return el("td", { class: "text" }, el("span", { class: `signal ${signalClass(v)}`, text: v }));
          return el("td", { class: c.text ? "text" : null, text: c.fmt ? c.fmt(v) : v ?? "—" });
        }),
      ),
    ),
  );
  $("#results-count").textContent = state.results.length ? `(${fmtInt(state.results.length)})` : "";
}

function setDownloads(id) {
  for (const [sel, fmt] of [["#download-csv", "csv"], ["#download-json", "json"]]) {
    const a = $(sel);
    if (id) {
      a.href = `/api/v1/scans/${encodeURIComponent(id)}/results?format=${fmt}`;
      a.setAttribute("download", `technic-${id}.${fmt}`);
      a.classList.remove("disabled");
      a.removeAttribute("aria-disabled");
    } else {
      a.removeAttribute("href");
      a.classList.add("disabled");
      a.setAttribute("aria-disabled", "true");
    }
  }
}

function scanOptions() {
  const f = $("#scan-form");
  const list = (v) => v.split(/[,\s]+/).map((s) => s.trim()).filter(Boolean);
  const num = (name) => {
    const v = f.elements[name].value.trim();
    return v === "" ? undefined : Number(v);
  };
  const body = {};
  const symbols = list(f.elements.symbols.value);
  if (symbols.length) body.symbols = symbols.map((s) => s.toUpperCase());
  else if (num("universe_size") !== undefined) body.universe_size = num("universe_size");
  const sectors = f.elements.sectors.value.split(",").map((s) => s.trim()).filter(Boolean);
  if (sectors.length) body.sectors = sectors;
  for (const k of ["min_price", "min_dollar_volume", "min_tech_rating", "top"]) {
    if (num(k) !== undefined) body[k] = num(k);
  }
  return body;
}

function setProgress(p) {
  state.lastProgress = p;
  const bar = $('[data-testid="scan-progress"]');
  const terminal = ["done", "failed", "cancelled"].includes(p.stage);
  const pct = p.stage === "done" ? 100 : Math.max(0, Math.min(100, Math.round((p.fraction || 0) * 100)));
  bar.setAttribute("aria-valuenow", String(pct));
  bar.className = `progress ${terminal ? p.stage : ""}`;
  $("#scan-bar").style.width = `${pct}%`;
  const stage = (p.stage || "").replace(/_/g, " ");
  $("#scan-stage").textContent = stage;
  $("#scan-progress-text").textContent = `${stage} · ${p.message || ""} · ${pct}%`;
  bar.setAttribute("aria-valuetext", `${stage}: ${p.message || ""}`);
  $("#scan-eta").textContent = !terminal && p.eta_seconds != null ? `ETA ${fmtSecs(p.eta_seconds)}` : p.elapsed_seconds != null ? `elapsed ${fmtSecs(p.elapsed_seconds)}` : "";
}

function setRunning(running) {
  state.running = running;
  $("#scan-start").disabled = running;
  $("#scan-cancel").disabled = !running;
}

async function startScan() {
  clearError("scan");
  state.scanId = null;
  const body = scanOptions();
  setRunning(true);
  state.results = [];
  state.sort = null;
  renderResults();
  setDownloads(null);
  $("#scan-summary").textContent = "";
  setProgress({ stage: "queued", fraction: 0, message: "Submitting" });
  try {
    const { id } = await api("POST", "/api/v1/scans", body);
    state.scanId = id;
    follow(id);
  } catch (e) {
    setRunning(false);
    setProgress({ stage: "failed", fraction: 0, message: e.message });
    showError(e, "scan", startScan);
  }
}

function follow(id) {
  if (state.events) state.events.close();
  const es = new EventSource(`/api/v1/scans/${encodeURIComponent(id)}/events`);
  state.events = es;
  es.addEventListener("progress", (ev) => setProgress(JSON.parse(ev.data)));
  es.addEventListener("report", (ev) => {
    es.close();
    state.events = null;
    finished(id, JSON.parse(ev.data));
  });
  es.addEventListener("error", (ev) => {
    if (ev.data) {
      // The scan failed: the final event carries the API error.
      es.close();
      state.events = null;
      setRunning(false);
      const err = new ApiError(500, JSON.parse(ev.data));
      setProgress({ stage: "failed", fraction: 0, message: err.message });
      showError(err, "scan", startScan);
      return;
    }
    if (es.readyState === EventSource.CLOSED) {
      // Not a reconnect: the stream is gone (e.g. the scan left the history).
      state.events = null;
      checkScan(id);
    }
  });
}

/// The scan's state from the API (after a lost stream, or on load when `quiet`: an old
/// failure is shown in the bar, not raised in the error panel).
async function checkScan(id, quiet = false) {
  try {
    const s = await api("GET", `/api/v1/scans/${encodeURIComponent(id)}`);
    if (state.scanId !== id) return; // a newer scan was started meanwhile
    if (["done", "cancelled"].includes(s.stage)) finished(id, s);
    else if (s.stage === "failed") {
      setRunning(false);
      setProgress({ ...(s.progress || {}), stage: "failed", message: (s.error && s.error.message) || "failed" });
      if (s.error && !quiet) showError(new ApiError(500, { error: s.error }), "scan", startScan);
    } else {
      setRunning(true);
      follow(id);
    }
  } catch (e) {
    setRunning(false);
    showError(e, "scan", () => checkScan(id));
  }
}

async function finished(id, report) {
  if (state.scanId !== id) return;
  setRunning(false);
  const t = report.timing || {};
  const stage = report.status === "cancelled" ? "cancelled" : "done";
  if (stage === "cancelled") {
    setProgress({ ...(report.progress || state.lastProgress || {}), stage: "cancelled" });
  } else {
    setProgress({ stage: "done", fraction: 1, message: `${fmtInt(report.scanned)} symbols scanned`, elapsed_seconds: t.total_seconds });
  }
  $("#scan-summary").textContent =
    `${fmtInt(report.scanned)} symbols in ${fmtSecs(t.total_seconds)} (${fmtInt(t.symbols_per_second)} symbols/s) · ` +
    `${fmtInt((report.results || []).length || report.results_count)} results · ${fmtInt((report.failures || []).length)} failed` +
    (t.cache_hit_rate != null ? ` · cache hit rate ${fmtPct(t.cache_hit_rate)}` : "");
  await loadResults(id);
}

async function loadResults(id) {
  try {
    const r = await api("GET", `/api/v1/scans/${encodeURIComponent(id)}/results`);
    state.results = r.results || [];
    state.sort = null;
    renderResults();
    setDownloads(id);
    clearError("results");
  } catch (e) {
    showError(e, "results", () => loadResults(id));
  }
}

async function cancelScan() {
  if (!state.scanId) return;
  // Said before the request: the `cancelled` progress event may arrive before its answer.
  $("#scan-eta").textContent = "cancelling…";
  try {
    await api("POST", `/api/v1/scans/${encodeURIComponent(state.scanId)}/cancel`);
  } catch (e) {
    showError(e, "scan", cancelScan);
  }
}

/// On load: the newest scan of this server, followed if it still runs, else its results,
/// so a reload (or a second analyst) sees what is going on.
async function resumeLatest() {
  try {
    const { scans } = await api("GET", "/api/v1/scans?limit=1");
    const latest = scans && scans[0];
    if (!latest || state.scanId || state.running) return;
    state.scanId = latest.id;
    await checkScan(latest.id, true);
  } catch {
    // Nothing to resume: the page starts idle; the next action reports any error.
  }
}

// ---------- performance ----------
async function refreshPerformance() {
  try {
    const { scans } = await api("GET", "/api/v1/performance/history");
    clearError("performance");
    const last = scans[scans.length - 1];
    $("#perf-time").textContent = last ? fmtSecs(last.total_seconds) : "—";
    $("#perf-rate").textContent = last ? fmtInt(last.symbols_per_second) : "—";
    $("#perf-hit").textContent = last ? fmtPct(last.cache_hit_rate) : "—";
    $("#perf-speedup").textContent = last ? (last.speedup != null ? `${fmtNum(last.speedup, 1)}×` : "no cold baseline yet") : "—";
    $("#perf-table tbody").replaceChildren(
      ...scans.map((s, i) =>
        el("tr", {},
          el("td", { text: i + 1 }),
          el("td", { text: s.finished_at ? new Date(s.finished_at).toLocaleTimeString() : "—" }),
          el("td", { text: fmtInt(s.scanned) }),
          el("td", { text: fmtSecs(s.total_seconds) }),
          el("td", { text: fmtInt(s.symbols_per_second) }),
          el("td", { text: fmtPct(s.cache_hit_rate) }),
          el("td", { text: s.speedup != null ? `${fmtNum(s.speedup, 1)}×` : "—" }))),
    );
    const x = scans.map((_, i) => i + 1);
    drawChart("perf", $("#perf-chart"), {
      scales: { x: { time: false }, rate: {} },
      axes: [
        { label: "scan #", incrs: [1, 2, 5, 10, 20, 50] },
        { label: "seconds", values: (u, v) => v.map((s) => `${s}s`) },
        { label: "symbols/s", scale: "rate", side: 1, grid: { show: false } },
      ],
      series: [
        { label: "scan" },
        { label: "scan time (s)", stroke: "#2456c7", width: 2, points: { show: true, size: 7 }, value: (u, v) => (v == null ? "—" : `${v.toFixed(3)} s`) },
        { label: "symbols/s", scale: "rate", stroke: "#2e9e5b", width: 2, points: { show: true, size: 7 }, value: (u, v) => fmtInt(v) },
      ],
    }, [x, scans.map((s) => s.total_seconds), scans.map((s) => s.symbols_per_second)]);
  } catch (e) {
    showError(e, "performance", refreshPerformance);
  }
}

// ---------- cache ----------
function setBadge(text, cls) {
  const b = $('[data-testid="cache-badge"]');
  b.textContent = text;
  b.className = `badge ${cls}`;
}

async function refreshCache() {
  let stats;
  try {
    stats = await api("GET", "/api/v1/cache/stats");
  } catch (e) {
    setBadge(e.code === "CACHE_UNAVAILABLE" ? "Cache unavailable" : "Cache status unknown", "down");
    $("#page-cache").classList.add("stale");
    $("#cache-keys-total").textContent = "—";
    $("#cache-memory").textContent = "—";
    $("#cache-freshness").textContent = "—";
    showError(e, "cache", refreshCache);
    return;
  }
  $("#page-cache").classList.remove("stale");
  const rate = stats.hit_rate;
  if (stats.available === false) setBadge("Cache degraded · recovering", "warn");
  else setBadge(rate == null ? "Cache active · no requests yet" : `Cache active · ${(rate * 100).toFixed(1)}% hit rate`, "ok");
  $("#cache-backend").textContent = `backend: ${stats.backend}`;
  const keys = stats.keys_per_kind || {};
  $("#cache-keys-total").textContent = fmtInt(Object.values(keys).reduce((a, b) => a + b, 0));
  const m = stats.memory || {};
  $("#cache-memory").textContent = `${fmtBytes(m.used_bytes)} / ${fmtBytes(m.peak_bytes)}`;
  clearError("cache");
  try {
    const a = await api("GET", "/api/v1/cache/analytics");
    renderAnalytics(a, keys);
  } catch (e) {
    showError(e, "cache", refreshCache);
  }
}

// The samples carry cumulative counters: the chart shows what happened between samples.
function deltas(hist, key) {
  return hist.map((h, i) => Math.max(0, (h[key] ?? 0) - (i ? hist[i - 1][key] ?? 0 : 0)));
}

function renderAnalytics(a, keys) {
  const kinds = new Set([...Object.keys(a.per_kind || {}), ...Object.keys(keys)]);
  $("#cache-kinds tbody").replaceChildren(
    ...[...kinds].map((k) => {
      const s = (a.per_kind || {})[k] || {};
      const total = (s.hits || 0) + (s.misses || 0);
      return el("tr", {},
        el("td", { text: k }),
        el("td", { text: fmtInt(keys[k] ?? 0) }),
        el("td", { text: fmtInt(s.hits || 0) }),
        el("td", { text: fmtInt(s.misses || 0) }),
        el("td", { text: total ? fmtPct(s.hits / total) : "—" }),
        el("td", { text: (a.ttl_secs || {})[k] != null ? `${fmtInt(a.ttl_secs[k])} s` : "—" }));
    }),
  );
  $("#cache-top tbody").replaceChildren(
    ...(a.most_requested || []).map(([sym, n]) => el("tr", {}, el("td", { text: sym }), el("td", { text: fmtInt(n) }))),
  );
  const hist = a.hit_rate_history || [];
  const last = hist[hist.length - 1];
  // Freshness: how recent the newest cache activity is, and since when it is degraded.
  const ts = last ? Date.parse(last.at || last.time || last.timestamp) : NaN;
  let fresh = Number.isNaN(ts) ? "no activity yet" : `last activity ${fmtAge(Date.now() - ts)}`;
  if (a.status && a.status.degraded_since) fresh = `degraded since ${new Date(a.status.degraded_since).toLocaleTimeString()}`;
  $("#cache-freshness").textContent = fresh;
  const xs = hist.map((h, i) => {
    const t = Date.parse(h.at || h.time || h.timestamp);
    return Number.isNaN(t) ? i : t / 1000;
  });
  const timed = hist.length && !Number.isNaN(Date.parse(hist[0].at || hist[0].time || hist[0].timestamp));
  drawChart("cache", $("#cache-chart"), {
    scales: { x: { time: !!timed } },
    series: [
      { label: timed ? "time" : "sample" },
      { label: "hits per interval", stroke: "#067647", fill: "rgba(6,118,71,.12)", width: 2 },
      { label: "misses per interval", stroke: "#b42318", width: 2 },
    ],
    axes: [{}, { label: "requests" }],
  }, [xs, deltas(hist, "hits"), deltas(hist, "misses")]);
  if (!state.ttl) loadTtl();
}

async function loadTtl() {
  try {
    const ttl = await api("GET", "/api/v1/cache/ttl");
    state.ttl = ttl;
    $("#ttl-fields").replaceChildren(
      ...Object.entries(ttl).map(([k, v]) => {
        const id = `ttl-${k}`;
        const input = el("input", { id, name: k, "data-testid": id, type: typeof v === "number" ? "number" : "text", step: "any" });
        input.value = v;
        return el("div", { class: "field" }, el("label", { for: id, text: k.replace(/_/g, " ") }), input);
      }),
    );
    clearError("ttl");
  } catch (e) {
    if (e.code !== "CACHE_UNAVAILABLE") showError(e, "ttl", loadTtl);
  }
}

async function saveTtl() {
  if (!state.ttl) return;
  const body = {};
  for (const [k, v] of Object.entries(state.ttl)) {
    const raw = $(`#ttl-${k}`).value.trim();
    const val = typeof v === "number" ? (raw === "" ? NaN : Number(raw)) : raw;
    if (val !== v) body[k] = Number.isNaN(val) ? raw : val;
  }
  try {
    state.ttl = await api("PUT", "/api/v1/cache/ttl", body);
    clearError("ttl");
    state.ttl = null;
    await loadTtl();
  } catch (e) {
    showError(e, "ttl", saveTtl);
  }
}

async function clearCache() {
  if (!(await confirmAction("Clear the cache?", "Every technic cache key is removed; the next scan runs cold."))) return;
  try {
    const r = await api("POST", "/api/v1/cache/clear");
    $("#cache-action-status").textContent = `Cleared: ${fmtInt(r.removed)} keys removed`;
    clearError("cache-action");
    await refreshCache();
  } catch (e) {
    showError(e, "cache-action", clearCache);
  }
}

async function warmCache() {
  if (!(await confirmAction("Warm the cache?", "The configured and most-requested symbols are loaded into the cache now."))) return;
  try {
    $("#cache-warm").disabled = true;
    const symbols = $("#warm-symbols").value.split(/[,\s]+/).map((x) => x.trim().toUpperCase()).filter(Boolean);
    const r = await api("POST", "/api/v1/cache/warm", { symbols });
    $("#cache-action-status").textContent =
      `Warmed: ${fmtInt(r.candidates)} candidates · ${fmtInt(r.loaded)} loaded · ${fmtInt(r.fresh)} already fresh · ${fmtInt(r.failed)} failed`;
    clearError("cache-action");
    await refreshCache();
  } catch (e) {
    showError(e, "cache-action", warmCache);
  } finally {
    $("#cache-warm").disabled = false;
  }
}

// ---------- cluster ----------
function heartbeatAge(n) {
  if (n.heartbeat_age_ms != null) return n.heartbeat_age_ms;
  const t = n.last_heartbeat ? Date.parse(n.last_heartbeat) : n.heartbeat_at_ms;
  return t == null || Number.isNaN(t) ? null : Date.now() - t;
}

async function refreshCluster() {
  try {
    const { nodes } = await api("GET", "/api/v1/cluster/nodes");
    clearError("cluster");
    const count = {};
    for (const n of nodes) count[n.state] = (count[n.state] || 0) + 1;
    $("#cluster-summary").textContent = [`${nodes.length} node${nodes.length === 1 ? "" : "s"}`,
      ...Object.entries(count).map(([s, n]) => `${n} ${s}`)].join(" · ");
    $('[data-testid="cluster-nodes"] tbody').replaceChildren(
      ...nodes.map((n) =>
        el("tr", { "data-node": n.id, "data-state": n.state, class: n.state === "down" ? "node-down" : null },
          el("td", { text: n.id }),
          el("td", { class: "text" }, el("span", { class: `state ${n.state}`, text: n.state === "down" ? "● down" : n.state === "up" ? "● up" : `● ${n.state}` })),
          el("td", { class: "text", text: n.role || "worker" }),
          el("td", { text: fmtInt(n.cores) }),
          el("td", { text: fmtInt(n.workers) }),
          el("td", { text: n.load != null ? fmtPct(n.load, 0) : n.active_scans != null ? `${n.active_scans} scans` : "—" }),
          el("td", { text: n.shards_done != null ? fmtInt(n.shards_done) : "—" }),
          el("td", { text: n.restarts != null ? fmtInt(n.restarts) : "—" }),
          el("td", { text: fmtAge(heartbeatAge(n)) }))),
    );
  } catch (e) {
    showError(e, "cluster", refreshCluster);
  }
}

// ---------- pages, polling, visibility ----------
const REFRESH = { performance: refreshPerformance, cache: refreshCache, cluster: refreshCluster };

function stopPolling() {
  clearTimeout(state.timer);
  state.timer = null;
}

function poll() {
  stopPolling();
  const page = state.page;
  const run = REFRESH[page];
  if (!run || document.hidden) return;
  const tick = async () => {
    await run();
    if (state.page === page && !document.hidden) state.timer = setTimeout(tick, POLL_MS[page]);
  };
  tick();
}

function show(page, focus) {
  if (!PAGES.includes(page)) page = "scanner";
  state.page = page;
  for (const p of PAGES) $(`#page-${p}`).hidden = p !== page;
  for (const a of document.querySelectorAll("nav a[data-page]")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = `technic · ${page[0].toUpperCase()}${page.slice(1)}`;
  if (focus) $(`#h-${page}`).focus?.();
  poll();
}

document.addEventListener("visibilitychange", () => {
  if (document.hidden) {
    stopPolling();
    if (state.events) { state.events.close(); state.events = null; }
  } else {
    poll();
    if (state.running && state.scanId && !state.events) checkScan(state.scanId);
  }
});

function initToken() {
  const input = $("#token-input");
  const status = $("#token-state");
  const saved = sessionStorage.getItem(TOKEN_KEY);
  status.textContent = saved ? "token set for this session" : "";
  $("#token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = input.value.trim();
    if (v) sessionStorage.setItem(TOKEN_KEY, v);
    else sessionStorage.removeItem(TOKEN_KEY);
    input.value = "";
    status.textContent = v ? "token set for this session" : "no token";
  });
}

function init() {
  for (const p of PAGES) $(`#h-${p}`).setAttribute("tabindex", "-1");
  initToken();
  $("#scan-form").addEventListener("submit", (ev) => { ev.preventDefault(); startScan(); });
  $("#scan-cancel").addEventListener("click", cancelScan);
  $("#cache-clear").addEventListener("click", clearCache);
  $("#cache-warm").addEventListener("click", warmCache);
  $("#ttl-form").addEventListener("submit", (ev) => { ev.preventDefault(); saveTtl(); });
  $("#error-retry").addEventListener("click", () => {
    const retry = state.retry;
    clearError();
    if (retry) retry();
  });
  $("#error-dismiss").addEventListener("click", () => clearError());
  renderResults();
  resumeLatest();
  window.addEventListener("hashchange", () => show(location.hash.slice(1), true));
  show(location.hash.slice(1), false);
  document.body.dataset.ready = "true";
}

init();
