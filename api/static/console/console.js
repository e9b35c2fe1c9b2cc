// The fusion editor console: draft weights, live preview, save, evaluate, publish, roll back.

import { LABELS, MODALITIES, api, el, percentages, when } from "./api.js";
import { confirmDialog, follow, followEvaluation, labelFor, notStarted, showEvaluationJob,
  starting } from "./jobs.js";
import { loadItems, schedulePreview } from "./preview.js";
import * as render from "./render.js";
import { initSignIn } from "./signin.js";
import { $, fail, say, state } from "./state.js";
import { forget } from "./thumbs.js";
import { buildSliders, loadWeights, showWeights } from "./weights.js";

// --- profiles, history ---------------------------------------------------------------------
function showActive() {
  const a = state.active;
  const box = $("active-profile");
  if (!a) {
    box.textContent = "Active profile: unknown";
    return;
  }
  const pct = percentages(a.weights);
  const mix = MODALITIES.filter((m) => pct[m] > 0).map((m) => `${LABELS[m]} ${pct[m]}%`);
  box.textContent = `Active: ${a.name} v${a.version} (${mix.join(", ")})`;
  box.title = `Serving since ${when(a.since)}`;
  box.dataset.profileId = a.profile_id;
  box.dataset.version = a.version;
}

function fillBaseSelect() {
  const select = $("base-profile");
  const options = [el("option", { value: "" }, "— current draft —")];
  for (const p of state.profiles) {
    const tags = [p.active ? "active" : null, p.published ? "published" : null].filter(Boolean);
    options.push(el("option", { value: p.id },
      `${p.name} v${p.version}${tags.length ? ` (${tags.join(", ")})` : ""}`));
  }
  select.replaceChildren(...options);
  select.value = state.profiles.some((p) => p.id === state.savedId) ? String(state.savedId) : "";
}

async function refreshProfiles() {
  const data = await api("GET", "/v1/fusion/profiles");
  state.active = data.active;
  state.profiles = data.profiles || [];
  showActive();
  fillBaseSelect();
  showWeights();
  return data;
}

async function refreshHistory() {
  try {
    const data = await api("GET", "/v1/fusion/history?limit=50");
    render.history($("history"), data.entries || [], state.active?.profile_id, rollback);
  } catch (err) {
    fail(err, "load the history");
  }
}

// --- actions -------------------------------------------------------------------------------
function draftName() {
  const name = $("profile-name").value.trim();
  if (!name) {
    say("Give the profile a name first.", "error");
    $("profile-name").focus();
  }
  return name;
}

async function save() {
  const name = draftName();
  if (!name) return null;
  const note = $("profile-note").value.trim();
  const profile = await api("POST", "/v1/fusion/profiles",
    { name, weights: { ...state.weights }, ...(note ? { note } : {}) });
  state.savedId = profile.id;
  await refreshProfiles();
  await refreshHistory();
  say(`Saved as ${profile.name} v${profile.version}.`);
  return profile;
}

// Evaluate runs as a background job on the server: start it, show its progress, then the
// figures. A saved profile is evaluated by id; an unsaved draft by its weights.
function showEvaluation(job) {
  showEvaluationJob(job, { bar: "eval-progress", panel: "eval-panel", line: "eval-state" },
                    "Evaluation");
}

async function evaluate() {
  const button = $("evaluate");
  if (button.disabled) return;
  const epoch = state.epoch;
  const saved = state.profiles.find((p) => p.id === state.savedId);
  const what = saved ? `${saved.name} v${saved.version}` : "the draft";
  button.disabled = true;
  $("eval-panel").hidden = false;
  delete $("eval-panel").dataset.jobId;
  $("eval-body").replaceChildren();
  showEvaluation({ status: "queued", progress: 0 });
  $("eval-panel").scrollIntoView({ block: "nearest" });
  say(`Evaluating ${what} on the recorded events…`);
  try {
    const started = saved
      ? await api("POST", `/v1/fusion/profiles/${saved.id}/evaluations`)
      : await api("POST", "/v1/fusion/evaluations", { weights: { ...state.weights } });
    const job = await followEvaluation(started, showEvaluation, () => epoch !== state.epoch);
    if (!job) return; // signed out meanwhile: the page is reset already
    if (job.status === "succeeded" && job.result) {
      render.evaluation($("eval-body"), job.result);
      say(`Evaluation of ${what} finished: ${job.result.events} events from ` +
        `${job.result.users} users.`);
    } else {
      say(`Evaluation of ${what} failed: ${job.error || "unknown error"}`, "error");
    }
  } catch (err) {
    if (epoch !== state.epoch) return;
    $("eval-panel").dataset.status = "not-started";
    $("eval-progress").hidden = true;
    $("eval-state").textContent = `Evaluation did not finish: ${err.message}`;
    $("eval-state").classList.add("eval-error");
    fail(err, `evaluate ${what}`);
  } finally {
    if (epoch === state.epoch) button.disabled = state.offline;
  }
}

function setBusy(busy) {
  state.busy = busy;
  $("publish").disabled = busy;
  for (const b of document.querySelectorAll("button.rollback")) b.disabled = busy;
}

