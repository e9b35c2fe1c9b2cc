// Shared page state and the message line, used by every part of the console.

import { ApiError, MODALITIES } from "./api.js";

export const $ = (id) => document.getElementById(id);

export const state = {
  epoch: 0, // bumped on sign-out: work begun for an earlier sign-in stops
  active: null,
  profiles: [],
  weights: Object.fromEntries(MODALITIES.map((m) => [m, 1])),
  savedId: null, // the saved profile the draft equals; null while the draft is unsaved
  picked: new Set(),
  busy: false, // a publish or rollback is being followed
  offline: false, // the fusion API did not answer: keep its message, do not ask for previews
  previewSeq: 0,
  lagRetries: 0, // previews asked again while serving catches up with a publish
  timer: null,
};

export function say(text, kind = "info") {
  const box = $("messages");
  box.className = `messages ${kind}`;
  box.dataset.kind = kind;
  box.textContent = text;
}

export function later(seconds) {
  const at = new Date(Date.now() + seconds * 1000).toLocaleTimeString();
  return `try again in ${seconds} s (after ${at})`;
}

export function fail(err, doing) {
  const status = err instanceof ApiError && err.status ? ` (${err.status})` : "";
  if (err instanceof ApiError && err.status === 401) return; // the sign-in form says why
  if (err instanceof ApiError && err.status === 429) {
    say(`Could not ${doing}${status}: this key has made too many requests; ` +
      `${later(err.retryAfter ?? 1)}.`, "error");
  } else if (err instanceof ApiError && err.status === 403) {
    say(`Could not ${doing}${status}: not allowed with this key — ${err.message}.`, "error");
  } else {
    say(`Could not ${doing}${status}: ${err.message}`, "error");
  }
}
