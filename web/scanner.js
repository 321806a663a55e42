// The Scanner page: the scan form, the progress bar (followed over Server-Sent Events),
// the sortable results table and the CSV/JSON download links.

import { api, ApiError, download, getToken, openEvents } from "./api.js";
import { clearError, showError } from "./errors.js";
import { $, el, fmtInt, fmtNum, fmtPct, fmtSecs } from "./ui.js";

const state = {
  scanId: null,
  running: false,
  events: null,
  results: [],
  sort: null, // { key, dir: 1 | -1 }
  lastProgress: null,
  model: null, // the alpha model version of the shown scan's report, if one served it
};

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

/// With an alpha model: the blended score and the predicted 5- and 10-day returns.
const ALPHA_COLUMNS = [
  { key: "score", label: "Score", fmt: (v) => fmtNum(v, 1) },
  { key: "alpha_5d", label: "α 5d", fmt: (v) => fmtPct(v, 2) },
  { key: "alpha_10d", label: "α 10d", fmt: (v) => fmtPct(v, 2) },
];

/// The table's columns: the alpha ones after TechRating when the scan had a model.
function columns() {
  if (!state.model) return COLUMNS;
  const at = COLUMNS.findIndex((c) => c.key === "tech_rating") + 1;
  return [...COLUMNS.slice(0, at), ...ALPHA_COLUMNS, ...COLUMNS.slice(at)];
}

function signalClass(s) {
  return String(s || "").toLowerCase().replace(/\s+/g, "-");
}

function renderHead() {
  const row = $("#results-head");
  row.replaceChildren(
    ...columns().map((c) => {
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
  const col = columns().find((c) => c.key === key);
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
        ...columns().map((c) => {
          const v = r[c.key];
          if (c.key === "signal") return el("td", { class: "text" }, el("span", { class: `signal ${signalClass(v)}`, text: v }));
          return el("td", { class: c.text ? "text" : null, text: c.fmt ? c.fmt(v) : v ?? "—" });
        }),
      ),
    ),
  );
  $("#results-count").textContent = state.results.length ? `(${fmtInt(state.results.length)})` : "";
}

/// The download links point at the API; with a token they are fetched with it (a link
/// cannot send a header), else the browser follows them.
async function saveDownload(ev) {
  const a = ev.currentTarget;
  if (!a.getAttribute("href") || !getToken()) return;
  ev.preventDefault();
  try {
    await download(a.getAttribute("href"), a.getAttribute("download"));
    clearError("results");
  } catch (e) {
    showError(e, "results", () => a.click());
  }
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

/// The scan config of the form, as `POST /api/v1/scans` takes it (also what the Screens
/// page saves).
export function scanOptions() {
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
  setWarnings([]);
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

/// How long the page waits before asking again for a scan whose stream was lost.
const RECONNECT_MS = 2000;

function follow(id, lastEventId = null) {
  if (state.events) state.events.close();
  let last = lastEventId;
  const stream = openEvents(`/api/v1/scans/${encodeURIComponent(id)}/events`, {
    lastEventId,
    onEvent(type, data, eventId) {
      if (eventId) last = eventId;
      if (type === "progress") setProgress(JSON.parse(data));
      else if (type === "report") {
        stream.close();
        state.events = null;
        finished(id, JSON.parse(data));
      } else if (type === "error") {
        // The scan failed: the final event carries the API error.
        stream.close();
        state.events = null;
        setRunning(false);
        const err = new ApiError(500, JSON.parse(data));
        setProgress({ stage: "failed", fraction: 0, message: err.message });
        showError(err, "scan", startScan);
      }
    },
    onClose(err) {
      state.events = null;
      if (err && err.status >= 400 && err.status < 500 && err.status !== 404) {
        // Refused (no or a wrong token): say so; Retry follows again.
        showError(err, "scan", () => follow(id, last));
        return;
      }
      // The stream ended without the report (the scan left the history, the server
      // restarted, another serve took the scan over): ask for its state, which follows
      // it again, from the last event seen, while it runs.
      setTimeout(() => { if (state.scanId === id && !state.events) checkScan(id, false, last); }, err ? RECONNECT_MS : 250);
    },
  });
  state.events = stream;
}

/// The scan's state from the API (after a lost stream, or on load when `quiet`: an old
/// failure is shown in the bar, not raised in the error panel).
async function checkScan(id, quiet = false, lastEventId = null) {
  try {
    const s = await api("GET", `/api/v1/scans/${encodeURIComponent(id)}`);
    if (state.scanId !== id) return; // a newer scan was started meanwhile
    if (["done", "cancelled"].includes(s.stage)) finished(id, s);
    else if (s.stage === "failed" || s.stage === "abandoned") {
      setRunning(false);
      setProgress({ ...(s.progress || {}), stage: "failed", message: (s.error && s.error.message) || "failed" });
      if (s.error && !quiet) showError(new ApiError(500, { error: s.error }), "scan", startScan);
    } else {
      setRunning(true);
      follow(id, lastEventId);
    }
  } catch (e) {
    showError(e, "scan", () => checkScan(id));
    // The server may be restarting, or another serve about to take the scan over: keep
    // trying by ourselves while this scan is the one shown.
    if (!e.status || e.status >= 500) {
      setTimeout(() => { if (state.scanId === id) checkScan(id, quiet, lastEventId); }, RECONNECT_MS);
    } else {
      setRunning(false);
    }
  }
}

/// The report's warnings (e.g. CACHE_UNAVAILABLE: the scan ran uncached), each with what to do.
function setWarnings(warnings) {
  const box = $("#scan-warnings");
  box.querySelector("ul").replaceChildren(
    ...warnings.map((w) => el("li", {},
      el("strong", { text: w.code }), ` ${w.message}`,
      ...(w.suggestions || []).map((s) => el("span", { class: "hint", text: ` — ${s}` })))),
  );
  box.hidden = warnings.length === 0;
}

async function finished(id, report) {
  if (state.scanId !== id) return;
  setRunning(false);
  setWarnings(report.warnings || []);
  state.model = report.model || null;
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
    (t.cache_hit_rate != null ? ` · cache hit rate ${fmtPct(t.cache_hit_rate)}` : "") +
    // 1 is the universe's first uncached scan itself.
    (t.speedup != null && t.speedup !== 1 ? ` · ${t.speedup.toFixed(1)}× the first uncached scan's speed` : "") +
    (report.from_cache ? ` · answered from the scan cache (scan ${report.from_cache.scan_id})` : "") +
    (state.model ? ` · alphas by model ${state.model}` : "");
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

export const page = {
  name: "scanner",
  init() {
    $("#scan-form").addEventListener("submit", (ev) => { ev.preventDefault(); startScan(); });
    $("#scan-cancel").addEventListener("click", cancelScan);
    for (const sel of ["#download-csv", "#download-json"]) $(sel).addEventListener("click", saveDownload);
    // A token entered later may open what the first load could not read.
    window.addEventListener("technic:token", resumeLatest);
    renderResults();
    resumeLatest();
  },
  /// The tab is hidden: the progress stream closes (the scan itself keeps running).
  pause() {
    if (state.events) { state.events.close(); state.events = null; }
  },
  /// The tab is shown again: a scan still running is followed from its current state.
  resume() {
    if (state.running && state.scanId && !state.events) checkScan(state.scanId);
  },
};
