// Models & training: start/cancel a run, watch progress and the loss / validation-MAE curve live,
// versions with metrics, promote / roll back, and the active model's validation plots.
import { api, el, fmt, toast } from "./api.js";
import { bars, lineChart, scatter } from "./chart.js";
import { connectLive } from "./live.js";

const page = document.getElementById("models-page");
const projectId = +page.dataset.project, canTrain = page.dataset.canTrain === "1";
const $ = (s) => document.querySelector(s);
const ACTIVE_RUN = new Set(["queued", "running", "cancelling"]);
let runs = [], versions = [], current = null, steps = [];  // steps: live [step, loss] of the current run

async function loadRuns() {
  const response = await api(`/api/projects/${projectId}/training-runs/?limit=20`);
  if (!response.ok) return;
  runs = response.body.results;
  const latest = runs[0] || null;
  if (!current || !latest || latest.id !== current.id) steps = [];
  current = latest;
  renderRuns(); renderRun();
}

function runFraction(run) {
  const p = run.progress || {}, total = p.total_epochs || run.config.epochs || 1;
  if (run.state === "succeeded") return 1;
  const perEpoch = run.curve && run.curve.length ? run.curve[run.curve.length - 1].step / run.curve.length : null;
  const byStep = perEpoch && p.step ? p.step / (perEpoch * total) : 0;
  return Math.min(1, Math.max((p.epoch || 0) / total, byStep));
}

function renderRun() {
  const run = current, bar = $("#run-progress"), pill = $("#run-state");
  const active = run && ACTIVE_RUN.has(run.state);
  if ($("#start-run")) $("#start-run").disabled = !!active;
  if ($("#start-audit")) $("#start-audit").disabled = !!active;
  if ($("#cancel-run")) $("#cancel-run").hidden = !active || run.state === "cancelling";
  if (!run) { $("#run-text").textContent = "No run yet: start one to train on the expert-corrected labels."; return; }
  pill.hidden = false; pill.textContent = run.state; pill.className = `status-pill ${run.state}`;
  const fraction = runFraction(run), p = run.progress || {};
  bar.dataset.state = run.state;
  bar.firstElementChild.style.width = `${(fraction * 100).toFixed(1)}%`;
  bar.setAttribute("aria-valuenow", String(Math.round(fraction * 100)));
  const total = p.total_epochs || run.config.epochs;
  const parts = [`${run.config.kind === "audit" ? "Audit" : "Run"} ${run.id}`];
  if (p.folds) parts.push(`fold ${p.fold}/${p.folds}`);
  // the default recipe first trains its segmenter on the Canny masks (steps only), then the regressor's epochs
  if (p.stage === "segmenter") parts.push("stage 1 of 2: the segmenter learns the hand masks");
  else parts.push(`${p.stage === "regressor" ? "stage 2 of 2: the regressor, " : ""}epoch ${p.epoch || 0}/${total ?? "?"}`);
  if (p.step) parts.push(`step ${p.step}`);
  if (p.loss != null) parts.push(`loss ${(+p.loss).toFixed(3)}`);
  // One MAE per version: once the run registered a version, its figure (the platform's predictor on the held-out
  // studies) replaces the training loop's last epoch, which measures a little differently (issue 32, row 9).
  const made = run.result ? versions.find((v) => v.id === run.result) : null;
  if (made) parts.push(`→ ${made.name}: validation MAE ${made.val_mae?.toFixed(2) ?? "?"} months on ${made.validation_study_ids.length} held-out studies`);
  else if (run.result_name) parts.push(`→ ${run.result_name}`);
  else if (p.val_mae != null && ACTIVE_RUN.has(run.state)) parts.push(`this epoch: validation MAE ${(+p.val_mae).toFixed(2)} mo`);
  if (run.config.init_reason) parts.push(`${run.config.init_chosen === "platform" ? "The platform chose: " : ""}${run.config.init_reason}`);
  if (p.outcome) parts.push(p.outcome);
  if (run.error) parts.push(run.error);
  $("#run-text").textContent = parts.join(" · ");
  const curve = run.curve || [];
  const loss = curve.filter((c) => c.loss != null).map((c) => [c.epoch, c.loss]);
  if (ACTIVE_RUN.has(run.state) && steps.length) loss.push([(p.epoch || 0) + 0.5, steps[steps.length - 1][1]]);  // the epoch under way
  lineChart($("#curve-chart"), {
    xLabel: "epoch", yLabel: "loss", y2Label: "validation MAE", xDomain: [0, total || 1],
    series: [
      { label: "loss", color: "var(--accent)", dots: true, points: loss },
      // months: an axis at least 2 months tall, so a change in the second decimal reads as flat
      { label: "val_mae", color: "var(--warn)", right: true, dots: true, minSpan: 2,
        points: curve.filter((c) => c.val_mae != null).map((c) => [c.epoch, c.val_mae]) },
    ],
  });
}

