// The study page: viewer + mask editor + age entry + the live prediction with its attention maps.
import { api, chosenBecause, el, fmt, nextCaseUrl, openNextCase, toast } from "./api.js";
import { drafts } from "./drafts.js";
import { renderHistory } from "./history.js";
import { connectLive } from "./live.js";
import { loadMaskPixels, MaskEditor, tintedOverlay } from "./mask-editor.js";
import { encodeMask } from "./png.js";
import { Viewer, WL_PRESETS } from "./viewer.js";

const ATTENTION = ["Att1_1", "Att2_1", "Att2_2", "Att3_1", "Att3_2", "Att3_3"];
const root = document.getElementById("study");
const studyId = +root.dataset.study, projectId = +root.dataset.project;
const width = +root.dataset.width, height = +root.dataset.height, canLabel = root.dataset.canLabel === "1";
const canReview = root.dataset.canReview === "1";
// Window/level is stated in the file's own values (the viewer works in 0–1 of the normalized image): the values shown
// black and white at full range; an image ingested before they were recorded keeps the 0–1 readout.
const valueBlack = root.dataset.valueBlack === "" ? null : +root.dataset.valueBlack;
const valueWhite = root.dataset.valueWhite === "" ? null : +root.dataset.valueWhite;
function windowReadout(wl) {
  if (valueBlack == null || valueWhite == null) return `W ${wl.width.toFixed(2)} L ${wl.center.toFixed(2)}`;
  const span = valueWhite - valueBlack;
  return `W ${Math.round(Math.abs(wl.width * span))} L ${Math.round(valueBlack + wl.center * span)}`;
}
const $ = (selector) => document.querySelector(selector);
const chosen = chosenBecause(studyId);  // opened by "Next case": say why this study
if (chosen) Object.assign($("#chosen-by"), { textContent: chosen, hidden: false });
const state = { base: null, dirty: false, masks: [], label: null, attention: {}, shownAttention: "", userPicked: false,
                modelMaskUrl: null, cannyUrl: null };
window.__study = state;  // for the browser tests

// --- viewer first: the image is what the reader waits for ------------------------------------------
// the copies' token changes with the frame the film is read in (studies.frame): a cached copy of another frame is never shown
const copies = root.dataset.copies ? `v=${encodeURIComponent(root.dataset.copies)}` : "";
const viewer = new Viewer($("#viewport"), { width, height, displayUrl: `/api/studies/${studyId}/image/${copies ? `?${copies}` : ""}`,
                                            fullUrl: `/api/studies/${studyId}/image/?size=full${copies ? `&${copies}` : ""}` });
const imageShown = viewer.load().catch(() => toast("The image could not be loaded.", "error"));
const editor = new MaskEditor(viewer, { width, height });
window.__editor = editor;
const overlays = { edit: editor.canvas, canny: null, model: null };
const attentionImg = viewer.addLayer(el("img", { alt: "", class: "attention-layer", hidden: true }));
viewer.canvas.after(attentionImg);

viewer.onChange(() => {
  $("#zoom-level").textContent = `${Math.round(viewer.scale * 100)}%`;
  $("#status-wl").textContent = `${windowReadout(viewer.wl)}${viewer.invert ? " · inverted" : ""}`;
  $("#status-res").textContent = viewer.resolution === "full" ? "full resolution (16-bit)" : viewer.resolution === "display" ? "display resolution" : "";
  $("[data-action=invert]").setAttribute("aria-pressed", String(viewer.invert));
});
$("#viewport").addEventListener("pointermove", (e) => {
  const p = viewer.toImage(e.clientX, e.clientY);
  $("#status-pos").textContent = p.x >= 0 && p.y >= 0 && p.x < width && p.y < height ? `x ${p.x | 0} y ${p.y | 0}` : "";
});
$("#wl-preset").addEventListener("change", (e) => { viewer.preset(e.target.value); $("#viewport").focus(); });
viewer.onChange(() => {
  const match = Object.entries(WL_PRESETS).find(([, p]) => p.center === viewer.wl.center && p.width === viewer.wl.width);
  $("#wl-preset").value = match ? match[0] : "custom";
});

// --- facts ------------------------------------------------------------------------------------------
const chrono = root.dataset.age === "" ? null : parseFloat(root.dataset.age);
$("#fact-age").textContent = chrono == null ? "unknown" : fmt.ym(chrono);
$("#fact-age").title = chrono == null ? "" : `${chrono.toFixed(1)} months`;

