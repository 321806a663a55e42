// uPlot wrappers. uPlot's IIFE build (web/vendor) is loaded with `defer` before the entry
// module, so `window.uPlot` exists when a page draws. A chart is kept per name and fed
// new data in place; it follows the window's width.

import { el } from "./ui.js";

const HEIGHT = 260;
const charts = {};

/// Draws (or updates) chart `name` in `container`; `data[0]` is the x series.
export function drawChart(name, container, opts, data) {
  container.dataset.points = String(data[0].length);
  const width = Math.max(280, container.clientWidth || 600);
  const old = charts[name];
  if (!window.uPlot) {
    container.replaceChildren(el("p", { class: "empty", text: "chart library failed to load" }));
    return;
  }
  if (!data[0].length) {
    if (old) { old.destroy(); delete charts[name]; }
    container.replaceChildren(el("p", { class: "empty", text: "no data yet" }));
    return;
  }
  if (old && old.series.length === opts.series.length && container.contains(old.root)) {
    old.setData(data);
    if (Math.abs(old.width - width) > 2) old.setSize({ width, height: HEIGHT });
    return;
  }
  if (old) old.destroy();
  container.replaceChildren();
  charts[name] = new window.uPlot({ ...opts, width, height: HEIGHT }, data, container);
}

window.addEventListener("resize", () => {
  for (const [name, c] of Object.entries(charts)) {
    const box = c.root.parentElement;
    if (box && box.clientWidth) c.setSize({ width: box.clientWidth, height: HEIGHT });
    else delete charts[name];
  }
});
