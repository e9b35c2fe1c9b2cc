// The console's experiments page: list, create, start, pause, stop and ship experiments, and
// read a selected one's results (refreshed every few seconds while it runs), its timeline and
// its audit history.

import { api, el } from "./api.js";
import { ARM_COLOURS, timelineChart } from "./expchart.js";
import { METRICS, METRIC_NAMES, initForm, resetForm, showErrors } from "./expform.js";
import * as view from "./expview.js";
import { confirmDialog, followEvaluation, showEvaluationJob } from "./jobs.js";
import { initSignIn } from "./signin.js";
import { $, fail, say, state } from "./state.js";

const POLL_MS = 3000;
const ALLOWED = { // what each action may follow, as the server rules it
  start: ["draft", "paused"], pause: ["running"], stop: ["running", "paused", "shipped"],
  ship: ["running", "paused"],
};
const DONE = { start: "started", pause: "paused", stop: "stopped", ship: "shipped" };
const page = { list: [], listKey: "", selected: null, exp: null, seq: 0, poll: null,
  offlineFor: null }; // offlineFor: the experiment whose offline figures are being computed

// --- the list -------------------------------------------------------------------------------
function renderList() {
  const key = JSON.stringify([page.selected, page.list.map((e) => [e.id, e.name, e.status])]);
  if (key === page.listKey) return; // unchanged: leave focus and the reader's place alone
  page.listKey = key;
  const focused = document.activeElement?.dataset?.experimentId;
  $("list-state").textContent = page.list.length ? "" : "No experiments yet: create one below.";
  $("exp-list").replaceChildren(...page.list.map((e) => el("li", {},
    el("button", { type: "button", class: "exp-item", "data-testid": "exp-item",
      "data-experiment-id": e.id, "data-status": e.status,
      "aria-current": e.id === page.selected ? "true" : null,
      onclick: () => select(e.id, true) },
    el("span", { class: "exp-name" }, e.name),
    el("span", { class: `status s-${e.status}` }, e.status)))));
  if (focused) $("exp-list").querySelector(`[data-experiment-id='${focused}']`)?.focus();
}

async function loadList() {
  page.list = await api("GET", "/v1/experiments");
  renderList();
}

// --- the selected experiment ----------------------------------------------------------------
function buttons(exp) {
  for (const action of Object.keys(ALLOWED)) {
    $(`do-${action}`).disabled = !exp || !ALLOWED[action].includes(exp.status);
  }
  $("do-offline").disabled = !exp || page.offlineFor === exp.id;
}

// --- offline figures: each arm's fusion profile replayed on the recorded events --------------
function showOffline(job) {
  showEvaluationJob(job, { bar: "offline-progress", panel: "offline", line: "offline-state" },
                    "Offline figures");
}

async function offlineFigures() {
  const exp = page.exp;
  if (!exp || page.offlineFor === exp.id) return;
  const epoch = state.epoch;
  const stale = () => epoch !== state.epoch || page.selected !== exp.id;
  page.offlineFor = exp.id;
  buttons(exp);
  $("offline").replaceChildren();
  delete $("offline").dataset.jobId;
  showOffline({ status: "queued", progress: 0 });
  say(`Computing the offline figures of “${exp.name}”…`);
  try {
    const started = await api("POST", `/v1/experiments/${exp.id}/evaluations`);
    if (stale()) return;
    const job = await followEvaluation(started, showOffline, stale);
    if (!job) return; // another experiment was picked, or signed out
    if (job.status === "succeeded" && job.result) {
      view.offline(exp, job.result);
      say(`Offline figures of “${exp.name}” are ready: ${job.result.events} events from ` +
        `${job.result.users} users.`);
    } else {
      say(`Offline figures of “${exp.name}” failed: ${job.error || "unknown error"}`, "error");
    }
  } catch (err) {
    if (stale()) return;
    $("offline").dataset.status = "not-started";
    $("offline-progress").hidden = true;
    $("offline-state").textContent = `Offline figures did not finish: ${err.message}`;
    $("offline-state").classList.add("eval-error");
    fail(err, `compute the offline figures of “${exp.name}”`);
  } finally {
    if (page.offlineFor === exp.id) page.offlineFor = null;
    if (epoch === state.epoch) buttons(page.exp);
  }
}

