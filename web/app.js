// technic dashboard: plain ES modules over the control plane (/api/v1). No framework,
// no bundler; uPlot (vendored, loaded before this module) draws the charts.
//
// This is the entry module: the `#hash` router between the pages, the polling of
// the page on screen, the API token field and the error panel's buttons. Each page is a
// module exporting `page` = { name, init?, refresh?, pollMs?, pause?, resume? }.
//
// Every page polls only while it is shown and the tab is visible; the scanner follows a
// running scan over Server-Sent Events. Every failed call lands in one error panel with
// the API's message, suggestions and a Retry that repeats the call.

import { getToken, setToken } from "./api.js";
import { page as cachePage } from "./cache.js";
import { page as clusterPage } from "./cluster.js";
import { initErrorPanel } from "./errors.js";
import { page as performancePage } from "./performance.js";
import { page as scannerPage } from "./scanner.js";
import { page as screensPage } from "./screens.js";
import { $ } from "./ui.js";
import { page as watchlistsPage } from "./watchlists.js";

const PAGES = [scannerPage, performancePage, cachePage, clusterPage, screensPage, watchlistsPage];
const NAMES = PAGES.map((p) => p.name);

const state = {
  page: "scanner",
  timer: null,
};

// ---------- pages, polling, visibility ----------
function stopPolling() {
  clearTimeout(state.timer);
  state.timer = null;
}

function poll() {
  stopPolling();
  const name = state.page;
  const page = PAGES.find((p) => p.name === name);
  if (!page.refresh || document.hidden) return;
  const tick = async () => {
    await page.refresh();
    if (state.page === name && !document.hidden) state.timer = setTimeout(tick, page.pollMs);
  };
  tick();
}

function show(page, focus) {
  if (!NAMES.includes(page)) page = "scanner";
  state.page = page;
  for (const p of NAMES) $(`#page-${p}`).hidden = p !== page;
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
    for (const p of PAGES) p.pause?.();
  } else {
    poll();
    for (const p of PAGES) p.resume?.();
  }
});

function initToken() {
  const input = $("#token-input");
  const status = $("#token-state");
  status.textContent = getToken() ? "token set for this session" : "";
  $("#token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = input.value.trim();
    setToken(v);
    input.value = "";
    status.textContent = v ? "token set for this session" : "no token";
    window.dispatchEvent(new Event("technic:token"));
    poll();
  });
}

function init() {
  for (const p of NAMES) $(`#h-${p}`).setAttribute("tabindex", "-1");
  initToken();
  initErrorPanel();
  for (const p of PAGES) p.init?.();
  window.addEventListener("hashchange", () => show(location.hash.slice(1), true));
  show(location.hash.slice(1), false);
  document.body.dataset.ready = "true";
}

init();