function renderRuns() {
  $("#runs tbody").replaceChildren(...runs.map((r) => el("tr", {},
    el("td", {}, `#${r.id}`), el("td", {}, el("span", { class: `status-pill ${r.state}` }, r.state)), el("td", {}, r.trigger || ""),
    el("td", {}, r.created_by || "system"), el("td", {}, `${(r.progress || {}).epoch || 0}/${r.config.epochs ?? "?"}`),
    el("td", { class: "small" }, (r.progress || {}).outcome || "—"), el("td", {}, r.result_name || "—"),
    el("td", {}, fmt.when(r.started_at)), el("td", {}, fmt.when(r.finished_at)), el("td", { class: "error small" }, r.error || ""))));
  if (!runs.length) $("#runs tbody").replaceChildren(el("tr", {}, el("td", { colspan: 10, class: "muted" }, "No runs yet.")));
}

async function loadVersions() {
  const response = await api(`/api/projects/${projectId}/models/?limit=50`);
  if (!response.ok) return;
  versions = response.body.results;
  const active = versions.find((v) => v.status === "active");
  $("#active-summary").textContent = active
    ? `Active: ${active.name} · validation MAE ${active.val_mae?.toFixed(2) ?? "?"} months on ${active.validation_study_ids.length} studies`
    : "No model yet: train one to get predictions.";
  const body = $("#versions tbody");
  body.replaceChildren(...versions.map((v) => {
    const action = !canTrain || v.status === "active" || v.status === "training" ? null
      : el("button", { type: "button", class: v.status === "candidate" ? "primary" : "", dataset: { promote: v.id } },
           v.status === "retired" ? "Roll back to this" : "Promote");
    const m = v.metrics || {};
    return el("tr", { dataset: { version: v.id, status: v.status } },
      el("td", {}, el("strong", {}, v.name)), el("td", {}, el("span", { class: `status-pill ${v.status}` }, v.status)),
      el("td", {}, v.val_mae != null ? v.val_mae.toFixed(2) : "—"), el("td", {}, m.coverage90 != null ? `${(m.coverage90 * 100).toFixed(0)}%` : "—"),
      el("td", {}, `${v.training_studies} / ${v.validation_study_ids.length}`), el("td", {}, v.parent_name || "—"),
      el("td", {}, fmt.when(v.created_at)), el("td", {}, fmt.when(v.promoted_at)), el("td", {}, action));
  }));
  if (!versions.length) body.replaceChildren(el("tr", {}, el("td", { colspan: 9, class: "muted" }, "No model versions yet.")));
  loadAnalysis(active);
  renderRun();  // the run's text names its version's one figure
}

// Promoting or rolling back asks first, with the two versions side by side (one validation figure each).
function confirmPromotion(target, active) {
  const rows = [
    ["Status", (v) => v.status],
    ["Validation MAE", (v) => (v.val_mae != null ? `${v.val_mae.toFixed(2)} months` : "—")],
    ["Train / held-out studies", (v) => `${v.training_studies} / ${v.validation_study_ids.length}`],
    ["Parent", (v) => v.parent_name || "—"],
    ["Created", (v) => fmt.when(v.created_at)],
    ["Gate", (v) => ((v.metrics || {}).gate || {}).summary || "—"],
  ];
  const versions = active ? [active, target] : [target];
  const dialog = el("dialog", { id: "promote-dialog", class: "card" },
    el("h2", {}, active ? `Make ${target.name} active instead of ${active.name}?` : `Make ${target.name} active?`),
    el("table", { class: "data" },
      el("thead", {}, el("tr", {}, el("th", {}), ...versions.map((v) => el("th", {}, v === active ? `${v.name} (active now)` : v.name)))),
      el("tbody", {}, ...rows.map(([label, value]) => el("tr", {}, el("th", {}, label), ...versions.map((v) => el("td", {}, value(v))))))),
    el("p", { class: "muted small" }, "Every study is re-predicted by the new active model."),
    el("form", { method: "dialog" },
      el("button", { type: "submit", value: "cancel" }, "Cancel"), " ",
      el("button", { type: "submit", value: "promote", class: "primary" }, `Make ${target.name} active`)));
  document.body.append(dialog);
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => { resolve(dialog.returnValue === "promote"); dialog.remove(); });
    dialog.showModal();
  });
}

