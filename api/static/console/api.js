// HTTP helpers: every call carries the editor's name, and every failure becomes an ApiError
// holding the server's own message, so the page can show what went wrong in its words.

const ACTOR_KEY = "medley.console.actor";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function actor() {
  try {
    return localStorage.getItem(ACTOR_KEY) || "";
  } catch {
    return ""; // storage can be disabled; the server then records "anonymous"
  }
}

export function setActor(name) {
  try {
    localStorage.setItem(ACTOR_KEY, name.trim());
  } catch {
    /* not persisted; still sent for this page's requests via the field */
  }
}

export async function api(method, path, body) {
  const headers = { accept: "application/json" };
  const who = actor();
  // fetch() refuses a header value outside Latin-1, which would fail every call.
  if (who && /^[\x20-\x7e\xa0-\xff]{1,80}$/.test(who)) headers["X-Medley-Actor"] = who;
  if (body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(0, "network", `the server did not answer (${err.message})`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = data && data.error;
    const message = error && error.message
      ? error.message
      : `${response.status} ${response.statusText || "error"}`;
    throw new ApiError(response.status, error ? error.code : "http", message);
  }
  return data;
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

const PLACEHOLDER =
  "data:image/svg+xml," +
  encodeURIComponent(
    '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">' +
      '<rect width="64" height="64" fill="#e3e6ea"/>' +
      '<path d="M14 46l12-14 9 10 6-7 9 11z" fill="#a9b0b8"/>' +
      '<circle cx="44" cy="22" r="5" fill="#a9b0b8"/></svg>',
  );

// Items without artwork answer 404 for their thumbnail; a neutral tile keeps rows aligned.
export function thumb(src, alt = "") {
  const img = el("img", {
    class: "thumb",
    alt,
    loading: "lazy",
    width: 48,
    height: 48,
    src: src || PLACEHOLDER,
  });
  img.addEventListener("error", () => {
    if (img.src !== PLACEHOLDER) {
      img.src = PLACEHOLDER;
      img.dataset.placeholder = "true";
    }
  });
  if (!src) img.dataset.placeholder = "true";
  return img;
}
