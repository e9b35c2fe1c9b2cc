// HTTP helpers: every call carries the signed-in editor's API key, and every failure becomes an
// ApiError holding the server's own message, so the page can show what went wrong in its words.

// sessionStorage, not localStorage: the key must not outlive the browser session.
const KEY_STORE = "medley.console.key";

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null, details = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter; // seconds, from a 429's Retry-After
    this.details = details; // a 422's [{field, problem}], one per refused field
  }
}

function stored() {
  try {
    return sessionStorage.getItem(KEY_STORE) || "";
  } catch {
    return ""; // storage disabled: the key lives only as long as the page
  }
}

let current = stored();
let session = 0; // bumped on every sign-in and sign-out: answers to an older session are dropped
let onRefused = () => {};

export function currentKey() {
  return current;
}

export function setKey(key) {
  current = key || "";
  session += 1;
  try {
    if (current) sessionStorage.setItem(KEY_STORE, current);
    else sessionStorage.removeItem(KEY_STORE);
  } catch {
    /* kept in memory for this page only */
  }
}

// Called once with the error when the server refuses the signed-in key (401): revoked meanwhile.
export function whenRefused(handler) {
  onRefused = handler;
}

// Retry-After is either seconds or an HTTP date.
export function retryAfter(value) {
  if (!value) return null;
  if (/^\s*\d+\s*$/.test(value)) return Number(value);
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

async function failure(response) {
  let data = null;
  try {
    data = JSON.parse(await response.text());
  } catch {
    data = null;
  }
  const error = data && data.error;
  const message = error && error.message
    ? error.message
    : `${response.status} ${response.statusText || "error"}`;
  return new ApiError(response.status, error ? error.code : "http", message,
    retryAfter(response.headers.get("retry-after")),
    error && Array.isArray(error.details) ? error.details : null);
}

// One request with a key: the signed-in one, or (for the sign-in check) the one given.
async function send(method, path, { body, key = current, accept = "application/json",
  quiet = false } = {}) {
  if (!key) throw new ApiError(401, "signed_out", "not signed in");
  const mine = session;
  const headers = { accept, authorization: `Bearer ${key}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (err) {
    throw new ApiError(0, "network", `the server did not answer (${err.message})`);
  }
  if (mine !== session) throw new ApiError(401, "signed_out", "signed out meanwhile");
  if (!response.ok) {
    const error = await failure(response);
    if (error.status === 401 && !quiet && key === current) onRefused(error);
    throw error;
  }
  return response;
}

export async function api(method, path, body) {
  const text = await (await send(method, path, { body })).text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

export async function apiBlob(path) {
  return (await send("GET", path, { accept: "image/*" })).blob();
}

// The key's own record ({id, name, role, ...}); a refusal here is the sign-in form's to explain.
export async function whoami(key) {
  return (await send("GET", "/v1/keys/me", { key, quiet: true })).json();
}

export const MODALITIES = ["image", "video", "speech", "text", "clip_text"];
export const LABELS = {
  image: "Image",
  video: "Video",
  speech: "Speech",
  text: "Text",
  clip_text: "CLIP text",
};

export function percentages(weights) {
  const total = MODALITIES.reduce((sum, m) => sum + (Number(weights[m]) || 0), 0);
  const out = {};
  for (const m of MODALITIES) {
    out[m] = total > 0 ? Math.round(((Number(weights[m]) || 0) / total) * 100) : 0;
  }
  return out;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "style") Object.assign(node.style, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}
