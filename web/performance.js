// The Performance page: the last scan's figures, the scan history as a table and a chart
// (scan time and symbols/s per scan), and the alpha model served: its holdout figures per
// horizon, or why it cannot serve.

import { api } from "./api.js";
import { drawChart } from "./charts.js";
import { clearError, showError } from "./errors.js";
import { $, el, fmtAge, fmtInt, fmtNum, fmtPct, fmtSecs } from "./ui.js";

// `/api/v1/ml/model`: the `ml-model:status` check of /health/detailed.
function showModel(m) {
  const badge = $("#model-badge");
  const version = m.observedValue;
  const none = version === "none";
  badge.className = `badge ${none ? "" : m.status === "pass" ? "ok" : m.status === "warn" ? "warn" : "down"}`;
  badge.textContent = none ? "No model" : version === "unavailable" ? "Model unavailable" : `Model ${version}`;
  const scans = m.scans ? `scans: ${fmtInt(m.scans.blended)} blended, ${fmtInt(m.scans.neutral)} neutral` : "";
  const about = none
    ? ["ranking uses TechRating only"]
    : version === "unavailable"
      ? [m.output]
      : [m.source ? `${m.source}` : null, m.architecture, m.age_seconds != null ? `trained ${fmtAge(m.age_seconds * 1000)}` : null,
        m.accepted ? "accepted" : "NOT accepted (forced)", m.output];
  $("#model-summary").textContent = [...about, scans].filter(Boolean).join(" · ");
  $("#model-suggestions").replaceChildren(...(m.suggestions || []).map((s) => el("li", { text: s })));
  const horizons = Object.entries(m.horizons || {}).sort(([a], [b]) => Number(a) - Number(b));
  $("#model-table tbody").replaceChildren(
    ...horizons.map(([h, x]) =>
      el("tr", { "data-horizon": h },
        el("td", { text: `${h} d` }),
        el("td", { text: fmtNum(x.rank_ic, 4) }),
        el("td", { text: fmtNum(x.rank_icir, 3) }),
        el("td", { text: fmtNum(x.ic, 4) }),
        el("td", { text: fmtNum(x.icir, 3) }),
        el("td", { text: fmtNum(x.t_stat, 1) }),
        el("td", { text: fmtNum(x.ic_t_stat, 1) }),
        el("td", { text: fmtPct(x.spread, 2) }),
        el("td", { text: fmtInt(x.dates) }),
        el("td", { text: fmtInt(x.symbols) }),
        el("td", { class: "text", text: x.accepted ? "yes" : "no" }))),
  );
}

async function refreshPerformance() {
  try {
    const [{ scans }, model] = await Promise.all([
      api("GET", "/api/v1/performance/history"),
      api("GET", "/api/v1/ml/model"),
    ]);
    clearError("performance");
    showModel(model);
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

export const page = {
  name: "performance",
  pollMs: 10000,
  refresh: refreshPerformance,
};
