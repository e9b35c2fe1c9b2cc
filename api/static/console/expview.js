// Rendering the selected experiment from API answers: its summary, the arms with their
// metrics and intervals against control, the sample-ratio and guardrail verdicts, the
// interleaving verdict and the audit history. Pure: no requests here.

import { el, when } from "./api.js";
import { ARM_COLOURS, direction, intervalBar, pct } from "./expchart.js";
import { METRICS, METRIC_NAMES } from "./expform.js";
import { $ } from "./state.js";

const share = (v) => `${Math.round(v * 1000) / 10}%`;

function armSettings(arm) {
  const parts = [];
  if (arm.profile_id) parts.push(`profile ${arm.profile_id}`);
  if (arm.ranker) parts.push(arm.ranker === "blend" ? "hand blend" : "learned ranker");
  if (arm.mmr_lambda !== null && arm.mmr_lambda !== undefined) parts.push(`MMR λ ${arm.mmr_lambda}`);
  if (arm.exploration_share !== null && arm.exploration_share !== undefined) {
    parts.push(`exploration ${share(arm.exploration_share)}`);
  }
  return parts.join(", ") || "as configured";
}

function guardrailText(g) {
  return g.metric === "p95_ms" ? `p95 latency above ${g.max_value} ms`
    : `${METRIC_NAMES[g.metric] || g.metric} down more than ${share(g.max_drop)}`;
}

export function summary(exp) {
  $("detail").dataset.experimentId = exp.id;
  $("detail").dataset.status = exp.status;
  $("detail-h").textContent = `${exp.name} — ${exp.status}`;
  const mode = exp.mode === "interleave" ? "interleaving" : "A/B";
  const ramp = exp.ramp.length > 1
    ? `ramp ${exp.ramp.map(share).join(" → ")} (now ${share(exp.ramp_share)})`
    : `${share(exp.ramp_share)} of users enrolled`;
  const bits = [`#${exp.id}`, mode, `on ${exp.surfaces.join(", ")}`, ramp,
    `holdout ${share(exp.holdout)}`, `created by ${exp.created_by}`];
  if (exp.started_at) bits.push(`started ${when(exp.started_at)}`);
  if (exp.winner) bits.push(`shipped: ${exp.winner}`);
  $("detail-summary").textContent = bits.join(" · ");
}

// Users, exposures, coverage and latency per arm, with the arm's settings and state.
export function arms(exp, results) {
  const rows = results?.arms || {};
  const holdout = results?.holdout;
  const head = el("tr", {}, ["Arm", "Settings", "Users", "Exposures", "Coverage", "p50 ms",
    "p95 ms", "State"].map((h) => el("th", { scope: "col" }, h)));
  const line = (name, k, settings, r, state) => el("tr", { "data-arm": name },
    el("th", { scope: "row" }, el("span", { class: "swatch",
      style: { background: ARM_COLOURS[k % ARM_COLOURS.length] } }), ` ${name}`),
    el("td", { class: "text" }, settings),
    el("td", { "data-field": "users" }, String(r?.users ?? 0)),
    el("td", { "data-field": "exposures" }, String(r?.exposures ?? 0)),
    el("td", {}, r?.coverage === null || r?.coverage === undefined ? "–" : share(r.coverage)),
    el("td", {}, r?.p50_ms ?? "–"), el("td", {}, r?.p95_ms ?? "–"),
    el("td", { class: `text state ${state.cls}`, "data-field": "state" }, state.text));
  const body = exp.arms.map((arm, k) => line(arm.name, k,
    `${k === 0 ? "control; " : ""}${armSettings(arm)}${arm.weight !== 1 ? `; weight ${arm.weight}` : ""}`,
    rows[arm.name],
    arm.stopped ? { cls: "stopped", text: `stopped: ${arm.stopped}` }
      : exp.winner === arm.name ? { cls: "winner", text: exp.status === "shipped"
        ? "shipped: serves everyone" : "was shipped" }
        : { cls: "", text: exp.status === "running" ? "serving" : "" }));
  if (holdout) body.push(line("holdout", 0, "kept out: served control", holdout, { cls: "", text: "" }));
  $("arms").replaceChildren(el("table", { class: "metrics exp-arms", "data-testid": "arms-table" },
    el("caption", { class: "sr-only" }, "Arms"), el("thead", {}, head), el("tbody", {}, body)));
}

