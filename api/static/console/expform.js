// The "New experiment" form: arms and guardrails as rows, the request body built from them,
// and the API's refusals shown next to the field they name, in words.

import { el } from "./api.js";
import { $ } from "./state.js";

export const METRICS = ["ctr", "like_rate", "skip_rate", "completion_rate", "dwell",
  "items_per_session", "return_1d", "return_7d", "new_share"];
export const METRIC_NAMES = {
  ctr: "CTR@10", like_rate: "Like rate", skip_rate: "Skip rate",
  completion_rate: "Completion rate", dwell: "Dwell", items_per_session: "Items per session",
  return_1d: "Return in 1 day", return_7d: "Return in 7 days", new_share: "New-item share",
  p95_ms: "p95 latency",
};
export const LOWER_IS_BETTER = new Set(["skip_rate"]);

const MAX_ARMS = 6;
let serial = 0; // unique ids for the rows' inputs

class FormError extends Error {
  constructor(path, message) {
    super(message);
    this.path = path;
  }
}

function field(label, input, cls = "") {
  return el("label", { class: `cell ${cls}`, for: input.id }, label, input);
}

function armRow(values = {}) {
  const k = ++serial;
  const input = (name, attrs) => el("input", { id: `arm-${k}-${name}`, "data-key": name,
    autocomplete: "off", ...attrs });
  const ranker = el("select", { id: `arm-${k}-ranker`, "data-key": "ranker" },
    el("option", { value: "" }, "as configured"), el("option", { value: "learned" }, "learned"),
    el("option", { value: "blend" }, "hand blend"));
  ranker.value = values.ranker || "";
  const remove = el("button", { type: "button", class: "remove", "data-testid": "remove-arm" },
    "Remove");
  const row = el("div", { class: "arm-row", "data-testid": "arm-row", role: "group" },
    el("span", { class: "arm-title" }),
    field("Name", input("name", { type: "text", maxlength: 40, value: values.name || "",
      pattern: "[A-Za-z0-9_.\\-]+", "aria-describedby": "arm-hint" }), "wide"),
    field("Weight", input("weight", { type: "number", min: 0, step: "any", value: 1 })),
    field("Profile id", input("profile_id", { type: "number", min: 1, step: 1,
      placeholder: "live" })),
    field("Ranker", ranker),
    field("MMR λ", input("mmr_lambda", { type: "number", min: 0, max: 1, step: "any",
      value: values.mmr_lambda ?? "" })),
    field("Exploration", input("exploration_share", { type: "number", min: 0, max: 1,
      step: "any" })),
    remove);
  remove.addEventListener("click", () => {
    const next = row.nextElementSibling || row.previousElementSibling;
    row.remove();
    renumber();
    next?.querySelector("input")?.focus();
  });
  return row;
}

function guardRow() {
  const k = ++serial;
  const metric = el("select", { id: `guard-${k}-metric`, "data-key": "metric" },
    [...METRICS, "p95_ms"].map((m) => el("option", { value: m }, METRIC_NAMES[m])));
  const bound = el("input", { id: `guard-${k}-bound`, "data-key": "bound", type: "number",
    min: 0, step: "any", value: 10 });
  const label = el("span", {}, "Max drop (%)");
  const remove = el("button", { type: "button", class: "remove",
    "data-testid": "remove-guard" }, "Remove");
  const row = el("div", { class: "guard-row", "data-testid": "guard-row", role: "group" },
    field("Metric", metric), el("label", { class: "cell", for: bound.id }, label, bound), remove);
  metric.addEventListener("change", () => {
    label.textContent = metric.value === "p95_ms" ? "Max p95 (ms)" : "Max drop (%)";
    bound.value = metric.value === "p95_ms" ? 100 : 10;
    renumber();
  });
  remove.addEventListener("click", () => {
    row.remove();
    renumber();
    $("add-guard").focus();
  });
  return row;
}

// Rows say their place, so a refusal of "arms.1.name" finds its field and reads "Arm 2 name".
function renumber() {
  const arms = [...$("f-arms").children];
  arms.forEach((row, i) => {
    const title = `Arm ${i + 1}${i === 0 ? " (control)" : ""}`;
    row.querySelector(".arm-title").textContent = title;
    row.setAttribute("aria-label", title);
    for (const input of row.querySelectorAll("[data-key]")) {
      input.dataset.path = `arms.${i}.${input.dataset.key}`;
      input.dataset.label = `${title} ${input.closest("label").firstChild.textContent}`;
    }
    row.querySelector(".remove").disabled = arms.length <= 2;
  });
  $("add-arm").disabled = arms.length >= MAX_ARMS;
  [...$("f-guards").children].forEach((row, i) => {
    const metric = row.querySelector("[data-key='metric']");
    row.setAttribute("aria-label", `Guardrail ${i + 1}`);
    metric.dataset.path = `guardrails.${i}.metric`;
    metric.dataset.label = `Guardrail ${i + 1} metric`;
    const bound = row.querySelector("[data-key='bound']");
    bound.dataset.path = `guardrails.${i}.${metric.value === "p95_ms" ? "max_value" : "max_drop"}`;
    bound.dataset.label = `Guardrail ${i + 1} bound`;
  });
}

function number(input, { percent = false, whole = false } = {}) {
  if (input.validity.badInput) throw new FormError(input.dataset.path, "not a number");
  const text = input.value.trim();
  if (text === "") return undefined;
  const value = Number(text);
  if (!Number.isFinite(value)) throw new FormError(input.dataset.path, "not a number");
  if (whole && !Number.isInteger(value)) throw new FormError(input.dataset.path, "a whole number");
  return percent ? value / 100 : value;
}