// --- masks ------------------------------------------------------------------------------------------
function setLayer(kind, visible) {
  const node = overlays[kind], box = document.querySelector(`[data-toggle=${kind}]`);
  if (box) box.checked = visible;
  if (node) node.hidden = !visible;
}
function setOpacity(kind, value) {
  const node = overlays[kind];
  if (node) node.style.opacity = String(value / 100);
}
document.querySelectorAll("[data-toggle]").forEach((box) => box.addEventListener("change", () => setLayer(box.dataset.toggle, box.checked)));
document.querySelectorAll("[data-opacity]").forEach((range) => range.addEventListener("input", () => setOpacity(range.dataset.opacity, +range.value)));
setOpacity("edit", 45);

async function showOverlay(kind, url) {
  if (overlays[kind]) overlays[kind].remove();
  const canvas = await tintedOverlay(url, kind);
  overlays[kind] = viewer.addLayer(canvas, `overlay-${kind}`);
  canvas.hidden = !document.querySelector(`[data-toggle=${kind}]`).checked;
  setOpacity(kind, +document.querySelector(`[data-opacity=${kind}]`).value);
  editor.canvas.before(canvas);  // image < attention < Canny/model < working mask < tools
}

async function loadMasks({ takeNewest }) {
  const response = await api(`/api/studies/${studyId}/masks/`);
  if (!response.ok) return;
  state.masks = response.body;
  const newest = state.masks[0], canny = state.masks.find((m) => m.source === "canny");
  if (canny && canny.url !== state.cannyUrl) { state.cannyUrl = canny.url; await showOverlay("canny", canny.url); }
  if (takeNewest) {
    state.base = newest ? newest.id : null;
    if (newest) editor.replace(await loadMaskPixels(newest.url, width, height), { record: false });
    else editor.replace(new Uint8Array(width * height), { record: false });
    setDirty(false);
  }
  describeBase();
}

function describeBase() {
  const base = state.masks.find((m) => m.id === state.base);
  $("#edit-rev").textContent = base ? `rev ${base.id} · ${base.source}${base.author ? ` · ${base.author}` : ""}` : "none yet";
}

function setDirty(dirty) {
  state.dirty = dirty;
  const save = $("[data-action=save-mask]");
  if (save) save.disabled = !dirty;
  root.dataset.dirty = dirty ? "1" : "0";
  updateHistoryButtons();
}
function updateHistoryButtons() {
  const undo = $("[data-action=undo]"), redo = $("[data-action=redo]");
  if (undo) undo.disabled = !editor.canUndo;
  if (redo) redo.disabled = !editor.canRedo;
  $("#status-mask").textContent = `${editor.undoStack.length} edit${editor.undoStack.length === 1 ? "" : "s"}${state.dirty ? " · unsaved" : ""}`;
}

let draftTimer = 0;
editor.onChange((reason) => {
  if (reason === "edit") {
    setDirty(true);
    root.dataset.draft = "pending";
    clearTimeout(draftTimer);
    draftTimer = setTimeout(saveDraft, 400);
  }
  if (reason === "tool") document.querySelectorAll("button[data-tool]").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.tool === editor.tool)));
  if (reason === "radius") $("#brush-size").value = editor.radius;
  updateHistoryButtons();
});

async function saveDraft() {
  if (!state.dirty) return;
  await drafts.put(studyId, { base: state.base, width, height, mask: editor.mask.slice(), savedAt: Date.now(), steps: editor.undoStack.length });
  root.dataset.draft = "saved";
}

async function offerDraft() {
  const draft = await drafts.get(studyId).catch(() => null);
  if (!draft || draft.width !== width || draft.height !== height) return;
  const when = new Date(draft.savedAt).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const stale = draft.base !== state.base;
  $("#draft-text").textContent = `You have an unsaved mask draft from ${when} (${draft.steps} edits, on revision ${draft.base ?? "none"})` +
    (stale ? ` — the mask has changed since (now revision ${state.base}); saving will ask how to resolve it.` : ".");
  $("#draft-banner").hidden = false;
  $("[data-action=restore-draft]").onclick = () => {
    editor.replace(draft.mask, { record: true, label: "restore draft" });
    state.base = draft.base;
    describeBase();
    setDirty(true);
    $("#draft-banner").hidden = true;
    toast("Draft restored: undo goes back to the saved mask.");
  };
  $("[data-action=discard-draft]").onclick = async () => { await drafts.remove(studyId); $("#draft-banner").hidden = true; };
}

