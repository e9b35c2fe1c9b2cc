// The fusion editor console: draft weights, live preview, save, evaluate, publish, roll back.

import { LABELS, MODALITIES, actor, api, el, percentages, setActor, when } from "./api.js";
import { confirmDialog, follow, labelFor, notStarted, starting } from "./jobs.js";
import { loadItems, schedulePreview } from "./preview.js";
import * as render from "./render.js";
import { $, fail, say, state } from "./state.js";

const SLIDER_MAX = 10;

// --- weights -------------------------------------------------------------------------------
function buildSliders() {
  const max = Math.max(SLIDER_MAX, ...MODALITIES.map((m) => Math.ceil(state.weights[m] || 0)));
  $("sliders").replaceChildren(
    ...MODALITIES.map((m) =>
      el("div", { class: "slider" },
        el("label", { for: `w-${m}` }, el("span", { class: `swatch m-${m}` }), LABELS[m]),
        el("input", { type: "range", id: `w-${m}`, "data-testid": `weight-${m}`, min: 0, max,
          step: 0.1, value: state.weights[m] || 0, "data-modality": m,
          oninput: (e) => changeWeight(m, e.target.value) }),
        el("output", { id: `pct-${m}`, "data-testid": `pct-${m}`, for: `w-${m}` }),
        el("span", { class: "raw", id: `raw-${m}`, "data-testid": `raw-${m}` })),
    ),
  );
  showWeights();
}

function showWeights() {
  const pct = percentages(state.weights);
  for (const m of MODALITIES) {
    const w = Number(state.weights[m]) || 0;
    const input = $(`w-${m}`);
    if (Number(input.value) !== w) input.value = w;
    input.setAttribute("aria-valuetext", `${pct[m]}% (weight ${w.toFixed(1)})`);
    $(`pct-${m}`).textContent = `${pct[m]}%`;
    $(`raw-${m}`).textContent = `w ${w.toFixed(1)}`;
  }
  const saved = state.profiles.find((p) => p.id === state.savedId);
  $("draft-state").textContent = saved
    ? `Draft equals ${saved.name} v${saved.version}${saved.active ? " (active)" : ""}.`
    : "Unsaved draft.";
  $("draft-state").dataset.saved = saved ? String(saved.id) : "";
}

function changeWeight(m, value) {
  state.weights[m] = Math.round(Number(value) * 10) / 10;
  state.savedId = null;
  $("base-profile").value = "";
  showWeights();
  schedulePreview();
}

function loadWeights(profile) {
  state.weights = Object.fromEntries(MODALITIES.map((m) => [m, profile.weights[m] || 0]));
  state.savedId = profile.id ?? profile.profile_id ?? null;
  $("profile-name").value = profile.name || $("profile-name").value;
  buildSliders();
  schedulePreview();
}

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

async function evaluate() {
  const button = $("evaluate");
  button.disabled = true;
  $("eval-panel").hidden = false;
  $("eval-panel").scrollIntoView({ block: "nearest" });
  $("eval-body").textContent = "Evaluating on the recorded events…";
  try {
    render.evaluation($("eval-body"), await api("POST", "/v1/fusion/evaluate",
      { weights: { ...state.weights } }));
  } catch (err) {
    $("eval-body").textContent = "";
    fail(err, "evaluate the draft");
  } finally {
    button.disabled = false;
  }
}

function setBusy(busy) {
  state.busy = busy;
  $("publish").disabled = busy;
  for (const b of document.querySelectorAll("button.rollback")) b.disabled = busy;
}

async function runJob(start, label) {
  setBusy(true);
  starting(label);
  try {
    let job;
    try {
      job = await start();
    } catch (err) {
      notStarted(label, err.message);
      throw err;
    }
    job = await follow(job, label, (err) => fail(err, "read the job"));
    await refreshProfiles();
    await refreshHistory();
    if (job.status === "succeeded") {
      say(`${label} finished: ${state.active.name} v${state.active.version} is active.`);
    } else if (job.status === "failed") {
      say(`${label} failed: ${job.error || "unknown error"}`, "error");
    }
    schedulePreview();
  } finally {
    setBusy(false);
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
  $("actor").value = actor();
  $("actor").addEventListener("change", (e) => {
    // Header values are Latin-1: a name outside it could not be sent, so it is refused here.
    if (/^[\x20-\x7e\xa0-\xff]*$/.test(e.target.value)) setActor(e.target.value);
    else say("The editor name can only use Latin letters, digits and punctuation.", "error");
  });
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

async function start() {
  render.legend($("legend"));
  wire();
  buildSliders();
  let data = null;
  let problem = null;
  try {
    data = await refreshProfiles();
  } catch (err) {
    problem = err;
  }
  await Promise.all([loadItems(), data ? refreshHistory() : null]);
  if (problem) {
    // Said last, so that this cause is not hidden by the failures that follow from it.
    const why = problem.status === 404 ? "the fusion editor API is not available on this server"
      : problem.message;
    say(`Could not load the fusion profiles (${problem.status || "no answer"}): ${why}.`, "error");
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

start();
