// The one way the UI talks to the gateway: the same /v1 API programs use, with the key from sign-in.
// Errors come back as ApiError (the gateway's stable `code`), or NetworkError when the server is unreachable,
// so screens can say something a person can act on.

const KEY = "enclave.token";

export class ApiError extends Error {
  constructor(status, code, message, param) {
    super(message);
    this.status = status;
    this.code = code;
    this.param = param;
  }
}

export class NetworkError extends Error {}

const listeners = new Set();

/** Called with a message when the key stops working (expired, revoked): the app goes back to sign-in. */
export function onSignedOut(fn) {
  listeners.add(fn);
}

export function token() {
  return sessionStorage.getItem(KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
}

export function signOut(message) {
  setToken(null);
  for (const fn of listeners) fn(message);
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    /* not JSON */
  }
  const e = body && body.error ? body.error : {};
  return new ApiError(response.status, e.code || `http_${response.status}`,
    e.message || response.statusText || "the request failed", e.param);
}

/** fetch() with the key; JSON in and out by default. Options: method, json, body, raw (return the Response). */
export async function api(path, { method = "GET", json, body, headers = {}, raw = false, signal } = {}) {
  const h = { ...headers };
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  if (json !== undefined) {
    h["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, { method, headers: h, body, signal });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new NetworkError("The gateway cannot be reached. Check the connection and try again.");
  }
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401) signOut(expiredMessage(error));
    if (response.status === 502 || response.status === 503 || response.status === 504) {
      throw new NetworkError(error.message || "The service is unavailable right now. Try again in a moment.");
    }
    throw error;
  }
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

function expiredMessage(error) {
  if (error.code === "invalid_api_key" || error.code === "revoked_api_key" || error.code === "expired_api_key") {
    return "Your key is no longer valid (expired or revoked). Sign in again.";
  }
  if (error.code === "invalid_token" || error.code === "token_expired") return "Your session expired. Sign in again.";
  return error.message || "Sign in again.";
}

/** Server-sent events of a streamed chat answer: yields each `data:` payload parsed as JSON until [DONE]. */
export async function* sse(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (err) {   // the connection broke off mid-answer (a proxy timeout, Wi-Fi): not a bug, a network problem
      if (err.name === "AbortError") throw err;   // stopped on purpose
      throw new NetworkError("The connection broke off during the answer.");
    }
    const { value, done } = chunk;
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        try {
          yield JSON.parse(data);
        } catch {
          /* a keep-alive or a partial line */
        }
      }
    }
  }
}

/** Small DOM helper: el("button", {class: "x", onclick: f, "aria-label": "…"}, "text", child…). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else if (v === true) node.setAttribute(k, "");
    else node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** A message a person can read for any error. */
export function describe(err) {
  if (err instanceof NetworkError) return err.message;
  if (err instanceof ApiError) return `${err.message} (${err.code})`;
  return String(err && err.message ? err.message : err);
}