function saveMask(options = {}) {
  const run = review.active && !options.plain ? decideWithMask : saveMaskNow;
  state.saving = run(options).finally(() => { state.saving = null; });
  return state.saving;
}

async function saveMaskNow({ force = false } = {}) {
  if (!canLabel) return;
  const started = performance.now();
  const form = new FormData();
  form.append("file", await encodeMask(editor.mask, width, height), "mask.png");
  performance.measure("mask-encode", { start: started, end: performance.now() });
  if (state.base != null) form.append("base_revision", state.base);
  if (force) form.append("force", "true");
  const response = await api(`/api/studies/${studyId}/masks/`, { method: "POST", form });
  performance.measure("mask-save", { start: started, end: performance.now() });
  if (response.status === 201) {
    state.masks.unshift(response.body);
    state.base = response.body.id;
    setDirty(false);
    await drafts.remove(studyId);
    root.dataset.draft = "none";
    describeBase();
    toast(`Mask saved as revision ${response.body.id}.`, "ok");
    loadHistory();
  } else if (response.status === 409) {
    conflict("mask", response.body);
  } else toast(`Mask not saved: ${response.body.detail || response.status}`, "error");
}

// --- conflicts (409): reload theirs or keep mine --------------------------------------------------
function conflict(kind, body) {
  const dialog = $("#conflict-dialog");
  $("#conflict-title").textContent = kind === "mask" ? "The mask changed while you edited" : "The age label changed";
  $("#conflict-detail").textContent = `${body.detail} Your ${kind === "mask" ? "edits are kept as a draft" : "value is still in the form"} until you choose.`;
  dialog.dataset.kind = kind;
  dialog.querySelectorAll("[data-choice]").forEach((button) => {
    button.onclick = async () => {
      dialog.close();
      const choice = button.dataset.choice;
      if (choice === "cancel") return;
      if (kind === "mask") {
        if (choice === "theirs") { await drafts.remove(studyId); await loadMasks({ takeNewest: true }); toast("Loaded the newest revision."); }
        else await saveMask({ force: true });
      } else if (choice === "theirs") await loadLabels({ fill: true });
      else await saveLabel({ force: true });
    };
  });
  dialog.showModal();
}

// --- age label -----------------------------------------------------------------------------------
const years = $("#age-years"), months = $("#age-months"), total = $("#age-total");
function fromParts() {
  if (years.value === "" && months.value === "") { total.value = ""; return; }
  total.value = String(+(years.value || 0) * 12 + +(months.value || 0));
}
function fromTotal() {
  if (total.value === "") { years.value = ""; months.value = ""; return; }
  const t = +total.value;
  years.value = String(Math.floor(t / 12)); months.value = String(+(t - Math.floor(t / 12) * 12).toFixed(1));
}
years.addEventListener("input", fromParts); months.addEventListener("input", fromParts); total.addEventListener("input", fromTotal);
for (const input of [years, months, total]) input.addEventListener("input", () => { state.labelEdited = true; labelError(""); });
function labelError(text) {  // the server's (or the browser's) reason, on Total months: the value that is sent
  const box = $("#label-error");
  box.textContent = text; box.hidden = !text;
  total.setCustomValidity(text);
  if (text) { box.scrollIntoView({ block: "nearest" }); total.focus(); }
}
// What is wrong with the age as typed, in the project's own range; years and months only help to type the total.
function labelProblem() {
  if ([years, months, total].some((input) => input.validity.badInput)) return "Enter the bone age as a number.";
  if (total.value === "") return "Enter the bone age first.";
  const value = +total.value, low = +total.min, high = +total.max;
  if (value < low || value > high) {
    return `${value} months is ${value > high ? "above" : "below"} this project's range: ${low}–${high} months.`;
  }
  total.setCustomValidity("");
  return total.checkValidity() ? "" : total.validationMessage;  // e.g. a step the field does not take
}

