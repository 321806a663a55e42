// The Performance page: the last scan's figures, the scan history as a table and a chart
// (scan time and symbols/s per scan).

import { api } from "./api.js";
import { drawChart } from "./charts.js";
import { clearError, showError } from "./errors.js";
import { $, el, fmtInt, fmtNum, fmtPct, fmtSecs } from "./ui.js";

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

export const page = {
  name: "performance",
  pollMs: 10000,
  refresh: refreshPerformance,
};
