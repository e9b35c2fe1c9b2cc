// Thumbnails need the API key, which an <img src> cannot send: each is fetched with the key and
// shown through an object URL. The URLs belong to a group (the picker, the preview) and are
// revoked when that group is drawn again. Fetched images are kept as blobs, so drawing again
// asks the server nothing; an image is fetched once it scrolls near view, a few at a time,
// waiting out a 429 rather than spending the key's rate on artwork.

import { apiBlob, el } from "./api.js";

const PLACEHOLDER =
  "data:image/svg+xml," +
  encodeURIComponent(
    '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">' +
      '<rect width="64" height="64" fill="#e3e6ea"/>' +
      '<path d="M14 46l12-14 9 10 6-7 9 11z" fill="#a9b0b8"/>' +
      '<circle cx="44" cy="22" r="5" fill="#a9b0b8"/></svg>',
  );
const PARALLEL = 4;
const MAX_KEPT = 300;

const blobs = new Map(); // path -> Promise<Blob | null> (null: no artwork, 404)
const groups = new Map(); // name -> { gen, urls, waiting }
const starts = new WeakMap(); // img -> what to do once it is near view
const queue = [];
let running = 0;
let pausedUntil = 0;
let wake = null;

const observer = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    if (!entry.isIntersecting) continue;
    observer.unobserve(entry.target);
    const start = starts.get(entry.target);
    starts.delete(entry.target);
    if (start) start();
  }
}, { rootMargin: "300px" });

function group(name) {
  if (!groups.has(name)) groups.set(name, { gen: 0, urls: [], waiting: new Set() });
  return groups.get(name);
}

function pump() {
  while (running < PARALLEL && queue.length) {
    const wait = pausedUntil - Date.now();
    if (wait > 0) {
      if (!wake) wake = setTimeout(() => { wake = null; pump(); }, wait);
      return;
    }
    const job = queue.shift();
    running += 1;
    apiBlob(job.path).then(job.resolve, (err) => {
      if (err.status === 429) {
        pausedUntil = Date.now() + 1000 * (err.retryAfter || 1);
        queue.unshift(job);
      } else {
        job.reject(err);
      }
    }).finally(() => {
      running -= 1;
      pump();
    });
  }
}

function load(path) {
  let promise = blobs.get(path);
  if (promise) return promise;
  promise = new Promise((resolve, reject) => {
    queue.push({ path, resolve, reject });
    pump();
  }).catch((err) => {
    // Only "no artwork" is worth remembering; a later drawing asks again after anything else.
    if (err.status !== 404 && blobs.get(path) === promise) blobs.delete(path);
    return null;
  });
  blobs.set(path, promise);
  if (blobs.size > MAX_KEPT) blobs.delete(blobs.keys().next().value);
  return promise;
}

function placeholder(img) {
  img.src = PLACEHOLDER;
  img.dataset.placeholder = "true";
}

// An <img> showing the artwork at `path` (an API path), or a neutral tile when there is none.
export function thumb(path, groupName, alt = "") {
  const img = el("img", { class: "thumb", alt, width: 48, height: 48, src: PLACEHOLDER });
  if (!path) {
    img.dataset.placeholder = "true";
    return img;
  }
  const g = group(groupName);
  const gen = g.gen;
  img.dataset.loading = "true";
  img.addEventListener("error", () => img.src !== PLACEHOLDER && placeholder(img));
  starts.set(img, () => {
    g.waiting.delete(img);
    load(path).then((blob) => {
      if (gen !== g.gen) return; // drawn again meanwhile: this <img> is gone
      delete img.dataset.loading;
      if (!blob) {
        placeholder(img);
        return;
      }
      const url = URL.createObjectURL(blob);
      g.urls.push(url);
      img.src = url;
    });
  });
  g.waiting.add(img);
  observer.observe(img);
  return img;
}

// Before a group is drawn again: its object URLs are revoked, its unseen images forgotten.
export function release(groupName) {
  const g = group(groupName);
  g.gen += 1;
  for (const url of g.urls) URL.revokeObjectURL(url);
  for (const img of g.waiting) {
    observer.unobserve(img);
    starts.delete(img);
  }
  g.urls = [];
  g.waiting.clear();
}

// Signing out: nothing fetched with the key stays behind.
export function forget() {
  for (const name of groups.keys()) release(name);
  queue.length = 0;
  blobs.clear();
}