async function loadLabels({ fill }) {
  const response = await api(`/api/studies/${studyId}/labels/`);
  if (!response.ok) return;
  const newest = response.body[0] || null;
  state.label = newest;
  // blind review: someone else's value comes as null (months_hidden) — say so, never guess it
  const value = !newest ? "" : newest.months == null ? "hidden (blind review)" : `${fmt.ym(newest.months)} (${newest.months} mo)`;
  $("#label-current").textContent = newest ? `Current: ${value} · ${newest.source}${newest.author ? ` · ${newest.author}` : ""}` : "No label yet.";
  if (fill && newest && newest.months != null) { total.value = String(newest.months); fromTotal(); }
}

async function saveLabel({ force = false } = {}) {
  const problem = labelProblem();
  if (problem) { labelError(problem); return; }  // never sent
  const value = parseFloat(total.value);
  state.mySaveAt = Date.now();  // the rules run on commit: a review item queued now came from this save
  const response = await api(`/api/studies/${studyId}/labels/`, { method: "POST",
    json: { months: value, base_label: state.label ? state.label.id : null, force } });
  if (response.status !== 201) state.mySaveAt = 0;
  if (response.status === 201) {
    state.labelEdited = false; labelError("");
    toast(`Bone age saved: ${fmt.ym(value)}.`, "ok"); await loadLabels({ fill: false }); loadHistory();
  } else if (response.status === 409) conflict("label", response.body);
  else labelError(`Not saved: ${response.body.detail || `the server answered ${response.status}`}`);
}
$("#label-form").addEventListener("submit", (e) => { e.preventDefault(); if (canLabel) saveLabel(); });

// --- prediction, streamed ----------------------------------------------------------------------------
const predBox = $("#prediction");
function predictionState(value, text) {
  predBox.dataset.state = value;
  if (text != null) { $("#pred-age").textContent = text; $("#pred-interval").textContent = ""; }
}
function showAge(age, std, range = null, level = null, note = "") {
  const calibration = $("#pred-calibration");  // an interval the model's held-out studies cannot vouch for says why
  calibration.textContent = note || ""; calibration.hidden = !note;
  if (age == null) {  // blind review: the model's reading waits until the reviewer entered their own
    $("#pred-age").textContent = "hidden";
    $("#pred-interval").textContent = "Blind review: enter your own reading first (Review page).";
    step("age");
    return;
  }
  $("#pred-age").textContent = `${fmt.ym(age)}`;
  // the interval comes with the stored prediction; while it streams in, the std alone
  const spread = range ? `${fmt.interval(range, level)} mo` : `std ${std.toFixed(1)} mo`;
  $("#pred-interval").textContent = `${age.toFixed(1)} mo · ${spread}` +
    (chrono != null ? ` · ${age - chrono >= 0 ? "+" : ""}${(age - chrono).toFixed(1)} mo vs chronological` : "");
  step("age");
}
// outside the model's experience (ml.ood): the reading is a guess and its interval the project's whole age range
function showOutside(p) {
  const note = $("#pred-outside");
  note.hidden = !(p && p.outside_experience);
  note.textContent = note.hidden ? "" : `Outside this model's experience: ${p.outside_reason}. ` +
    "Treat the reading as a guess; label this film (and others like it) and train.";
}
// a re-prediction under way: the reading shown is an earlier model's until the active one has read this study
function showPrevious(p) {
  const note = $("#pred-previous");
  note.hidden = !(p && p.from_previous_model);
  note.textContent = note.hidden ? "" : `Read by ${p.model_name}, the previous model: the active model has not read ` +
    "this study yet. Its reading replaces this one as soon as it has.";
  predBox.classList.toggle("previous-model", !note.hidden);
}
function step(name, done = true) { const li = document.querySelector(`#pred-steps [data-step=${name}]`); if (li) li.classList.toggle("done", done); }
function resetPrediction() {
  state.attention = {};
  document.querySelectorAll("#pred-steps li").forEach((li) => li.classList.remove("done"));
  $("#att-count").textContent = "0";
  document.querySelectorAll("[data-att]").forEach((b) => { if (b.dataset.att) b.disabled = true; });
  const reset = $("[data-action=reset-model]");
  if (reset) reset.disabled = true;
}
async function showModelMask(url) {
  state.modelMaskUrl = url;
  await showOverlay("model", url);
  const reset = $("[data-action=reset-model]");
  if (reset) reset.disabled = !canLabel;
  step("mask");
}
function addAttention(name, url) {
  state.attention[name] = url;
  const button = document.querySelector(`[data-att="${name}"]`);
  if (button) button.disabled = false;
  $("#att-count").textContent = String(Object.keys(state.attention).length);
  step("attention", Object.keys(state.attention).length === ATTENTION.length);
  if (name === rememberedAttention()) showAttention(name);  // off unless this user chose this map before
}
const attentionKey = `attention:${document.body.dataset.user || ""}`;
function rememberedAttention() { return localStorage.getItem(attentionKey) || ""; }
function pickAttention(name) { state.userPicked = true; localStorage.setItem(attentionKey, name); showAttention(name); }
function showAttention(name) {
  state.shownAttention = name;
  document.querySelectorAll("[data-att]").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.att === name)));
  if (!name) { attentionImg.hidden = true; return; }
  attentionImg.src = state.attention[name];
  attentionImg.hidden = false;
  attentionImg.dataset.name = name;
}
document.querySelectorAll("[data-att]").forEach((b) => b.addEventListener("click", () => pickAttention(b.dataset.att)));
$("#att-opacity").addEventListener("input", (e) => { attentionImg.style.opacity = String(e.target.value / 100); });
attentionImg.style.opacity = "0.7";

