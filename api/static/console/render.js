// Pure rendering: preview lists, the evaluation table and the history, from API answers.

import { LABELS, MODALITIES, el, when } from "./api.js";
import { release, thumb } from "./thumbs.js";

export function legend(container) {
  container.replaceChildren(
    ...MODALITIES.map((m) =>
      el("span", { class: "legend-item" }, el("span", { class: `swatch m-${m}` }), LABELS[m]),
    ),
  );
}

// The arrows are drawn for the eye; screen readers get words instead of triangle names.
function badge(cls, shift, glyph, words) {
  return el("span", { class: `badge ${cls}`, "data-shift": shift, title: words },
    el("span", { "aria-hidden": "true" }, glyph), el("span", { class: "sr-only" }, words));
}

function shiftBadge(shift, side) {
  if (shift === null || shift === undefined) {
    return side === "after" ? badge("new", "new", "new", "new in the draft's list")
      : badge("out", "out", "out", "drops out of the draft's list");
  }
  if (shift > 0) return badge("up", shift, `▲${shift}`, `moves up ${shift}`);
  if (shift < 0) return badge("down", shift, `▼${-shift}`, `moves down ${-shift}`);
  return badge("same", 0, "=", "same rank");
}

function contributionBar(contributions) {
  const parts = MODALITIES.filter((m) => (contributions[m] || 0) > 0);
  const described = MODALITIES.filter((m) => contributions[m] !== undefined)
    .map((m) => `${LABELS[m]} ${(contributions[m] || 0).toFixed(2)}`)
    .join(", ");
  // Segment widths are raw contributions, so the bar's length is the similarity itself.
  return el(
    "div",
    { class: "bar", role: "img", "aria-label": `Contributions: ${described || "none"}` },
    parts.map((m) =>
      el("span", {
        class: `seg m-${m}`,
        "data-modality": m,
        title: `${LABELS[m]}: ${contributions[m].toFixed(3)}`,
        style: { width: `${Math.min(100, contributions[m] * 100).toFixed(1)}%` },
      }),
    ),
  );
}

function row(r, side) {
  const snippet = r.snippet
    ? el("p", { class: "snippet", title: r.snippet }, `“${r.snippet}”`) : null;
  return el(
    "li",
    { class: "result-row", "data-item-id": r.item_id, "data-rank": r.rank },
    el("span", { class: "rank" }, String(r.rank)),
    shiftBadge(r.shift, side),
    thumb(r.thumbnail, "results"),
    el(
      "div",
      { class: "row-body" },
      el("p", { class: "title" }, r.title || r.item_id,
        el("span", { class: "score" }, ` ${Number(r.score).toFixed(3)}`)),
      snippet,
      contributionBar(r.contributions || {}),
    ),
  );
}

// Shifts are worked out from the two lists (before rank - after rank; null when the item is
// missing on the other side), so both columns read the same way whatever the server sends.
function column(label, rows, other, side) {
  const ranks = new Map(other.map((r) => [r.item_id, r.rank]));
  const shift = (r) => {
    const there = ranks.get(r.item_id);
    if (there === undefined) return null;
    return side === "after" ? there - r.rank : r.rank - there;
  };
  return el(
    "div",
    { class: `column ${side}`, "data-testid": `${side}-list` },
    el("h4", {}, label),
    rows.length
      ? el("ol", { class: "rows" }, rows.map((r) => row({ ...r, shift: shift(r) }, side)))
      : el("p", { class: "hint" }, "No results."),
  );
}

export function preview(container, answer) {
  release("results"); // the rows drawn before go, and their object URLs with them
  const results = answer.results || [];
  if (!results.length) {
    container.replaceChildren(el("p", { class: "hint" },
      "Pick an item, enter a user id or a query to see its neighbours."));
    return;
  }
  const cand = answer.candidate || {};
  const act = answer.active || {};
  const afterName = cand.name ? `${cand.name} v${cand.version}` : "draft";
  container.replaceChildren(
    ...results.map((res, i) =>
      el(
        "article",
        { class: "result", "data-testid": "result", "data-kind": res.kind, "data-key": res.key },
        el("h3", {}, `${res.kind}: ${res.title || res.key}`,
          el("span", { class: "surface" }, ` · ${res.surface}`)),
        el("p", { class: "overlap", "data-testid": "overlap" },
          `Overlap@10: ${Math.round((res.overlap_at_10 || 0) * 100)}%`),
        el(
          "div",
          { class: "columns", id: `result-${i}` },
          column(`Before (${act.name || "active"} v${act.version ?? "?"})`, res.before || [],
            res.after || [], "before"),
          column(`After (${afterName})`, res.after || [], res.before || [], "after"),
        ),
      ),
    ),
  );
}

const METRICS = [
  ["ndcg_at_10", "nDCG@10"],
  ["recall_at_10", "Recall@10"],
  ["new_items_recall_at_10", "New-item recall@10"],
  ["coverage_at_10", "Coverage@10"],
];

function fmt(v) {
  return v === null || v === undefined ? "—" : Number(v).toFixed(3);
}

export function evaluation(container, answer) {
  const rows = METRICS.map(([key, label]) => {
    const a = answer.active ? answer.active[key] : null;
    const c = answer.candidate ? answer.candidate[key] : null;
    const delta = a === null || a === undefined || c === null || c === undefined ? null : c - a;
    const sign = delta === null ? "" : delta > 0 ? "+" : "";
    return el("tr", { "data-metric": key },
      el("th", { scope: "row" }, label), el("td", {}, fmt(a)), el("td", {}, fmt(c)),
      el("td", { class: delta > 0 ? "gain" : delta < 0 ? "loss" : "" },
        delta === null ? "—" : `${sign}${delta.toFixed(3)}`));
  });
  const note = answer.note ? [el("p", { class: "hint" }, answer.note)] : [];
  container.replaceChildren(
    el("p", { class: "hint" }, `${answer.events} events from ${answer.users} users.`),
    el("table", { class: "metrics", "data-testid": "metrics" },
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Metric"),
        el("th", { scope: "col" }, "Active"), el("th", { scope: "col" }, "Draft"),
        el("th", { scope: "col" }, "Δ"))),
      el("tbody", {}, rows)),
    ...note,
  );
}

const ROLLBACK_ACTIONS = new Set(["publish", "rollback", "switch"]);

export function history(container, entries, activeProfileId, onRollback) {
  if (!entries.length) {
    container.replaceChildren(el("li", { class: "hint" }, "Nothing yet."));
    return;
  }
  container.replaceChildren(
    ...entries.map((e) => {
      const current = e.profile_id === activeProfileId;
      let action = null;
      if (ROLLBACK_ACTIONS.has(e.action)) {
        action = current
          ? el("span", { class: "badge same" }, "active now")
          : el("button", {
            type: "button",
            class: "rollback",
            "data-testid": "rollback",
            "data-profile-id": e.profile_id,
            "aria-label": `Roll back to ${e.name} v${e.version}`,
            onclick: () => onRollback(e),
          }, "Roll back to this version");
      }
      return el(
        "li",
        { class: `history-entry ${e.action}`, "data-testid": "history-entry",
          "data-action": e.action, "data-profile-id": e.profile_id },
        el("span", { class: `action ${e.action}` }, e.action),
        el("span", { class: "what" }, `${e.name} v${e.version}`),
        el("span", { class: "who" }, `by ${e.actor}`),
        el("time", { datetime: e.at }, when(e.at)),
        action,
      );
    }),
  );
}