$("#versions").addEventListener("click", async (e) => {
  const button = e.target.closest("[data-promote]");
  if (!button) return;
  const target = versions.find((v) => String(v.id) === button.dataset.promote);
  if (!target || !(await confirmPromotion(target, versions.find((v) => v.status === "active")))) return;
  button.disabled = true;
  const response = await api(`/api/models/${button.dataset.promote}/promote/`, { method: "POST" });
  if (response.ok) toast(`${response.body.name} is now active; every study is re-predicted.`, "ok");
  else { toast(response.body.detail || "Could not promote.", "error"); button.disabled = false; }
  loadVersions();
});

// --- the active model on its own validation studies ---------------------------------------------
const BANDS = [[0, 2], [2, 6], [6, 10], [10, 14], [14, 20]];
async function loadAnalysis(active) {
  const notes = [$("#scatter-note"), $("#ba-note")];
  if (!active) { for (const id of ["#scatter-chart", "#ba-chart", "#band-chart", "#sex-chart"]) $(id).replaceChildren(); notes.forEach((n) => { n.textContent = "No active model."; }); return; }
  const response = await api(`/api/projects/${projectId}/worklist/?state=&limit=2000&ordering=created_at`);
  if (!response.ok) return;
  const validation = new Set(active.validation_study_ids.map(Number));
  const points = response.body.results.filter((s) => validation.has(s.id) && s.label_months != null && s.prediction && s.prediction.model_version === active.id)
    .map((s) => ({ name: s.external_id || s.original_name, sex: s.sex, label: s.label_months, pred: s.prediction.age_months }));
  const color = (p) => (p.sex === "F" ? "#f472b6" : p.sex === "M" ? "#60a5fa" : "var(--muted)");
  if (!points.length) { notes.forEach((n) => { n.textContent = "No validation predictions yet (re-prediction may still be running)."; }); return; }
  const errors = points.map((p) => p.pred - p.label);
  scatter($("#scatter-chart"), { square: true, xLabel: "label (months)", yLabel: "predicted (months)", lines: [{ kind: "identity" }],
    points: points.map((p) => ({ x: p.label, y: p.pred, color: color(p), title: `${p.name}: label ${p.label}, predicted ${p.pred.toFixed(1)}` })) });
  $("#scatter-note").textContent = `${points.length} validation studies · validation MAE ${active.val_mae?.toFixed(2) ?? "?"} months · pink F, blue M`;
  const bias = errors.reduce((a, e) => a + e, 0) / errors.length;
  const sd = Math.sqrt(errors.reduce((a, e) => a + (e - bias) ** 2, 0) / Math.max(1, errors.length - 1));
  scatter($("#ba-chart"), { xLabel: "mean of prediction and label (months)", yLabel: "difference (months)",
    points: points.map((p) => ({ x: (p.pred + p.label) / 2, y: p.pred - p.label, color: color(p) })),
    lines: [{ y: bias, label: "bias", color: "var(--warn)" }, { y: bias + 1.96 * sd, label: "+1.96 SD", dash: "4 3" }, { y: bias - 1.96 * sd, label: "−1.96 SD", dash: "4 3" }] });
  $("#ba-note").textContent = `bias ${bias.toFixed(2)} months · limits of agreement ${(bias - 1.96 * sd).toFixed(1)} to ${(bias + 1.96 * sd).toFixed(1)}`;
  const group = (test) => { const e = points.filter(test).map((p) => Math.abs(p.pred - p.label)); return { value: e.length ? e.reduce((a, b) => a + b, 0) / e.length : null, n: e.length }; };
  bars($("#band-chart"), { yLabel: "MAE (months)", bars: BANDS.map(([lo, hi]) => ({ label: `${lo}–${hi} y`, ...group((p) => p.label >= lo * 12 && p.label < hi * 12) })) });
  bars($("#sex-chart"), { yLabel: "MAE (months)", bars: [
    { label: "female", color: "#f472b6", ...group((p) => p.sex === "F") }, { label: "male", color: "#60a5fa", ...group((p) => p.sex === "M") }] });
}