async function loadPrediction() {
  // Ask first whether there is one: a study without a prediction must not log a failing request.
  const known = await api(`/api/studies/${studyId}/prediction-state/`);
  if (known.ok && known.body.state === "no_model") return predictionState("none", "No model yet");
  if (known.ok && known.body.state === "prediction_pending") return predictionState("waiting", "Waiting for the worker…");
  const response = await api(`/api/studies/${studyId}/predictions/latest/`);
  if (response.ok) {
    const p = response.body;
    resetPrediction();
    $("#pred-model").textContent = p.model_name ? `· ${p.model_name}` : "";
    showAge(p.age_months, p.std_months, p.interval_months, p.interval_level, p.interval_note);
    showOutside(p); showPrevious(p);
    if (p.mask_url) await showModelMask(p.mask_url);
    for (const name of ATTENTION) if (p.attention && p.attention[name]) addAttention(name, p.attention[name]);
    predictionState("ready");
  } else if (response.status === 404 && response.body.error === "no_model") predictionState("none", "No model yet");
  else if (response.status === 404 && response.body.error === "prediction_pending") predictionState("waiting", "Waiting for the worker…");
  else if (response.status === 404) predictionState("none", "No model yet");
  else predictionState("error", "Prediction unavailable");
}

async function showStoredInterval() {
  const response = await api(`/api/studies/${studyId}/predictions/latest/`);
  if (response.ok) {
    showAge(response.body.age_months, response.body.std_months, response.body.interval_months,
      response.body.interval_level, response.body.interval_note);
    showOutside(response.body); showPrevious(response.body);
  }
}

// --- a study the pipeline stopped on: why, from the study's own record -----------------------------
async function showFailure() {
  const response = await api(`/api/studies/${studyId}/`);
  const failure = response.ok ? response.body.failure : null;
  $("#study-failure").hidden = !failure;
  $("#study-failure-text").textContent = failure ? failure.summary : "";
  $("#study-failure-detail").textContent = failure ? failure.detail : "";
}

// --- history: who / when / what / before → after, newest first (history.js) ---------------------------
let historyTimer = 0, historyRun = Promise.resolve();
function loadHistory() {  // a burst of live events (a decision saves a label, then resolves) → one fetch
  clearTimeout(historyTimer);
  historyTimer = setTimeout(() => {
    historyRun = historyRun.then(() => renderHistory($("#history"), studyId, { newestFirst: true })).catch(() => {});
  }, 120);
}

// --- review: /studies/{id}/?review_item={item}#mask — saving the mask decides the item ----------------
// One request does both (POST /api/review-items/{item}/resolve/ with decision=mask and the PNG): the server
// stores the mask as the gold revision (source review) and resolves the item in one transaction. Saving an
// expert revision first would re-run the disagreement rules at once, and a mask that now agrees with the model
// closes the item by itself before the decision arrives. If the decision fails, nothing is lost: the edit
// stays on screen and in the local draft, the reason is shown, and it can still be kept as an ordinary revision.
const reviewItemId = Number(new URLSearchParams(location.search).get("review_item")) || null;
const review = { item: null, active: false };
const REVIEW_REASONS = { model_vs_label: "model vs label", label_vs_label: "label vs label", mask_vs_mask: "mask vs mask",
                         model_unsure: "model unsure", model_outside: "outside this model's experience" };

