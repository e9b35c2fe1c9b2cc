// The draft's weight sliders: one per modality, each showing its share of the total.

import { LABELS, MODALITIES, el, percentages } from "./api.js";
import { schedulePreview } from "./preview.js";
import { $, state } from "./state.js";

const SLIDER_MAX = 10;

export function buildSliders() {
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

export function showWeights() {
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

export function loadWeights(profile) {
  state.weights = Object.fromEntries(MODALITIES.map((m) => [m, profile.weights[m] || 0]));
  state.savedId = profile.id ?? profile.profile_id ?? null;
  $("profile-name").value = profile.name || $("profile-name").value;
  buildSliders();
  schedulePreview();
}
