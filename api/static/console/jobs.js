// The confirmation dialog and the re-fusion job's progress.

import { api } from "./api.js";
import { state } from "./state.js";

const POLL_MS = 300;
const EVAL_POLL_MS = 400;
const FINAL = new Set(["succeeded", "failed"]);

// A modal <dialog>: the browser traps focus inside it and Escape cancels; focus starts on
// Cancel (the harmless choice) and goes back to whatever opened it.
export function confirmDialog(text, okLabel) {
  const dialog = document.getElementById("confirm");
  const opener = document.activeElement;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = okLabel;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        if (opener && typeof opener.focus === "function" && opener.isConnected) opener.focus();
        resolve(dialog.returnValue === "ok");
      },
      { once: true },
    );
    dialog.showModal();
    document.getElementById("confirm-cancel").focus();
  });
}

function show(job, label) {
  const panel = document.getElementById("job-panel");
  const bar = document.getElementById("job-progress");
  const text = document.getElementById("job-text");
  panel.hidden = false;
  const pct = Math.round((job.status === "succeeded" ? 1 : job.progress || 0) * 100);
  bar.value = pct;
  bar.setAttribute("aria-valuetext", `${pct}%`);
  panel.dataset.status = job.status;
  panel.dataset.jobId = job.id;
  const counts = job.total ? ` (${job.done}/${job.total} items)` : "";
  const states = {
    queued: `${label}: queued…`,
    running: `${label}: ${pct}%${counts}`,
    succeeded: `${label}: done — ${pct}%${counts}`,
    failed: `${label} failed: ${job.error || "unknown error"}`,
  };
  text.textContent = states[job.status] || `${label}: ${job.status}`;
}

export function starting(label) {
  show({ id: "", status: "queued", progress: 0, total: 0, done: 0 }, label);
  document.getElementById("job-panel").scrollIntoView({ block: "nearest" });
}

export function notStarted(label, why) {
  show({ id: "", status: "failed", progress: 0, total: 0, done: 0, error: why }, label);
  document.getElementById("job-panel").dataset.status = "not-started";
  document.getElementById("job-text").textContent = `${label} did not start: ${why}`;
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls until the job is final; a poll that fails (server restarting) is retried, one over the
// key's rate waits as long as the server asks. A missing job or a sign-out ends the wait early.
export async function follow(job, label, onError) {
  const epoch = state.epoch;
  show(job, label);
  while (!FINAL.has(job.status)) {
    await pause(POLL_MS);
    if (epoch !== state.epoch) return job;
    try {
      job = await api("GET", `/v1/fusion/jobs/${encodeURIComponent(job.id)}`);
    } catch (err) {
      if (err.status === 401) return job;
      if (err.status === 429) {
        await pause(1000 * (err.retryAfter || 1));
        continue;
      }
      onError(err);
      if (err.status === 404) return job;
      continue;
    }
    show(job, label);
  }
  return job;
}

// Polls an offline evaluation job (GET /v1/fusion/evaluations/{id}) until it is final, calling
// onUpdate with every answer; retries as follow() does. Returns the last job read; `stale()`
// true (signed out, another experiment picked) ends the wait early and returns null.
export async function followEvaluation(job, onUpdate, stale = () => false) {
  onUpdate(job);
  while (!FINAL.has(job.status)) {
    await pause(EVAL_POLL_MS);
    if (stale()) return null;
    try {
      job = await api("GET", `/v1/fusion/evaluations/${encodeURIComponent(job.id)}`);
    } catch (err) {
      if (err.status === 429) {
        await pause(1000 * (err.retryAfter || 1));
        continue;
      }
      if (err.status === 0 || err.status >= 500) continue; // the server restarting: ask again
      throw err;
    }
    if (stale()) return null;
    onUpdate(job);
  }
  return job;
}

// An evaluation job's progress bar, panel state and progress line (both console pages):
// `ids` names the bar, the panel and the line; `label` starts the line.
export function showEvaluationJob(job, ids, label) {
  const bar = document.getElementById(ids.bar);
  const panel = document.getElementById(ids.panel);
  const line = document.getElementById(ids.line);
  const pct = evaluationPercent(job);
  bar.hidden = job.status === "failed"; // the words beside it say why instead
  bar.value = pct;
  bar.setAttribute("aria-valuetext", `${pct}%`);
  panel.dataset.status = job.status;
  if (job.id) panel.dataset.jobId = job.id;
  line.textContent = evaluationText(job, label);
  line.classList.toggle("eval-error", job.status === "failed");
}

// "Evaluation: 40%" — what a progress line says about an evaluation job.
export function evaluationText(job, label) {
  const pct = evaluationPercent(job);
  return {
    queued: `${label}: queued…`,
    running: `${label}: ${pct}%`,
    succeeded: `${label}: done — 100%`,
    failed: `${label} failed: ${job.error || "unknown error"}`,
  }[job.status] || `${label}: ${job.status}`;
}

export function evaluationPercent(job) {
  return Math.round((job.status === "succeeded" ? 1 : job.progress || 0) * 100);
}

export function labelFor(action) {
  return action === "rollback" ? "Rollback" : "Publish";
}
