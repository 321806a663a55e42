// The Watchlists page: save a watchlist from typed symbols or a CSV file, list them,
// export one as CSV, delete one. A screen or a scan takes one as its universe.

import { api, download, sendText } from "./api.js";
import { clearError, showError } from "./errors.js";
import { $, confirmAction, el, fmtInt } from "./ui.js";

async function refresh() {
  try {
    const { watchlists } = await api("GET", "/api/v1/watchlists");
    clearError("watchlists");
    const rows = watchlists.map((w) => {
      const exp = el("button", { type: "button", class: "secondary", "data-testid": "watchlist-export", text: "Export CSV" });
      exp.addEventListener("click", () => download(`/api/v1/watchlists/${encodeURIComponent(w.name)}?format=csv`, `${w.name}.csv`)
        .catch((e) => showError(e, "watchlists")));
      const del = el("button", { type: "button", class: "danger", "data-testid": "watchlist-delete", text: "Delete" });
      del.addEventListener("click", () => remove(w.name));
      return el("tr", { "data-watchlist": w.name },
        el("td", { class: "text", text: w.name }),
        el("td", { text: fmtInt(w.symbols.length) }),
        el("td", { class: "text", text: w.symbols.slice(0, 8).join(", ") + (w.symbols.length > 8 ? "…" : "") }),
        el("td", { text: fmtInt(w.version) }),
        el("td", { class: "text" }, exp, " ", del));
    });
    $('[data-testid="watchlists-table"] tbody').replaceChildren(
      ...(rows.length ? rows : [el("tr", {}, el("td", { class: "text", colspan: "5", text: "no watchlist saved yet" }))]));
  } catch (e) {
    showError(e, "watchlists", refresh);
  }
}

async function remove(name) {
  if (!(await confirmAction(`Delete watchlist ${name}?`, "Screens that use it will fail to run."))) return;
  try {
    await api("DELETE", `/api/v1/watchlists/${encodeURIComponent(name)}`);
    refresh();
  } catch (e) {
    showError(e, "watchlists", () => remove(name));
  }
}

async function save(ev) {
  ev.preventDefault();
  const f = ev.currentTarget;
  const name = f.elements.name.value.trim();
  const path = `/api/v1/watchlists/${encodeURIComponent(name)}`;
  const file = f.elements.file.files[0];
  try {
    if (file) {
      await sendText("PUT", path, await file.text(), "text/csv");
      f.elements.file.value = "";
    } else {
      const symbols = f.elements.symbols.value.split(/[,\s]+/).map((s) => s.trim()).filter(Boolean);
      await api("PUT", path, { symbols });
    }
    clearError("watchlists");
    refresh();
  } catch (e) {
    showError(e, "watchlists");
  }
}

export const page = {
  name: "watchlists",
  pollMs: 5000,
  init() {
    $("#watchlist-form").addEventListener("submit", save);
  },
  refresh,
};