async function loadTimeline(exp, seq) {
  const metric = $("t-metric").value || "ctr";
  let data;
  try {
    data = await api("GET", `/v1/experiments/${exp.id}/timeline?metric=${metric}&points=12`);
  } catch (err) {
    if (seq !== page.seq) return;
    const why = err.status === 404 && err.message === "Not Found" // no such route
      ? "this server does not offer the timeline yet" : err.message;
    $("timeline").replaceChildren(el("p", { class: "hint" },
      `No timeline${err.status ? ` (${err.status})` : ""}: ${why}.`));
    return;
  }
  if (seq !== page.seq) return;
  const names = exp.arms.map((a) => a.name);
  const chart = data.points?.length ? timelineChart(data, names) : null;
  $("timeline").replaceChildren(...(chart ? [chart,
    el("p", { class: "legend", "aria-hidden": "true" }, names.map((n, k) => el("span",
      { class: "legend-item" }, el("span", { class: "swatch",
        style: { background: ARM_COLOURS[k % ARM_COLOURS.length] } }), n))),
    el("p", { class: "hint" }, "Shaded: where a treatment's mean may lie, from control's " +
      "mean and the always-valid interval of the difference.")]
    : [el("p", { class: "hint" }, exp.started_at ? `No ${METRIC_NAMES[metric]} values yet.`
      : "Nothing to chart yet: the experiment has not started.")]));
}

// Reads the experiment, its results and timeline; a newer read drops an older one's answer.
async function refresh() {
  const id = page.selected;
  const epoch = state.epoch;
  const seq = ++page.seq;
  const [exp, results] = await Promise.all([
    api("GET", `/v1/experiments/${id}`),
    api("GET", `/v1/experiments/${id}/results`).catch((err) => {
      if (err.status === 401) throw err;
      return { error: err };
    }),
  ]);
  if (seq !== page.seq || epoch !== state.epoch) return;
  const before = page.exp;
  page.exp = exp;
  if (before && before.id === exp.id && before.status !== exp.status) {
    const why = exp.history.at(-1)?.detail?.why;
    say(`“${exp.name}” is now ${exp.status}${why ? ` (${why})` : ""}.`, "info");
  } else if (before && before.id === exp.id) {
    const fresh = exp.arms.filter((a) => a.stopped &&
      !before.arms.some((b) => b.name === a.name && b.stopped));
    if (fresh.length) {
      say(fresh.map((a) => `A guardrail stopped arm ${a.name} of “${exp.name}”: ${a.stopped}.`)
        .join(" "), "info");
    }
  }
  const entry = page.list.find((e) => e.id === exp.id);
  if (entry) Object.assign(entry, { status: exp.status });
  renderList();
  view.summary(exp);
  buttons(exp);
  view.audit(exp.history);
  if (results.error) {
    $("srm").replaceChildren(el("p", { class: "hint" },
      `Could not read the results (${results.error.status}): ${results.error.message}`));
  } else {
    view.sampleRatio(results);
    view.guardrails(exp, results);
    view.interleaving(exp, results);
  }
  view.arms(exp, results.error ? null : results);
  view.metrics(exp, results.error ? null : results);
  $("detail").dataset.refreshed = String(Date.now());
  $("refreshed").textContent = `Results as of ${new Date().toLocaleTimeString()}` +
    (exp.status === "running" ? `; refreshed every ${POLL_MS / 1000} s while it runs.` : ".");
  await loadTimeline(exp, seq);
  schedule();
}

function schedule() {
  clearTimeout(page.poll);
  if (page.exp?.status !== "running") return;
  const epoch = state.epoch;
  page.poll = setTimeout(async () => {
    if (epoch !== state.epoch) return;
    try {
      await Promise.all([refresh(), loadList()]);
    } catch (err) {
      fail(err, "refresh the results");
      if (err.status !== 401) schedule(); // a hiccup: keep trying
    }
  }, POLL_MS);
}

async function select(id, focus = false) {
  if (page.selected !== id) {
    page.exp = null;
    view.clear();
  }
  page.selected = id;
  renderList();
  try {
    await refresh();
  } catch (err) {
    fail(err, "load the experiment");
    return;
  }
  if (focus) $("detail").focus();
}

