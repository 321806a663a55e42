// The Cluster page: every node of the cluster with its state, load, work done and the
// age of its last heartbeat, and the serve holding the leader lease.

import { api } from "./api.js";
import { clearError, showError } from "./errors.js";
import { $, el, fmtAge, fmtInt, fmtPct } from "./ui.js";

function heartbeatAge(n) {
  if (n.heartbeat_age_ms != null) return n.heartbeat_age_ms;
  const t = n.last_heartbeat ? Date.parse(n.last_heartbeat) : n.heartbeat_at_ms;
  return t == null || Number.isNaN(t) ? null : Date.now() - t;
}

async function refreshCluster() {
  try {
    const { nodes, leader } = await api("GET", "/api/v1/cluster/nodes");
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
          el("td", { text: fmtAge(heartbeatAge(n)) }))),
    );
  } catch (e) {
    showError(e, "cluster", refreshCluster);
  }
}

export const page = {
  name: "cluster",
  pollMs: 2000,
  refresh: refreshCluster,
};