// --- start / cancel ------------------------------------------------------------------------------
// The epochs field's placeholder says what a run gets when it is left blank: the project's training defaults
// (settings page), which differ between a fine-tune (active model, starter) and a run from scratch.
let defaults = null;
function showDefaultEpochs() {
  const form = $("#run-form");
  if (!form || !defaults) return;
  const init = form.elements.init.value;
  if (init === "recipe") {  // the recipe's stages share one time budget; the epochs field is not theirs
    form.elements.epochs.placeholder = "stages share a time budget";
    form.elements.epochs.title = "The default recipe: segmenter, regressor on its crops, joint pass, in one time budget";
    return;
  }
  const kind = init === "fresh" ? defaults.from_scratch : defaults.fine_tune;
  form.elements.epochs.placeholder = `default ${kind.epochs}`;
  const limit = kind.max_seconds ? `, at most ${kind.max_seconds} s` : "";
  form.elements.epochs.title = `Blank: ${kind.epochs} epochs, lr ${kind.lr}${limit} `
    + `(the project's training defaults, set by an admin on the settings page)`;
}
async function loadDefaults() {
  const response = await api(`/api/projects/${projectId}/training-defaults/`);
  if (response.ok) { defaults = response.body; showDefaultEpochs(); }
}
$("#run-form")?.elements.init.addEventListener("change", showDefaultEpochs);
$("#run-form")?.addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = new FormData(e.target), json = form.get("init") === "auto" ? {} : { init: form.get("init") };
  if (form.get("epochs")) json.epochs = +form.get("epochs");
  $("#start-run").disabled = true;
  const response = await api(`/api/projects/${projectId}/training-runs/`, { method: "POST", json });
  if (response.status === 201) { toast(`Run ${response.body.id} queued.`, "ok"); steps = []; current = response.body; runs.unshift(response.body); renderRuns(); renderRun(); }
  else { toast(response.body.detail || "Could not start a run.", "error"); $("#start-run").disabled = false; }
});
$("#start-audit")?.addEventListener("click", async () => {
  if (!confirm("Audit every label? 5 fold models are trained, each on 4/5 of the labels, and each predicts the fifth it "
    + "never saw; the review queue then flags the labels those predictions disagree with.")) return;
  $("#start-audit").disabled = true;
  const response = await api(`/api/projects/${projectId}/training-runs/`, { method: "POST", json: { kind: "audit", folds: 5 } });
  if (response.status === 201) { toast(`Audit ${response.body.id} queued.`, "ok"); steps = []; current = response.body; runs.unshift(response.body); renderRuns(); renderRun(); }
  else { toast(response.body.detail || "Could not start the audit.", "error"); $("#start-audit").disabled = false; }
});
$("#cancel-run")?.addEventListener("click", async () => {
  if (!current) return;
  const response = await api(`/api/training-runs/${current.id}/cancel/`, { method: "POST" });
  if (response.ok) { current = response.body; renderRun(); toast(`Run ${current.id}: ${current.state}.`); }
  else toast(response.body.detail || "Could not cancel.", "error");
});

// --- live ----------------------------------------------------------------------------------------
const live = connectLive(projectId, { onReconnect: () => { loadRuns(); loadVersions(); } });
live.on("training.progress", (e) => {
  if (!current || e.run !== current.id) { loadRuns(); return; }
  current.state = current.state === "queued" ? "running" : current.state;
  current.progress = { ...current.progress, ...e };
  if (e.loss != null && e.step != null) steps.push([e.step, e.loss]);
  if (e.val_mae != null && !current.curve.some((c) => c.epoch === e.epoch) && e.epoch) {
    current.curve = [...current.curve, { epoch: e.epoch, step: e.step, loss: e.loss, val_mae: e.val_mae }];
  }
  renderRun();
});
for (const type of ["training.queued", "training.started", "training.cancelling"]) live.on(type, loadRuns);
live.on("training.finished", () => { loadRuns(); loadVersions(); });
live.on("model.promoted", () => loadVersions());
live.on("model.rejected_by_gate", (e) => toast(`${e.name} was not promoted: ${e.outcome}`));
live.on("model.repredict.progress", (e) => { $("#active-summary").dataset.repredict = `${e.done}/${e.total}`; });
live.on("model.repredicted", () => loadVersions());

loadRuns();
loadVersions();
if (canTrain) loadDefaults();