async function runJob(start, label) {
  const epoch = state.epoch; // a sign-out meanwhile ends the wait; the page is reset already
  setBusy(true);
  starting(label);
  try {
    let job;
    try {
      job = await start();
    } catch (err) {
      if (epoch === state.epoch) notStarted(label, err.message);
      throw err;
    }
    job = await follow(job, label, (err) => fail(err, "read the job"));
    if (epoch !== state.epoch) return;
    await refreshProfiles();
    await refreshHistory();
    if (job.status === "succeeded") {
      say(`${label} finished: ${state.active.name} v${state.active.version} is active.`);
    } else if (job.status === "failed") {
      say(`${label} failed: ${job.error || "unknown error"}`, "error");
    }
    schedulePreview();
  } finally {
    if (epoch === state.epoch) setBusy(false);
  }
}

async function publish() {
  if (state.busy) return;
  const name = draftName();
  if (!name) return;
  const saved = state.profiles.find((p) => p.id === state.savedId);
  if (saved && saved.active) {
    say("The draft is the active profile already; change a weight or pick another profile.");
    return;
  }
  const pct = percentages(state.weights);
  const mix = MODALITIES.map((m) => `${LABELS[m]} ${pct[m]}%`).join(", ");
  const what = saved ? `Publish ${saved.name} v${saved.version}`
    : `Save the draft as a new version of “${name}” and publish it`;
  const ok = await confirmDialog(`${what} (${mix})? Every item's fused vector is rebuilt; ` +
    "answers switch to the new weights when the job finishes.", "Publish");
  if (!ok) return;
  try {
    const profile = saved || (await save());
    if (!profile) return;
    await runJob(() => api("POST", `/v1/fusion/profiles/${profile.id}/publish`), "Publish");
  } catch (err) {
    fail(err, "publish");
  }
}

async function rollback(entry) {
  if (state.busy) return;
  const ok = await confirmDialog(`Roll back to ${entry.name} v${entry.version}? Answers ` +
    "switch back to its weights when the job finishes.", "Roll back");
  if (!ok) return;
  try {
    await runJob(() => api("POST", `/v1/fusion/profiles/${entry.profile_id}/rollback`),
      labelFor("rollback"));
  } catch (err) {
    fail(err, "roll back");
  }
}

function wire() {
  $("base-profile").addEventListener("change", (e) => {
    const profile = state.profiles.find((p) => String(p.id) === e.target.value);
    if (profile) loadWeights(profile);
  });
  $("reset").addEventListener("click", () => state.active && loadWeights(state.active));
  $("save").addEventListener("click", () => save().catch((err) => fail(err, "save")));
  $("evaluate").addEventListener("click", evaluate);
  $("publish").addEventListener("click", publish);
  $("users").addEventListener("change", schedulePreview);
  $("query").addEventListener("change", schedulePreview);
  $("item-filter").addEventListener("input", (e) => {
    const needle = e.target.value.trim().toLowerCase();
    for (const li of $("item-picker").children) {
      li.hidden = Boolean(needle) && !(li.dataset.title || "").includes(needle);
    }
  });
}

// Everything loads only once a key is accepted, and is dropped again on signing out.
async function load() {
  const epoch = state.epoch;
  buildSliders();
  let data = null;
  let problem = null;
  try {
    data = await refreshProfiles();
  } catch (err) {
    problem = err;
  }
  await Promise.all([loadItems(), data ? refreshHistory() : null]);
  if (epoch !== state.epoch || problem?.status === 401) return; // signed out meanwhile
  if (problem) {
    // Said last, so that this cause is not hidden by the failures that follow from it.
    if (problem.status === 404) {
      say("Could not load the fusion profiles (404): the fusion editor API is not available " +
        "on this server.", "error");
    } else {
      fail(problem, "load the fusion profiles");
    }
    state.offline = true;
    for (const id of ["save", "evaluate", "publish", "reset"]) $(id).disabled = true;
    showActive();
  } else if (data.active) {
    loadWeights(data.active);
  }
  document.body.dataset.ready = "true";
  schedulePreview();
  if (data && data.job && !["succeeded", "failed"].includes(data.job.status)) {
    await runJob(async () => data.job, labelFor(data.job.action)).catch((e) => fail(e, "follow"));
  }
}

function unload() {
  state.epoch += 1;
  clearTimeout(state.timer);
  state.previewSeq += 1; // an answer still on its way is dropped
  Object.assign(state, { active: null, profiles: [], savedId: null, offline: false, busy: false,
    lagRetries: 0 });
  state.picked.clear();
  forget();
  delete document.body.dataset.ready;
  for (const id of ["history", "results", "item-picker", "eval-body"]) $(id).replaceChildren();
  for (const id of ["save", "evaluate", "publish", "reset"]) $(id).disabled = false;
  for (const id of ["job-panel", "eval-panel", "eval-progress"]) $(id).hidden = true;
  $("eval-state").textContent = "";
  $("eval-state").classList.remove("eval-error");
  delete $("eval-panel").dataset.status;
  delete $("eval-panel").dataset.jobId;
  for (const id of ["users", "query", "item-filter", "profile-name", "profile-note"]) {
    $(id).value = "";
  }
  const box = $("active-profile");
  box.textContent = "Active profile: loading…";
  box.removeAttribute("title");
  delete box.dataset.profileId;
  delete box.dataset.version;
  delete $("results").dataset.weights;
  $("preview-state").textContent = "";
  $("preview-state").dataset.state = "idle";
  say("");
  if ($("confirm").open) $("confirm").close("cancel");
}

render.legend($("legend"));
wire();
initSignIn({ signedIn: load, signedOut: unload });
