// The control plane's client: every call of the dashboard goes through `api()`, which
// sends JSON, adds the session's token (when the server has one, reads need it too) and
// turns any failure into an `ApiError` carrying the API's error shape
// `{error:{code,message,suggestions,retryable}}`. `openEvents()` follows a Server-Sent
// Events stream and `download()` saves a file, both with the token: EventSource and a
// plain link cannot send a header, and a token in the URL would land in logs.

const TOKEN_KEY = "technic.token";

/// The token typed into the header field, kept for this tab only (`sessionStorage`).
export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/// Saves the token, or forgets it when `value` is empty.
export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `the server answered ${status}`);
    this.status = status;
    this.code = e.code || (status ? `HTTP_${status}` : "NETWORK");
    this.suggestions = Array.isArray(e.suggestions) ? e.suggestions : [];
    this.retryable = !!e.retryable;
  }
}

/// `headers` with the session's token, if any.
function withToken(headers) {
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  return headers;
}

const NETWORK = {
  error: {
    code: "NETWORK",
    message: "the server does not answer",
    suggestions: ["check that technic serve is still running", "then press Retry"],
    retryable: true,
  },
};

/// `fetch` whose failures are `ApiError`s: no answer, or a non-2xx with its error body.
async function call(path, init) {
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    if (init.signal?.aborted) throw e;
    throw new ApiError(0, NETWORK);
  }
  if (!res.ok) {
    const text = await res.text().catch(() => "");
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { json = null; }
    throw new ApiError(res.status, json);
  }
  return res;
}

export async function api(method, path, body) {
  const headers = withToken({ Accept: "application/json" });
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await call(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  try { return text ? JSON.parse(text) : null; } catch { return null; }
}

/// Sends `text` as `contentType` (a CSV upload); the answer's JSON.
export async function sendText(method, path, text, contentType) {
  const headers = withToken({ Accept: "application/json", "Content-Type": contentType });
  const res = await call(path, { method, headers, body: text });
  return res.json().catch(() => null);
}

/// Saves the file at `path` as `name`, fetched with the token.
export async function download(path, name) {
  const res = await call(path, { headers: withToken({}) });
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/// Follows the Server-Sent Events at `path`, sending `lastEventId` as `Last-Event-ID`.
/// Calls `onEvent(type, data, id)` per event and, unless `close()` was called first,
/// `onClose(error)` once when the stream ends: `error` is null for a clean end, else the
/// `ApiError` (a lost connection, or the server's refusal). Returns `{ close }`.
export function openEvents(path, { lastEventId, onEvent, onClose }) {
  const ctrl = new AbortController();
  const headers = withToken({ Accept: "text/event-stream" });
  if (lastEventId) headers["Last-Event-ID"] = lastEventId;
  (async () => {
    let error = null;
    try {
      const res = await call(path, { headers, signal: ctrl.signal, cache: "no-store" });
      if (res.status !== 204) await readEvents(res.body, onEvent, () => ctrl.signal.aborted);
    } catch (e) {
      error = e instanceof ApiError ? e : new ApiError(0, NETWORK);
    }
    if (!ctrl.signal.aborted) onClose(error);
  })();
  return { close: () => ctrl.abort() };
}

/// The event-stream format: `field: value` lines, a blank line ends an event, `:` starts
/// a comment (the keep-alives).
async function readEvents(body, onEvent, closed) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  let ev = { type: "", data: [], id: null };
  for (;;) {
    const { value, done } = await reader.read();
    if (done || closed()) return;
    buf += value;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).replace(/\r$/, "");
      buf = buf.slice(nl + 1);
      if (line === "") {
        if (ev.data.length) onEvent(ev.type || "message", ev.data.join("\n"), ev.id);
        ev = { type: "", data: [], id: null };
        if (closed()) return;
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const v = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") ev.type = v;
      else if (field === "data") ev.data.push(v);
      else if (field === "id") ev.id = v;
    }
  }
}