// Each metric's mean per arm; beside a treatment's mean, its interval against control.
export function metrics(exp, results) {
  const rows = results?.arms || {};
  const names = exp.arms.map((a) => a.name);
  const head = el("tr", {}, el("th", { scope: "col" }, "Metric"), names.map((n, k) =>
    el("th", { scope: "col", colspan: k === 0 ? 1 : 2 }, k === 0 ? `${n} (control)`
      : `${n}: mean · against control`)));
  const body = METRICS.map((m) => el("tr", { "data-metric": m },
    el("th", { scope: "row" }, METRIC_NAMES[m]),
    names.flatMap((n, k) => {
      const mean = rows[n]?.metrics?.[m];
      const cell = el("td", { "data-arm": n }, mean === null || mean === undefined ? "–"
        : mean.toPrecision(3));
      if (k === 0) return cell;
      const d = rows[n]?.versus_control?.[m] || null;
      const verdict = direction(m, d);
      const label = d && d.relative !== null ? `${pct(d.relative)} (${pct(d.relative_low)} to ` +
        `${pct(d.relative_high)})` : d && d.diff !== null ? `${d.diff.toFixed(3)} (abs.)` : "–";
      return [cell, el("td", { class: `versus ${verdict}`, "data-arm": n, "data-verdict": verdict,
        "data-testid": "versus" }, intervalBar(m, d), el("span", { class: "rel" }, label),
      d && d.p_value !== null ? el("span", { class: "p" }, ` p=${d.p_value.toPrecision(2)}`)
        : null)];
    })));
  $("metrics").replaceChildren(el("table", { class: "metrics exp-metrics",
    "data-testid": "metrics-table" },
  el("caption", { class: "hint" }, "Means per user. Intervals are always-valid (mSPRT): they " +
    "may be read at any time; green or red only when the whole interval is on one side."),
  el("thead", {}, head), el("tbody", {}, body)));
}

const OFFLINE = [["ndcg_at_10", "NDCG@10"], ["recall_at_10", "Recall@10"],
  ["new_items_recall_at_10", "New-items recall@10"], ["coverage_at_10", "Coverage@10"]];

// Each arm's offline figures (its fusion profile replayed on the recorded events), one row per
// arm in the arm table's order and colours; "–" where a figure could not be computed.
export function offline(exp, result) {
  const names = exp.arms.map((a) => a.name);
  for (const key of Object.keys(result)) {
    if (key.startsWith("arm:") && !names.includes(key.slice(4))) names.push(key.slice(4));
  }
  const figure = (v) => (v === null || v === undefined ? "–" : Number(v).toFixed(3));
  const head = el("tr", {}, el("th", { scope: "col" }, "Arm"),
    OFFLINE.map(([, label]) => el("th", { scope: "col" }, label)));
  const body = names.map((name, k) => {
    const m = result[`arm:${name}`] || {};
    return el("tr", { "data-arm": name },
      el("th", { scope: "row" }, el("span", { class: "swatch",
        style: { background: ARM_COLOURS[k % ARM_COLOURS.length] } }), ` ${name}`),
      OFFLINE.map(([key]) => el("td", { "data-metric": key }, figure(m[key]))));
  });
  const note = result.note ? [el("p", { class: "hint", "data-testid": "offline-note" },
    result.note)] : [];
  $("offline").replaceChildren(
    el("table", { class: "metrics exp-offline", "data-testid": "offline-table" },
      el("caption", { class: "hint" }, `Offline figures per arm: ${result.events} events ` +
        `from ${result.users} users (each user's history split 80/20 by time).`),
      el("thead", {}, head), el("tbody", {}, body)),
    ...note);
}