// --- actions --------------------------------------------------------------------------------
async function act(action, body) {
  const exp = page.exp;
  try {
    await api("POST", `/v1/experiments/${exp.id}/${action}`, body);
  } catch (err) {
    fail(err, `${action} “${exp.name}”`);
    return;
  }
  page.exp = null; // this change is announced below, not as a change seen by polling
  await refresh().catch((err) => fail(err, "reload the experiment"));
  const shipped = action === "ship" ? `: ${body.arm} serves every user` : "";
  say(`“${exp.name}” ${DONE[action]}${shipped}.`);
  // The pressed button may be disabled now: keep focus on the next useful control.
  if (document.activeElement === document.body || document.activeElement?.disabled) {
    const next = Object.keys(ALLOWED).map((a) => $(`do-${a}`)).find((b) => !b.disabled);
    (next || $("detail")).focus();
  }
}

async function stop() {
  const exp = page.exp;
  const ok = await confirmDialog(`Stop “${exp.name}”? Every user is served as usual again ` +
    "(an arm shipped from it stops serving everyone). A stopped experiment cannot restart.",
  "Stop experiment");
  if (ok) await act("stop");
}

function ship() {
  const exp = page.exp;
  const dialog = $("ship-dialog");
  const opener = document.activeElement;
  const live = exp.arms.filter((a) => !a.stopped);
  $("ship-arms").replaceChildren(...live.map((a, k) => el("label", { class: "check" },
    el("input", { type: "radio", name: "ship-arm", value: a.name, "data-testid": "ship-arm",
      onchange: () => { $("ship-ok").disabled = false; } }),
    ` ${a.name}${k === 0 ? " (control)" : ""}`)));
  $("ship-ok").disabled = true; // nothing is picked until the editor picks
  dialog.returnValue = "";
  dialog.addEventListener("close", () => {
    const picked = dialog.querySelector("input[name='ship-arm']:checked")?.value;
    if (opener?.isConnected) opener.focus();
    if (dialog.returnValue === "ok" && picked) act("ship", { arm: picked });
  }, { once: true });
  dialog.showModal();
  dialog.querySelector("input[name='ship-arm']")?.focus();
}

async function create(body) {
  $("create").disabled = true;
  try {
    const exp = await api("POST", "/v1/experiments", body);
    say(`Created “${exp.name}” (#${exp.id}) as a draft; start it when ready.`);
    resetForm();
    await loadList();
    await select(exp.id, true);
  } catch (err) {
    if (err.status === 401) return;
    showErrors(err);
  } finally {
    $("create").disabled = false;
  }
}

function wire() {
  initForm(create);
  $("t-metric").replaceChildren(...METRICS.map((m) => el("option", { value: m }, METRIC_NAMES[m])));
  $("t-metric").addEventListener("change", () => page.exp && loadTimeline(page.exp, page.seq));
  $("do-start").addEventListener("click", () => act("start"));
  $("do-pause").addEventListener("click", () => act("pause"));
  $("do-stop").addEventListener("click", stop);
  $("do-ship").addEventListener("click", ship);
  $("do-offline").addEventListener("click", offlineFigures);
}

// Everything loads only once a key is accepted, and is dropped again on signing out.
async function load() {
  const epoch = state.epoch;
  try {
    await loadList();
  } catch (err) {
    if (epoch !== state.epoch) return;
    if (err.status === 404) {
      say("Could not load the experiments (404): the experiments API is not available on " +
        "this server.", "error");
    } else {
      fail(err, "load the experiments");
    }
    document.body.dataset.ready = "true";
    return;
  }
  if (epoch !== state.epoch) return;
  const first = page.list.find((e) => e.status === "running") || page.list[0];
  if (first) await select(first.id);
  document.body.dataset.ready = "true";
}

function unload() {
  state.epoch += 1;
  clearTimeout(page.poll);
  Object.assign(page, { list: [], listKey: "", selected: null, exp: null, seq: page.seq + 1,
    offlineFor: null });
  delete document.body.dataset.ready;
  $("exp-list").replaceChildren();
  view.clear();
  buttons(null);
  resetForm();
  say("");
  for (const id of ["confirm", "ship-dialog"]) if ($(id).open) $(id).close("cancel");
}

wire();
buttons(null);
initSignIn({ signedIn: load, signedOut: unload },
  { start: "list-h", name: "the experiments page" });
