// The Cluster page: every node of the cluster with its state, load, work done and the
// age of its last heartbeat, the serve holding the leader lease, the work queue's depth,
// each running scan's share per node, and every node's throughput over time.

import { api } from "./api.js";
import { drawChart } from "./charts.js";
import { clearError, showError } from "./errors.js";
import { $, el, fmtAge, fmtInt, fmtPct } from "./ui.js";

const TERMINAL = ["done", "failed", "cancelled", "abandoned"];
const COLORS = ["#1d4ed8", "#067647", "#b42318", "#a15c07", "#6941c6", "#0e7090", "#c11574", "#344054"];

function showQueue(q) {
  $("#cluster-queue").textContent = q
    ? `${fmtInt(q.pending)} shards pending · ${fmtInt(q.in_flight)} in flight · ${fmtInt(q.retry)} to retry`
    : "queue depth unavailable";
}

async function refreshScans() {
  const { scans } = await api("GET", "/api/v1/scans?limit=20");
  const running = scans.filter((s) => !TERMINAL.includes(s.stage));
  const states = await Promise.all(running.map((s) =>
    api("GET", `/api/v1/scans/${encodeURIComponent(s.id)}`).catch(() => null)));
  const rows = states.filter(Boolean).map((v) => {
    const p = v.progress || {};
    const byNode = Object.entries(p.per_node || {}).map(([n, k]) => `${n}: ${fmtInt(k)}`).join(" · ");
    return el("tr", { "data-scan": v.id },
      el("td", { class: "text", text: v.id }),
      el("td", { class: "text", text: v.stage }),
      el("td", { text: `${fmtInt(p.done || 0)} / ${fmtInt(p.total || 0)}` }),
      el("td", { class: "text", text: byNode || "—" }));
  });
  $('[data-testid="cluster-scans"] tbody').replaceChildren(
    ...(rows.length ? rows : [el("tr", {}, el("td", { class: "text", colspan: "4", text: "no scan running" }))]));
}

async function refreshThroughput() {
  const { t, nodes } = await api("GET", "/api/v1/cluster/throughput");
  const ids = Object.keys(nodes);
  drawChart("cluster", $("#cluster-chart"), {
    scales: { x: { time: true } },
    series: [{ label: "time" }, ...ids.map((id, i) => ({ label: id, stroke: COLORS[i % COLORS.length], width: 2 }))],
    axes: [{}, { label: "symbols/s" }],
  }, [t.map((ms) => ms / 1000), ...ids.map((id) => nodes[id])]);
}

function heartbeatAge(n) {
  if (n.heartbeat_age_ms != null) return n.heartbeat_age_ms;
  const t = n.last_heartbeat ? Date.parse(n.last_heartbeat) : n.heartbeat_at_ms;
  return t == null || Number.isNaN(t) ? null : Date.now() - t;
}

async function refreshCluster() {
  try {
    const { nodes, leader, queue } = await api("GET", "/api/v1/cluster/nodes");
    clearError("cluster");
    const count = {};
    for (const n of nodes) count[n.state] = (count[n.state] || 0) + 1;
    $("#cluster-summary").textContent = [`${nodes.length} node${nodes.length === 1 ? "" : "s"}`,
      ...Object.entries(count).map(([s, n]) => `${n} ${s}`)].join(" · ");
    $('[data-testid="cluster-leader"]').textContent = leader ? `leader: ${leader}` : "";
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
          // The shared cache TTL settings the node writes with (0: its configured ones).
          el("td", { text: n.ttl_version ? `v${n.ttl_version}` : "configured" }),
          // The alpha model the node serves (its version, or `unavailable`).
          el("td", { class: "text", "data-testid": "node-model", text: n.model || "—" }),
          el("td", { text: fmtAge(heartbeatAge(n)) }))),
    );
    showQueue(queue);
    await Promise.all([refreshScans(), refreshThroughput()]);
  } catch (e) {
    showError(e, "cluster", refreshCluster);
  }
}

export const page = {
  name: "cluster",
  pollMs: 2000,
  refresh: refreshCluster,
};
