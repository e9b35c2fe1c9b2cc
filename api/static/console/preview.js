// The item picker and the live preview of the draft weights against the active profile.

import { MODALITIES, api, el } from "./api.js";
import * as render from "./render.js";
import { $, fail, state } from "./state.js";
import { release, thumb } from "./thumbs.js";

const DEBOUNCE_MS = 300;

const LAG_RETRY_MS = 250;
const LAG_RETRIES = 40;

function lagging(served) {
  const live = state.active;
  if (!served || !live) return false;
  const differs = served.profile_id !== live.profile_id || MODALITIES.some(
    (m) => Math.abs((served.weights[m] || 0) - (live.weights[m] || 0)) > 1e-6);
  if (!differs || state.lagRetries >= LAG_RETRIES) return false;
  state.lagRetries += 1;
  return true;
}

export async function loadItems() {
  try {
    const data = await api("GET", "/v1/items?limit=100");
    const items = data.items || [];
    if (!state.picked.size && items.length) {
      state.picked.add((items.find((i) => i.transcript) || items[0]).id);
    }
    release("picker");
    $("item-picker").replaceChildren(...items.map(pickerRow));
    if (!items.length) $("item-picker").append(el("li", { class: "hint" }, "No items yet."));
  } catch (err) {
    fail(err, "load the items");
  }
}

function pickerRow(item) {
  const media = item.media || {};
  const src = media.image || media.video ? `/v1/items/${encodeURIComponent(item.id)}/thumbnail`
    : null;
  const box = el("input", { type: "checkbox", value: item.id, "data-testid": "pick",
    "data-item-id": item.id, checked: state.picked.has(item.id),
    onchange: (e) => {
      if (e.target.checked) state.picked.add(item.id);
      else state.picked.delete(item.id);
      schedulePreview();
    } });
  return el("li", { "data-title": (item.title || "").toLowerCase() },
    el("label", {}, box, thumb(src, "picker"), el("span", {}, item.title || item.id)));
}

export function schedulePreview() {
  clearTimeout(state.timer);
  state.lagRetries = 0;
  if (state.offline) {
    runPreview();
    return;
  }
  $("preview-state").textContent = "Updating…";
  $("preview-state").dataset.state = "pending";
  state.timer = setTimeout(runPreview, DEBOUNCE_MS);
}

async function runPreview() {
  const seq = ++state.previewSeq;
  const users = $("users").value.split(",").map((u) => u.trim()).filter(Boolean);
  const query = $("query").value.trim();
  const body = { weights: { ...state.weights }, items: [...state.picked], users,
    queries: query ? [query] : [], limit: 10 };
  if (state.offline) {
    $("preview-state").textContent = "Preview unavailable: the fusion API did not answer.";
    $("preview-state").dataset.state = "error";
    return;
  }
  if (!body.items.length && !users.length && !query) {
    render.preview($("results"), { results: [] });
    $("preview-state").textContent = "";
    $("preview-state").dataset.state = "idle";
    return;
  }
  try {
    const answer = await api("POST", "/v1/fusion/preview", body);
    if (seq !== state.previewSeq) return; // a newer draft already asked
    if (lagging(answer.active)) {
      // Just after a publish or rollback the serving table can still hold the old weights
      // for a moment: "before" would show the old profile under the new name. Ask again.
      $("preview-state").textContent = "Serving is switching to the new profile…";
      state.timer = setTimeout(runPreview, LAG_RETRY_MS);
      return;
    }
    state.lagRetries = 0;
    render.preview($("results"), answer);
    $("results").dataset.weights = JSON.stringify(body.weights);
    $("preview-state").textContent = `Preview updated ${new Date().toLocaleTimeString()}.`;
    $("preview-state").dataset.state = "ready";
    $("preview-state").dataset.seq = String(seq);
  } catch (err) {
    if (seq !== state.previewSeq) return;
    $("preview-state").textContent = "Preview unavailable.";
    $("preview-state").dataset.state = "error";
    fail(err, "preview the draft");
  }
}
