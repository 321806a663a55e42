// The one error panel: every failed call lands here with the API's code, message and
// suggestions, and Retry repeats the call. `source` names who raised it, so a later
// success of the same call clears it without hiding someone else's error.

import { $, el } from "./ui.js";

let errorSource = null;
let retryCall = null;

export function showError(err, source, retry) {
  const panel = $('[data-testid="error-panel"]');
  $("#error-code").textContent = err.code || "ERROR";
  $("#error-message").textContent = err.message;
  const list = $("#error-suggestions");
  list.replaceChildren(...(err.suggestions || []).map((s) => el("li", { text: s })));
  if (err.code === "UNAUTHORIZED") list.append(el("li", { text: "enter the token in the API token field at the top, then press Retry" }));
  if (err.code === "FORBIDDEN") list.append(el("li", { text: "the token entered may only read: enter the full token in the API token field at the top, then press Retry" }));
  errorSource = source;
  retryCall = retry;
  $("#error-retry").hidden = !retry;
  panel.hidden = false;
}

export function clearError(source) {
  if (source && errorSource !== source) return;
  $('[data-testid="error-panel"]').hidden = true;
  errorSource = null;
  retryCall = null;
}

/// Wires Retry (clears the panel, then repeats the failed call) and Dismiss.
export function initErrorPanel() {
  $("#error-retry").addEventListener("click", () => {
    const retry = retryCall;
    clearError();
    if (retry) retry();
  });
  $("#error-dismiss").addEventListener("click", () => clearError());
}
