// How the page talks to yolowatch. Two keys, kept apart, each for this browser tab only (sessionStorage):
// the admin key goes to /api/* and nowhere else; the predict key goes to the predict route and nowhere else.

import { $ } from "./dom.js";

const ADMIN_KEY_STORE = "yolowatch-api-key";
const PREDICT_KEY_STORE = "yolowatch-predict-key";
const API_TIMEOUT_MS = 15_000;
const PREDICT_TIMEOUT_MS = 120_000; // a first prediction may load the model
export const RETRY_EVERY_MS = 5_000; // while the API cannot be reached

let apiDown = false;

export class Unauthorized extends Error {}

export const isApiDown = () => apiDown;

// GET (or `options.method`) an admin API path; `options.json` is sent as a JSON body. Answers the parsed body,
// throws on an error answer; an unreachable API shows the banner, a 401 asks for the admin key.
export async function api(path, options = {}) {
  const { json, ...init } = options;
  if (json !== undefined) { init.headers = { ...(init.headers || {}), "Content-Type": "application/json" }; init.body = JSON.stringify(json); }
  const response = await send(path, { cache: "no-store", ...init });
  const body = await response.json().catch(() => ({ error: `answer ${response.status} is not JSON` }));
  if (response.status >= 500 && response.status !== 503) {
    setApiDown(`the API answered ${response.status}: ${body.error || ""}`);
    throw new Error(body.error);
  }
  setApiDown(null);
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

// GET an admin API path that answers bytes (a sampled frame's image) as a Blob, with the admin key: an <img src>
// cannot send the key, so the page fetches the bytes and shows them from a blob: URL. Throws on an error answer.
export async function apiBlob(path, options = {}) {
  const response = await send(path, options);
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(body.error || `HTTP ${response.status}`);
  }
  return response.blob();
}

// One request to the admin API with the admin key: an unreachable API shows the banner, a 401 asks for the key.
async function send(path, options) {
  const { timeoutMs = API_TIMEOUT_MS, ...init } = options;
  const headers = { ...(init.headers || {}) };
  const key = sessionStorage.getItem(ADMIN_KEY_STORE);
  if (key) headers.Authorization = `Bearer ${key}`;
  let response;
  try {
    // A hung API must not hang the page: past the timeout it counts as unreachable, and is retried.
    response = await fetch(path, { ...init, headers, signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    setApiDown(`cannot reach the yolowatch API (${error.name === "TimeoutError" ? `no answer within ${timeoutMs / 1000} s` : error.message})`);
    throw error;
  }
  if (response.status === 401) {
    setApiDown(null);
    askForAdminKey(key ? "That key was refused." : "");
    throw new Unauthorized();
  }
  return response;
}

function setApiDown(reason) {
  const banner = $("#banner");
  apiDown = Boolean(reason);
  banner.hidden = !reason;
  banner.textContent = reason ? `${reason}. The page keeps what it last showed and retries every ${RETRY_EVERY_MS / 1000} s.` : "";
}

function askForAdminKey(message) {
  $("#auth").hidden = false;
  $("#auth-error").textContent = message;
  $("#auth-key").focus();
}

// The admin key form (#auth): a submitted key is kept for the tab, then `onKey` runs (to load again).
export function listenForAdminKey(onKey) {
  $("#auth").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("#auth-key").value.trim();
    if (!key) return;
    sessionStorage.setItem(ADMIN_KEY_STORE, key);
    $("#auth").hidden = true;
    $("#auth-key").value = "";
    onKey();
  });
}

// The predict key the route last accepted ("" if none was needed or entered).
export const predictKey = () => sessionStorage.getItem(PREDICT_KEY_STORE) || "";

// POST an image to the predict route with `key` (an open route needs none): a key the route accepts is kept
// for the tab, a kept key it refuses is forgotten. Answers { status, body }; throws when it cannot be reached.
export async function predict(url, file, key = predictKey()) {
  const form = new FormData();
  form.append("file", file);
  const headers = key ? { Authorization: `Bearer ${key}` } : {};
  const response = await fetch(url, { method: "POST", body: form, headers, signal: AbortSignal.timeout(PREDICT_TIMEOUT_MS) });
  if (response.status === 401) sessionStorage.removeItem(PREDICT_KEY_STORE);
  else if (key) sessionStorage.setItem(PREDICT_KEY_STORE, key);
  const body = await response.json().catch(() => ({ error: `answer ${response.status} is not JSON` }));
  return { status: response.status, body };
}

// The deployment's own predict URL, for snippets (a wildcard bind address is shown as this page's host).
export function endpointUrl(info) {
  try {
    const url = new URL(info.endpoint);
    if (["0.0.0.0", "[::]"].includes(url.hostname)) url.hostname = location.hostname;
    if (!url.pathname.endsWith("/predict")) url.pathname = url.pathname.replace(/\/?$/, "/predict");
    return url.href;
  } catch { return `${location.origin}/predict`; }
}

// Where the Predict tab sends: the page talks to its own origin only (its Content-Security-Policy says so).
export function predictUrl(info) {
  const url = endpointUrl(info);
  return new URL(url).origin === location.origin ? url : `${location.origin}/predict`;
}
