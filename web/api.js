// The control plane's client: every call of the dashboard goes through `api()`, which
// sends JSON, adds the session's token to mutating calls and turns any failure into an
// `ApiError` carrying the API's error shape `{error:{code,message,suggestions,retryable}}`.

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

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const token = getToken();
  if (method !== "GET" && token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, {
      error: {
        code: "NETWORK",
        message: "the server does not answer",
        suggestions: ["check that technic serve is still running", "then press Retry"],
        retryable: true,
      },
    });
  }
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}
