// The Cache page: status badge, keys and memory, per-kind hit rates, the most requested
// symbols, hits and misses over time, the TTL form, and Warm / Clear.

import { api } from "./api.js";
import { drawChart } from "./charts.js";
import { clearError, showError } from "./errors.js";
import { $, confirmAction, el, fmtAge, fmtBytes, fmtInt, fmtNum, fmtPct, fmtSecs } from "./ui.js";

const state = {
  ttl: null, // the TTLs as last read, once the form is built
};

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
  // Over a shared cache the counters are the cluster's: each node's share.
  const nodes = Object.entries(a.per_node || {});
  $("#cache-nodes-card").hidden = a.scope !== "cluster";
  $("#cache-backend").textContent = `backend: ${a.status ? a.status.backend : "?"} · ${a.scope === "cluster" ? "counters of every node" : "counters of this server"}`;
  $("#cache-nodes tbody").replaceChildren(
    ...nodes.map(([id, n]) => {
      const total = (n.hits || 0) + (n.misses || 0);
      return el("tr", { "data-node": id },
        el("td", { text: id }),
        el("td", { text: fmtInt(n.hits || 0) }),
        el("td", { text: fmtInt(n.misses || 0) }),
        el("td", { text: total ? fmtPct(n.hits / total) : "—" }),
        // The shared TTL settings the node writes with, as on the Cluster page.
        el("td", { text: n.ttl_version == null ? "—" : n.ttl_version ? `v${n.ttl_version}` : "configured" }),
        el("td", { text: n.updated_at ? new Date(n.updated_at).toLocaleTimeString() : "—" }));
    }),
  );
  // Warming precision: of what the leader's last warm pass warmed, how much was asked for.
  const w = a.warming;
  $("#cache-warming").textContent = w
    ? `last warm pass ${fmtAge(Date.now() - Date.parse(w.at))}: ${fmtInt(w.warmed)} symbols, ` +
      `${fmtInt(w.requested)} requested since` + (w.precision != null ? ` (precision ${fmtPct(w.precision)})` : "")
    : "no warm pass yet";
  // Performance impact: a hit spares a symbol's cold time minus its warm time (measured).
  const ts_ = a.time_saved || {};
  const ms = (s) => `${fmtNum(s * 1000, 2)} ms`;
  $("#cache-saved").textContent = ts_.secs_per_hit != null
    ? `time saved by hits: ${fmtSecs(ts_.total_secs)} (${ms(ts_.secs_per_hit)} per hit; ` +
      `cold ${ms(ts_.cold_secs_per_symbol)}/symbol, warm ${ms(ts_.warm_secs_per_symbol)}/symbol)`
    : "time saved: measured once a scan ran cold and one ran fully cached";
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
      { label: "seconds saved per interval", stroke: "#1d4ed8", width: 2, dash: [6, 4], scale: "s" },
    ],
    axes: [{}, { label: "requests" }, { scale: "s", side: 1, label: "seconds saved", grid: { show: false } }],
  }, [xs, deltas(hist, "hits"), deltas(hist, "misses"), (a.time_saved || {}).series || hist.map(() => 0)]);
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

export const page = {
  name: "cache",
  pollMs: 5000,
  refresh: refreshCache,
  init() {
    $("#cache-clear").addEventListener("click", clearCache);
    $("#cache-warm").addEventListener("click", warmCache);
    $("#ttl-form").addEventListener("submit", (ev) => { ev.preventDefault(); saveTtl(); });
  },
};