function reviewSay(text, kind = "", { offerPlain = false } = {}) {
  const banner = $("#review-banner");
  banner.hidden = false;
  banner.classList.remove("ok", "error");
  if (kind) banner.classList.add(kind);
  banner.dataset.state = kind || "info";
  $("#review-text").textContent = text;
  const plain = $("[data-action=save-mask-plain]");
  if (plain) plain.hidden = !(offerPlain && canLabel);
}

function setSaveLabel() {
  const save = $("[data-action=save-mask]");
  if (save) save.textContent = review.active ? "Save mask & decide" : "Save mask";
}

async function loadReviewItem() {
  if (!reviewItemId) return;
  const response = await api(`/api/review-items/${reviewItemId}/`);
  if (!response.ok) {
    review.active = false;
    reviewSay(`Review item ${reviewItemId} cannot be opened: ${response.body.detail || `HTTP ${response.status}`}. Saving stores an ordinary mask revision.`, "error");
    setSaveLabel();
    return;
  }
  const item = review.item = response.body;
  const open = item.state === "open" || item.state === "claimed";
  const what = `Review item ${item.id} (${REVIEW_REASONS[item.reason] || item.reason})`;
  review.active = open && canReview && canLabel && item.study === studyId;
  root.dataset.review = review.active ? "active" : "inactive";
  if (item.study !== studyId) reviewSay(`${what} belongs to another study; saving stores an ordinary mask revision.`, "error");
  else if (!open) reviewSay(`${what} is already ${item.state === "closed" ? "closed" : item.state}${item.resolved_by ? ` by ${item.resolved_by}` : ""}; saving stores an ordinary mask revision.`);
  else if (!canReview) reviewSay(`${what}: only reviewers and admins decide; saving stores an ordinary mask revision.`);
  else {
    const holder = item.state === "claimed" && item.claimed_by ? ` — claimed by ${item.claimed_by}` : "";
    reviewSay(`${what}${holder}. Correct the mask, then “Save mask & decide”: it becomes the study's gold mask and resolves the item.`);
  }
  setSaveLabel();
}

async function decideWithMask() {
  if (!canLabel) return;
  await saveDraft();  // whatever the server answers, the edit survives a reload
  const form = new FormData();
  form.append("decision", "mask");
  form.append("file", await encodeMask(editor.mask, width, height), "mask.png");
  form.append("note", "corrected in the mask editor");
  const response = await api(`/api/review-items/${reviewItemId}/resolve/`, { method: "POST", form });
  if (response.ok) {
    review.item = response.body;
    review.active = false;
    root.dataset.review = "decided";
    setDirty(false);
    await drafts.remove(studyId);
    root.dataset.draft = "none";
    await loadMasks({ takeNewest: true });
    setSaveLabel();
    const gold = response.body.outcome ? response.body.outcome.gold_mask : null;
    reviewSay(`Decided: your corrected mask is the gold mask${gold ? ` (revision ${gold})` : ""} and review item ${reviewItemId} is resolved.`, "ok");
    toast(`Review item ${reviewItemId} resolved with your mask.`, "ok");
    loadHistory();
    return;
  }
  const body = response.body || {};
  const why = `${body.detail || (response.status ? `HTTP ${response.status}` : "The server cannot be reached.")}${body.error ? ` (${body.error})` : ""}`;
  const next = body.error === "blind_read_required" ? " Enter your own bone age for this item on the review page, then save again."
    : body.error === "claimed_by_other" ? " Wait until the other reviewer gives it back, or keep your mask as an ordinary revision." : "";
  root.dataset.review = "failed";
  reviewSay(`Not decided: ${why}${next} Your mask is kept here and as a draft on this computer; nothing was saved on the server.`,
            "error", { offerPlain: true });
  toast(`Review decision failed: ${body.detail || response.status}`, "error");
  if (body.error === "item_finished") { review.active = false; setSaveLabel(); }
}