function rampShares() {
  const text = $("f-ramp").value.trim();
  if (!text) return undefined;
  const steps = text.split(/[,;\s]+/).filter(Boolean).map((part) => {
    const value = Number(part.replace(/%$/, ""));
    if (!Number.isFinite(value) || value <= 0 || value > 100) {
      throw new FormError("ramp", `“${part}” is not a percentage above 0 and at most 100`);
    }
    return value / 100;
  });
  if (steps.some((v, i) => i > 0 && v < steps[i - 1])) {
    throw new FormError("ramp", "the steps must rise, e.g. 5, 25, 100");
  }
  return steps;
}

// The request body, or a FormError naming the field it could not read.
export function body() {
  const name = $("f-name").value.trim();
  if (!name) throw new FormError("name", "give the experiment a name");
  const holdout = number($("f-holdout"), { percent: true }) ?? 0;
  if (holdout < 0 || holdout >= 1) throw new FormError("holdout", "from 0 up to (not) 100%");
  const minutes = number($("f-ramp-every"));
  const out = {
    name,
    mode: $("f-mode").value,
    surfaces: [...document.querySelectorAll("input[name='surface']:checked")]
      .map((box) => box.value),
    arms: [...$("f-arms").children].map((row) => {
      const get = (key) => row.querySelector(`[data-key='${key}']`);
      const arm = { name: get("name").value.trim() };
      for (const [key, opts] of [["weight", {}], ["profile_id", { whole: true }],
        ["mmr_lambda", {}], ["exploration_share", {}]]) {
        const value = number(get(key), opts);
        if (value !== undefined) arm[key] = value;
      }
      if (get("ranker").value) arm.ranker = get("ranker").value;
      return arm;
    }),
    holdout,
    ramp: rampShares(),
    ramp_every_s: minutes === undefined ? undefined : minutes * 60,
    guardrails: [...$("f-guards").children].map((row) => {
      const metric = row.querySelector("[data-key='metric']").value;
      const input = row.querySelector("[data-key='bound']");
      if (metric === "p95_ms") return { metric, max_value: number(input) };
      const drop = number(input, { percent: true });
      if (drop === undefined || drop <= 0 || drop >= 1) {
        throw new FormError(input.dataset.path, "a drop above 0 and below 100%");
      }
      return { metric, max_drop: drop };
    }),
  };
  const note = $("f-note").value.trim();
  if (note) out.note = note;
  return out;
}

function target(path) {
  // "body.arms.1.name" -> the field for arms.1.name; "ramp.0" -> the ramp field.
  const parts = String(path || "").split(".").filter((p) => p !== "body");
  while (parts.length) {
    const found = $("exp-form").querySelector(`[data-path='${CSS.escape(parts.join("."))}']`);
    if (found) return found;
    parts.pop();
  }
  return null;
}

// The validator's phrasing of a name pattern, said as the hint says it.
function plain(problem) {
  return /^String should match pattern/.test(problem)
    ? "use only letters, digits, _ . and - (no spaces)" : problem;
}

function nameOf(node, path) {
  if (!node) return path || "";
  if (node.dataset.label) return node.dataset.label;
  if (node.tagName === "FIELDSET") return node.querySelector("legend").textContent;
  return node.closest("label")?.firstChild.textContent.trim() || path;
}

export function clearErrors() {
  $("form-error").replaceChildren();
  delete $("form-error").dataset.kind;
  for (const node of $("exp-form").querySelectorAll("[aria-invalid='true']")) {
    node.setAttribute("aria-invalid", "false");
  }
}

// Each problem as "<field as labelled>: <problem>", the first field marked and focused.
export function showErrors(err) {
  clearErrors();
  const problems = err instanceof FormError ? [{ field: err.path, problem: err.message }]
    : err.details?.length ? err.details
      : [{ field: (/^([a-z_]+)(?=:)/.exec(err.message) || [])[1] || "", problem: err.message,
        whole: true }];
  const lines = problems.map((p) => {
    const node = target(p.field);
    if (node) node.setAttribute("aria-invalid", "true");
    const text = p.whole ? p.problem.replace(/^[a-z_]+:\s*/, "") : plain(p.problem);
    return { node, text: node || p.field ? `${nameOf(node, p.field)}: ${text}` : text };
  });
  const status = err.status ? ` (${err.status})` : "";
  $("form-error").dataset.kind = "error";
  $("form-error").replaceChildren(
    el("p", {}, `The experiment was not created${status}:`),
    el("ul", {}, lines.map((l) => el("li", {}, l.text))));
  const first = lines.find((l) => l.node)?.node;
  (first && first.tagName !== "FIELDSET" ? first : first?.querySelector("input, select"))
    ?.focus();
}

export function resetForm() {
  clearErrors();
  $("exp-form").reset();
  $("f-arms").replaceChildren(armRow({ name: "control" }), armRow({ name: "treatment" }));
  $("f-guards").replaceChildren();
  renumber();
}

export function initForm(onSubmit) {
  $("add-arm").addEventListener("click", () => {
    const row = armRow({ name: `arm${$("f-arms").children.length + 1}` });
    $("f-arms").append(row);
    renumber();
    row.querySelector("input").focus();
  });
  $("add-guard").addEventListener("click", () => {
    const row = guardRow();
    $("f-guards").append(row);
    renumber();
    row.querySelector("select").focus();
  });
  $("exp-form").addEventListener("submit", (event) => {
    event.preventDefault();
    let built;
    try {
      built = body();
    } catch (err) {
      if (!(err instanceof FormError)) throw err;
      showErrors(err);
      return;
    }
    onSubmit(built);
  });
  resetForm();
}