// The sample-ratio check: a warning when users depart from the configured split.
export function sampleRatio(results) {
  const box = $("srm");
  const sr = results?.sample_ratio;
  const counts = sr ? Object.entries(sr.users).map(([a, n]) => `${a} ${n}`).join(", ") : "";
  box.dataset.mismatch = String(Boolean(sr?.mismatch));
  // Redrawn only when it changes: the warning is an alert, said once, not every refresh.
  const key = JSON.stringify(sr ?? null);
  if (box.dataset.key === key && box.childElementCount) return;
  box.dataset.key = key;
  if (!sr) {
    box.className = "verdict";
    box.replaceChildren(el("p", {}, "Sample ratio: no results yet."));
  } else if (sr.mismatch) {
    box.className = "verdict warn";
    box.replaceChildren(el("p", { role: "alert" }, el("strong", {}, "Sample ratio mismatch: "),
      `users per arm (${counts}) depart from the configured split (p = ` +
      `${sr.p_value.toPrecision(2)}). Something routes users unevenly; do not trust the ` +
      "results until the cause is found."));
  } else {
    box.className = "verdict ok";
    box.replaceChildren(el("p", {}, sr.p_value === null
      ? `Sample ratio: not checked while an arm is stopped (users: ${counts}).`
      : `Sample ratio: as configured (users: ${counts}; p = ${sr.p_value.toPrecision(2)}).`));
  }
}

export function guardrails(exp, results) {
  const box = $("guardrails");
  const stopped = Object.entries(results?.guardrails?.stopped || {});
  const breached = results?.guardrails?.breached || [];
  const set = exp.guardrails.length ? exp.guardrails.map(guardrailText).join("; ")
    : "none set";
  box.dataset.stopped = stopped.map(([a]) => a).join(",");
  box.className = `verdict ${stopped.length || breached.length ? "warn" : "ok"}`;
  box.replaceChildren(el("p", {}, el("strong", {}, "Guardrails: "), set, "."),
    stopped.length || breached.length ? el("ul", { "data-testid": "guardrail-stops" },
      stopped.map(([arm, why]) => el("li", { "data-arm": arm }, `${arm} stopped: ${why}`)),
      breached.filter((b) => !stopped.some(([a]) => a === b.arm)).map((b) =>
        el("li", { "data-arm": b.arm }, `${b.arm} breaches now: ${b.why}`)))
      : el("p", {}, exp.guardrails.length ? "No guardrail has fired." : ""));
}

export function interleaving(exp, results) {
  const box = $("interleaving");
  const il = results?.interleaving;
  box.hidden = !il;
  if (!il) return box.replaceChildren();
  const wins = Object.entries(il.wins).map(([a, n]) => `${a} ${n}`).join(", ");
  const pref = il.preference;
  const verdict = il.winner ? `${il.winner} is preferred` : "no arm preferred yet";
  box.dataset.winner = il.winner || "";
  box.className = `verdict ${il.winner ? "ok" : ""}`;
  box.replaceChildren(el("p", {}, el("strong", {}, "Interleaving: "), `${verdict}. `,
    `${il.users} users; wins: ${wins}; ties ${il.ties}.`,
    pref && pref.diff !== null ? ` Preference ${pref.diff.toFixed(3)} (${pref.low.toFixed(3)} ` +
      `to ${pref.high.toFixed(3)}, p = ${pref.p_value.toPrecision(2)}; above zero favours ` +
      `${exp.arms[0].name}, below zero ${exp.arms[1].name}).` : ""));
}

function detail(entry) {
  return Object.entries(entry.detail || {}).map(([k, v]) =>
    `${k}: ${Array.isArray(v) ? v.join(", ") : typeof v === "object" ? JSON.stringify(v) : v}`)
    .join("; ");
}

export function audit(history) {
  if (!history?.length) return $("audit").replaceChildren(el("li", { class: "hint" }, "Nothing yet."));
  $("audit").replaceChildren(...[...history].reverse().map((e) => el("li",
    { class: "history-entry audit-entry", "data-testid": "audit-entry", "data-action": e.action },
    el("span", { class: `action ${e.action === "guardrail" ? "fail" : ""}` }, e.action),
    el("span", { class: "what" }, detail(e)),
    el("span", { class: "who" }, `by ${e.actor}`),
    el("time", { datetime: e.at }, when(e.at)))));
}

export function clear() {
  for (const id of ["arms", "metrics", "srm", "guardrails", "interleaving", "timeline", "audit",
    "offline"]) {
    $(id).replaceChildren();
  }
  $("offline-state").textContent = "";
  $("offline-state").classList.remove("eval-error");
  $("offline-progress").hidden = true;
  delete $("offline").dataset.status;
  delete $("offline").dataset.jobId;
  delete $("srm").dataset.key;
  $("interleaving").hidden = true;
  $("detail-h").textContent = "No experiment selected";
  $("detail-summary").textContent = "Pick one from the list, or create one.";
  delete $("detail").dataset.experimentId;
  delete $("detail").dataset.status;
}