// --- live ----------------------------------------------------------------------------------------
const live = connectLive(projectId, { onReconnect: () => { loadPrediction(); loadMasks({ takeNewest: !state.dirty }); loadLabels({ fill: false }); } });
live.on("*", async (event) => {
  if (event.study !== studyId) return;
  switch (event.type) {
    case "prediction.started":
      resetPrediction(); showPrevious(null); state.userPicked = false;
      predictionState("streaming", "Predicting…");
      $("#pred-model").textContent = event.model ? `· ${event.model}` : "";
      break;
    case "prediction.mask": await showModelMask(event.url); break;
    case "prediction.age": showAge(event.age_months, event.std_months); break;
    case "prediction.attention": addAttention(event.name, event.url); break;
    case "prediction.ready":  // a batch re-prediction announces only this: fetch the parts
      if (predBox.dataset.state !== "streaming" || Object.keys(state.attention).length < ATTENTION.length) await loadPrediction();
      else { predictionState("ready"); await showStoredInterval(); }
      break;
    case "prediction.skipped": predictionState("none", event.reason === "no_model" ? "No model yet" : "Not predicted"); break;
    case "prediction.failed": predictionState("error", "Prediction failed"); $("#pred-interval").textContent = event.detail || ""; break;
    case "mask.failed": await showFailure(); break;
    case "study.frame_set":  // someone read the film in another frame: everything on this page is of the old one
      if (state.reframing) break;  // ours: setFrame reloads once its answer is in
      if (state.dirty) toast("The film was turned or inverted by someone else: reload the page (your edits are in the old frame).", "error");
      else window.location.reload();
      break;  // the pipeline stopped for this study: say why (studies.failures)
    case "mask.generated": await loadMasks({ takeNewest: state.base == null && !state.dirty }); loadHistory(); break;
    case "mask.saved":
      if (state.saving) await state.saving.catch(() => null);  // our own save announces itself too
      if (!state.masks.some((m) => m.id === event.revision)) {
        await loadMasks({ takeNewest: !state.dirty });
        if (state.dirty) {
          toast(`Someone saved mask revision ${event.revision}; saving will ask how to resolve it.`);
          $("#edit-rev").append(el("span", { class: "stale" }, ` · newer: rev ${event.revision}`));
        }
      }
      loadHistory(); break;
    case "label.saved": loadLabels({ fill: false }); loadHistory(); break;
    case "review.queued":
      if (state.mySaveAt && Date.now() - state.mySaveAt < 30000) {
        toast("Your save opened a review item: a reviewer will look at this study" +
              (event.reason ? ` (${String(event.reason).replaceAll("_", " ")})` : "") + ".", "ok");
        state.mySaveAt = 0;
      }
      // falls through
    case "review.claimed": case "review.released": case "review.closed": case "review.resolved":
      loadHistory();
      if (review.active && event.item === reviewItemId && !state.saving) loadReviewItem();  // someone else took or closed it
      break;
    default: break;
  }
});

// --- commands and keyboard -------------------------------------------------------------------------
const presets = Object.keys(WL_PRESETS);
const actions = {
  fit: () => viewer.fit(), actual: () => viewer.actualSize(),
  "zoom-in": () => viewer.zoomAt(1.25), "zoom-out": () => viewer.zoomAt(0.8),
  invert: () => viewer.toggleInvert(),
  undo: () => editor.undo(), redo: () => editor.redo(),
  "save-mask": () => saveMask(),
  "save-mask-plain": async () => {
    await saveMask({ plain: true });
    if (!state.dirty) $("[data-action=save-mask-plain]").hidden = true;
  },
  // the frame the film is read in (annotations.frame): the images, the automatic mask and the reading are made again
  "frame-as-stored": () => setFrame(0, false, ""),
  "frame-suggested": () => { const b = $("#frame-suggested"); setFrame(+b.dataset.turns, b.dataset.inverted === "1", $("#film-check").dataset.hand); },
  "fill-holes": () => { if (!editor.fillHoles()) toast("No holes to fill."); },
  "reset-canny": async () => { if (state.cannyUrl) editor.replace(await loadMaskPixels(state.cannyUrl, width, height), { label: "reset to Canny" }); else toast("No Canny mask yet.", "error"); },
  "reset-model": async () => { if (state.modelMaskUrl) editor.replace(await loadMaskPixels(state.modelMaskUrl, width, height), { label: "reset to model" }); },
  help: () => $("#help-dialog").showModal(), "close-help": () => $("#help-dialog").close(),
  "next-case": async () => {
    const response = await nextCaseUrl(projectId, studyId);  // this study counts as passed over
    if (response.ok) openNextCase(response.body);
    else toast(response.body.detail || "No next case.", response.status === 404 ? "info" : "error");
  },
};
async function setFrame(turns, inverted, hand) {
  if (state.dirty && !window.confirm("Your unsaved mask edits are in the current frame and will be lost. Go on?")) return;
  document.querySelectorAll("[data-action^=frame-]").forEach((b) => { b.disabled = true; });
  state.reframing = true;  // our own study.frame_set event must not reload the page before the answer comes
  const response = await api(`/api/studies/${studyId}/frame/`, { method: "POST", json: { turns, inverted, hand } });
  if (!response.ok) {
    state.reframing = false;
    toast(response.body.detail || "The frame could not be changed.", "error");
    document.querySelectorAll("[data-action^=frame-]").forEach((b) => { b.disabled = false; });
    return;
  }
  state.dirty = false;
  window.location.reload();  // the image's size, the mask and the reading all change with the frame
}

