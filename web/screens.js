// The Screens page: saved screens (saved from the Scanner's current options), each with
// its schedule, next tick, last run and last diff, Run now and Delete; the webhooks, the
// delivery log and the dead letters.

import { api } from "./api.js";
import { clearError, showError } from "./errors.js";
import { scanOptions } from "./scanner.js";
import { $, confirmAction, el, fmtInt } from "./ui.js";

const when = (t) => (t ? new Date(t).toLocaleString() : "—");

/// "+2 new · −1 dropped · 1 changed", with the symbols in the title.
function diffText(d) {
  if (!d) return "—";
  const parts = [];
  if (d.new.length) parts.push(`+${d.new.length} new (${d.new.slice(0, 5).join(", ")}${d.new.length > 5 ? "…" : ""})`);
  if (d.dropped.length) parts.push(`−${d.dropped.length} dropped (${d.dropped.slice(0, 5).join(", ")}${d.dropped.length > 5 ? "…" : ""})`);
  if (d.changed.length) parts.push(`${d.changed.length} changed (${d.changed.slice(0, 3).map((c) => `${c.symbol} ${c.from}→${c.to}`).join(", ")})`);
  return parts.length ? parts.join(" · ") : "no change";
}

function button(label, testid, onClick, cls) {
  const b = el("button", { type: "button", class: cls || "secondary", "data-testid": testid, text: label });
  b.addEventListener("click", onClick);
  return b;
}

async function runNow(name) {
  try {
    await api("POST", `/api/v1/screens/${encodeURIComponent(name)}/run`);
    clearError("screens");
    refresh();
  } catch (e) {
    showError(e, "screens", () => runNow(name));
  }
}

async function remove(path, what) {
  if (!(await confirmAction(`Delete ${what}?`, "This cannot be undone."))) return;
  try {
    await api("DELETE", path);
    refresh();
  } catch (e) {
    showError(e, "screens", () => remove(path, what));
  }
}

function deliveryRow(d, dead) {
  const answer = d.status ? `HTTP ${d.status}` : d.error || "—";
  return dead
    ? el("tr", { "data-event": d.event.id },
      el("td", { class: "text", text: when(d.at) }),
      el("td", { class: "text", text: d.event.screen }),
      el("td", { class: "text", text: d.event.id }),
      el("td", { class: "text", text: d.url }),
      el("td", { text: fmtInt(d.attempts) }),
      el("td", { class: "text", text: answer }))
    : el("tr", { "data-event": d.event.id, class: d.delivered ? null : "node-down" },
      el("td", { class: "text", text: when(d.at) }),
      el("td", { class: "text", text: d.event.screen }),
      el("td", { class: "text", text: d.url }),
      el("td", { class: "text", text: d.delivered ? "delivered" : "failed" }),
      el("td", { text: fmtInt(d.attempts) }),
      el("td", { class: "text", text: answer }));
}

function rowsOr(rows, cols, empty) {
  return rows.length ? rows : [el("tr", {}, el("td", { class: "text", colspan: String(cols), text: empty }))];
}

async function refresh() {
  try {
    const [{ screens }, { webhooks }, { deliveries }, dead, { watchlists }] = await Promise.all([
      api("GET", "/api/v1/screens"),
      api("GET", "/api/v1/webhooks"),
      api("GET", "/api/v1/webhooks/deliveries?limit=20"),
      api("GET", "/api/v1/webhooks/dead-letters?limit=20"),
      api("GET", "/api/v1/watchlists"),
    ]);
    clearError("screens");
    $('[data-testid="screens-table"] tbody').replaceChildren(...rowsOr(screens.map((s) => {
      const r = s.last_run;
      return el("tr", { "data-screen": s.name },
        el("td", { class: "text", text: s.name }),
        el("td", { text: fmtInt(s.version) }),
        el("td", { class: "text", text: s.schedule ? `${s.schedule.cron} (${s.schedule.timezone})` : "—" }),
        el("td", { class: "text", "data-testid": "screen-next-tick", text: when(s.next_tick) }),
        el("td", { class: "text", text: r ? `${when(r.finished_at)} · ${r.trigger} · ${r.stage}` : "never" }),
        el("td", { text: r ? fmtInt(r.matches) : "—" }),
        el("td", { class: "text", "data-testid": "screen-diff", text: r ? diffText(r.diff) : "—" }),
        el("td", { class: "text" },
          button("Run now", "screen-run", () => runNow(s.name)),
          " ",
          button("Delete", "screen-delete", () => remove(`/api/v1/screens/${encodeURIComponent(s.name)}`, `screen ${s.name}`), "danger")));
    }), 8, "no screen saved yet"));
    $('[data-testid="webhooks-table"] tbody').replaceChildren(...rowsOr(webhooks.map((h) =>
      el("tr", { "data-webhook": h.id },
        el("td", { class: "text", text: h.id }),
        el("td", { class: "text", text: h.url }),
        el("td", { class: "text", text: h.screens ? h.screens.join(", ") : "all" }),
        el("td", { class: "text" },
          button("Delete", "webhook-delete", () => remove(`/api/v1/webhooks/${encodeURIComponent(h.id)}`, `webhook ${h.url}`), "danger")))),
    4, "no webhook registered"));
    $('[data-testid="deliveries-table"] tbody').replaceChildren(
      ...rowsOr(deliveries.map((d) => deliveryRow(d, false)), 6, "nothing delivered yet"));
    $('[data-testid="dead-table"] tbody').replaceChildren(
      ...rowsOr(dead.deliveries.map((d) => deliveryRow(d, true)), 6, "no dead letter"));
    $('[data-testid="dead-count"]').textContent = `(${dead.deliveries.length})`;
    const select = $("#screen-watchlist");
    const chosen = select.value;
    select.replaceChildren(el("option", { value: "", text: "the Scanner's universe" }),
      ...watchlists.map((w) => el("option", { value: w.name, text: `watchlist ${w.name} (${w.symbols.length})` })));
    select.value = watchlists.some((w) => w.name === chosen) ? chosen : "";
  } catch (e) {
    showError(e, "screens", refresh);
  }
}

async function save(ev) {
  ev.preventDefault();
  const f = ev.currentTarget;
  const body = { ...scanOptions(), name: f.elements.name.value.trim() };
  const watchlist = f.elements.watchlist.value;
  if (watchlist) {
    delete body.symbols;
    delete body.universe_size;
    body.watchlist = watchlist;
  }
  const cron = f.elements.cron.value.trim();
  if (cron) body.schedule = { cron, timezone: f.elements.timezone.value.trim() || "UTC" };
  try {
    await api("PUT", `/api/v1/screens/${encodeURIComponent(body.name)}`, body);
    clearError("screens");
    refresh();
  } catch (e) {
    showError(e, "screens");
  }
}

async function addWebhook(ev) {
  ev.preventDefault();
  const f = ev.currentTarget;
  const names = f.elements.screens.value.split(",").map((s) => s.trim()).filter(Boolean);
  const body = { url: f.elements.url.value.trim(), secret: f.elements.secret.value, screens: names.length ? names : "all" };
  try {
    await api("POST", "/api/v1/webhooks", body);
    f.elements.secret.value = "";
    clearError("screens");
    refresh();
  } catch (e) {
    showError(e, "screens");
  }
}

export const page = {
  name: "screens",
  pollMs: 2000,
  init() {
    $("#screen-form").addEventListener("submit", save);
    $("#webhook-form").addEventListener("submit", addWebhook);
  },
  refresh,
};