document.addEventListener("click", (e) => {
  const pick = e.target.closest("[data-action=frame-hand]");  // two hands: keep the turn and polarity, pick the half
  if (pick) { const now = $("#film-check").dataset; setFrame(+now.turns, now.inverted === "1", pick.dataset.hand); return; }
  const button = e.target.closest("[data-action]");
  if (button && actions[button.dataset.action]) actions[button.dataset.action]();
  const tool = e.target.closest("button[data-tool]");
  if (tool) { editor.setTool(tool.dataset.tool); $("#viewport").focus(); }
});
$("#brush-size")?.addEventListener("input", (e) => editor.setRadius(+e.target.value));

document.addEventListener("keydown", (e) => {
  const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(e.target.tagName) && e.target.type !== "range" && e.target.type !== "checkbox";
  const ctrl = e.ctrlKey || e.metaKey, key = e.key.toLowerCase();
  if (ctrl && key === "s") { e.preventDefault(); saveMask(); return; }
  if (typing || document.querySelector("dialog[open]")) return;
  if (ctrl && key === "z") { e.preventDefault(); e.shiftKey ? editor.redo() : editor.undo(); return; }
  if (ctrl && key === "y") { e.preventDefault(); editor.redo(); return; }
  if (ctrl || e.altKey) return;
  const map = {
    f: actions.fit, 1: actions.actual, "+": actions["zoom-in"], "=": actions["zoom-in"], "-": actions["zoom-out"], i: actions.invert,
    w: () => viewer.preset(presets[(presets.indexOf($("#wl-preset").value) + 1) % presets.length]),
    v: () => editor.setTool("pan"), b: () => canLabel && editor.setTool("brush"), e: () => canLabel && editor.setTool("eraser"),
    l: () => canLabel && editor.setTool(e.shiftKey ? "lasso-sub" : "lasso-add"),
    "[": () => editor.setRadius(editor.radius / 1.25), "]": () => editor.setRadius(editor.radius * 1.25),
    h: () => canLabel && actions["fill-holes"](),
    m: () => setLayer("model", !$("[data-toggle=model]").checked), c: () => setLayer("canny", !$("[data-toggle=canny]").checked),
    x: () => setLayer("edit", !$("[data-toggle=edit]").checked),
    a: () => { const have = ATTENTION.filter((n) => state.attention[n]); if (have.length) pickAttention(have[(have.indexOf(state.shownAttention) + 1) % have.length]); },
    0: () => pickAttention(""),
    g: () => years.focus(), n: actions["next-case"], "?": actions.help,
  };
  const fn = map[e.key] || map[key];
  if (fn) { e.preventDefault(); fn(); }
});
window.addEventListener("pagehide", () => { if (state.dirty) saveDraft(); });
window.addEventListener("beforeunload", (event) => {  // unsaved mask or age edits: the browser asks before leaving
  if (state.dirty || state.labelEdited) { event.preventDefault(); event.returnValue = ""; }
});

// --- start ---------------------------------------------------------------------------------------
(async () => {
  await imageShown;
  await loadMasks({ takeNewest: true });
  root.dataset.ready = "1";
  offerDraft();
})();
loadLabels({ fill: true });
loadPrediction();
loadHistory();
loadReviewItem();
if (location.hash === "#mask") $("#viewport").focus();
