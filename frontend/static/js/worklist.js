// Worklist: one request per page of rows, filters and sorting (incl. active learning), live rows,
// next case, and an upload area with per-file progress and the API's per-file errors.
import { api, el, fmt, nextCaseUrl, openNextCase, toast, uploadFile } from "./api.js";
import { connectLive } from "./live.js";
import { forPeople } from "./words.js";

const page = document.getElementById("worklist-page");
const projectId = +page.dataset.project;
const body = document.getElementById("worklist-body");
const filters = document.getElementById("filters");
const PAGE = 100;
let offset = 0, selected = -1, total = 0;

function query() {
  const params = new URLSearchParams();
  for (const [key, value] of new FormData(filters)) if (value) params.set(key, value);
  return params;
}

const STATE_TEXT = { unlabeled: "unlabeled", labeled: "labeled", in_review: "in review" };

let activeModel = null;  // the active model's name, for the words on a reading an earlier model made
function previousModelText(p) {
  return `Read by ${p.model_name}, the model before ${activeModel || "the active one"}: ` +
    `${activeModel || "the active model"} has not read this study yet. Its reading replaces this one as soon as it has.`;
}

// One name per study wherever a person reads it (the study page's title too): its external id, else its file name.
function studyName(study) { return study.external_id || study.original_name || "unnamed study"; }

function row(study) {
  const p = study.prediction;
  const prediction = p && p.values_hidden ? el("span", { class: "muted", title: "Blind review: hidden until you entered your reading" }, "hidden")
    : p ? el("span", { class: `${p.interval_note ? "uncalibrated" : ""} ${p.from_previous_model ? "previous-model" : ""}`,
      title: `${fmt.interval(p.interval_months, p.interval_level)} months (std ${p.std_months.toFixed(1)})` +
        (p.interval_note ? `\n${p.interval_note}` : "") + (p.from_previous_model ? `\n${previousModelText(p)}` : "") },
    `${fmt.months(p.age_months)} `, el("span", { class: "muted interval" },
      p.interval_months ? `${p.interval_months[0].toFixed(0)}–${p.interval_months[1].toFixed(0)}` : "")) : el("span", { class: "muted" }, "—");
  const previous = p && p.from_previous_model  // a re-prediction is under way: an earlier model's reading stands in
    ? el("div", { class: "outside-tag previous-model-tag", title: previousModelText(p) }, `from ${p.model_name}, the previous model`) : "";
  const name = studyName(study);
  return el("tr", { dataset: { study: study.id, state: study.state }, tabindex: "-1" },
    el("td", { class: "thumb-col" }, el("img", { class: "thumb", loading: "lazy", src: study.thumb_url, alt: "", width: 48, height: 48 })),
    el("td", {}, el("a", { href: `/studies/${study.id}/` }, name), el("div", { class: "muted small" }, `${study.width}×${study.height}`),
      study.frame && !study.frame.as_stored  // read turned, inverted or one hand (studies.frame): what was done, on hover
        ? el("div", { class: "outside-tag film-read-corrected", title: study.frame.sentence }, "read corrected")
        : study.film_check && study.film_check.verdict && study.film_check.verdict !== "read"  // ml.gate: why, on hover
          ? el("div", { class: "outside-tag film-check", title: study.film_check.reason }, "check this film") : "",
      study.failure  // the pipeline stopped for this study (studies.failures): the reason, in words
        ? el("div", { class: "outside-tag failure-tag", title: study.failure.detail }, "processing stopped") : "",
      study.failure ? el("div", { class: "small failure-reason" }, study.failure.summary) : "",
      study.mask_to_check  // ml.automask's quality: the automatic mask may have missed part of the hand or taken a panel
        ? el("div", { class: "outside-tag mask-check", title: `The automatic hand mask scored ${study.mask_quality.toFixed(2)}: `
          + "it may miss a finger or take a panel or a marker. Open the study and fix it in the mask editor." }, "check the mask") : ""),
    el("td", {}, study.sex || "?"),
    el("td", { class: "num" }, study.chronological_age_months == null ? "—" : fmt.ym(study.chronological_age_months)),
    el("td", { class: "num" }, study.label_hidden ? el("span", { class: "muted", title: "Blind review: someone else's label" }, "hidden")
      : study.label_months == null ? el("span", { class: "muted" }, "—") : fmt.ym(study.label_months)),
    el("td", { class: "num" }, prediction, previous, p && p.outside_experience  // ml.ood: the reading is a guess; why, on hover
      ? el("div", { class: "outside-tag", title: p.outside_reason }, "outside this model's experience") : ""),
    el("td", {}, el("span", { class: `badge ${study.state}` }, STATE_TEXT[study.state] || study.state)),
    el("td", { class: "muted small" }, fmt.when(study.created_at)));
}

let latestLoad = 0;  // a reload the live socket started must not overwrite the answer to a newer filter or ordering
async function load({ append = false } = {}) {
  if (!append) offset = 0;
  const params = query(), mine = ++latestLoad;
  params.set("limit", PAGE); params.set("offset", offset);
  history.replaceState(null, "", `?${query()}`);
  const response = await api(`/api/projects/${projectId}/worklist/?${params}`);
  if (mine !== latestLoad) return;  // a newer load is under way: its answer is the one to show
  if (!response.ok) { toast(response.body.detail || "The worklist could not be loaded.", "error"); return; }
  const { results, count, active_model: model, reprediction, reprediction_stopped: stopped } = response.body;
  total = count;
  activeModel = model ? model.name : null;
  showRepredictProgress(reprediction);  // from the server: a page opened mid-run says how far it is too
  showRepredictStopped(stopped);
  showCount();
  document.getElementById("active-model").textContent = model ? `Active model: ${model.name}` : "No model yet: predictions appear once a model is trained";
  const rows = results.map(row);
  if (append) body.append(...rows);
  else body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 8, class: "muted empty" }, EMPTY_TEXT))]));
  offset += results.length;
  document.getElementById("load-more").hidden = offset >= count;
  page.dataset.loaded = "1";
}

async function refreshRow(studyId, { insert = false } = {}) {
  const response = await api(`/api/worklist-rows/${studyId}/`);
  if (!response.ok) return;
  const fresh = row(response.body), old = body.querySelector(`tr[data-study="${studyId}"]`);
  if (old) { old.replaceWith(fresh); fresh.classList.add("flash"); }
  else if (insert) {
    body.querySelector("td.empty")?.parentElement.remove();
    body.prepend(fresh); fresh.classList.add("flash", "new");
    total += 1; showCount();
  }
}

function showCount() { document.getElementById("study-count").textContent = `${total} stud${total === 1 ? "y" : "ies"}`; }
const EMPTY_TEXT = "No studies match. Upload some, or change the filters.";

// study.deleted: the row goes at once (no request: the study is gone), the count and the next page's offset with it.
function removeRow(studyId) {
  const old = body.querySelector(`tr[data-study="${studyId}"]`);
  if (!old) return;
  old.remove();
  total = Math.max(0, total - 1); offset = Math.max(0, offset - 1);
  showCount();
  if (!body.querySelector("tr[data-study]")) body.replaceChildren(el("tr", {}, el("td", { colspan: 8, class: "muted empty" }, EMPTY_TEXT)));
}

// filters & sorting
for (const [key, value] of new URLSearchParams(location.search)) if (filters.elements[key]) filters.elements[key].value = value;
let typing = 0;
filters.addEventListener("input", (e) => { clearTimeout(typing); typing = setTimeout(load, e.target.type === "search" ? 250 : 0); });
filters.addEventListener("submit", (e) => { e.preventDefault(); load(); });
document.querySelectorAll("button.sort").forEach((button) => button.addEventListener("click", () => {
  const order = filters.elements.ordering, key = button.dataset.sort;
  order.value = order.value === key ? `-${key}` : key;
  if (!order.value || order.selectedIndex < 0) order.value = key;
  load();
}));
document.getElementById("load-more").addEventListener("click", () => load({ append: true }));

// keyboard: the reading-room flow
function select(index) {
  const rows = [...body.querySelectorAll("tr[data-study]")];
  if (!rows.length) return;
  selected = Math.max(0, Math.min(rows.length - 1, index));
  rows.forEach((r, i) => r.classList.toggle("selected", i === selected));
  rows[selected].focus(); rows[selected].scrollIntoView({ block: "nearest" });
}
// An upload refusal reads as a sentence ("Not a DICOM file: …").
const UPLOAD_ERRORS = { unsupported_media_type: "Not a DICOM, PNG or JPEG file", unreadable_dicom: "Not a readable DICOM file",
  file_too_large: "Too large", empty_file: "Empty file", uid_conflict: "Clashes with a stored study",
  no_pixel_data: "A DICOM without an image", truncated_image: "A damaged image", invalid_field: "A form field is invalid" };
// The exception text a reason may end with ("…: OSError: Truncated File Read") and the HTTP code go to its tooltip.
function uploadErrorText(code, answer) {
  if (!code) return { text: answer.detail || "The upload was interrupted: the server cannot be reached.", technical: "" };
  const lead = UPLOAD_ERRORS[answer.error];
  const { text, technical } = forPeople(answer.detail || "The server refused the file.");
  return { text: `${lead ? `${lead}: ` : ""}${lead && /^[A-Z][a-z]/.test(text) ? text.charAt(0).toLowerCase() + text.slice(1) : text}`,
           technical: `HTTP ${code}${answer.error ? ` ${answer.error}` : ""}${technical ? `: ${technical}` : ""}` };
}

async function nextCase() {
  const response = await nextCaseUrl(projectId);
  if (response.ok) openNextCase(response.body);
  else toast(response.body.detail || "No next case.", response.status === 404 ? "info" : "error");
}
document.getElementById("next-case")?.addEventListener("click", nextCase);
document.addEventListener("keydown", (e) => {
  if (/^(INPUT|SELECT|TEXTAREA)$/.test(e.target.tagName) || e.ctrlKey || e.metaKey || e.altKey) return;
  const rows = body.querySelectorAll("tr[data-study]");
  if (e.key === "ArrowDown" || e.key === "j") { e.preventDefault(); select(selected + 1); }
  else if (e.key === "ArrowUp" || e.key === "k") { e.preventDefault(); select(selected - 1); }
  else if (e.key === "Enter" && rows[selected]) location.assign(`/studies/${rows[selected].dataset.study}/`);
  else if (e.key === "n" && page.dataset.canLabel === "1") nextCase();
  else if (e.key === "/") { e.preventDefault(); document.getElementById("filter-q").focus(); }
});
body.addEventListener("click", (e) => {
  const tr = e.target.closest("tr[data-study]");
  if (tr && !e.target.closest("a")) location.assign(`/studies/${tr.dataset.study}/`);
});

// uploads: one request per file, two at a time, progress and the API's reason per file
const uploadForm = document.getElementById("upload");
if (uploadForm) {
  const list = document.getElementById("uploads"), zone = document.getElementById("dropzone");
  const input = uploadForm.elements.file;
  const queue = [];
  let running = 0;
  const pump = () => {
    while (running < 2 && queue.length) {
      const job = queue.shift();
      running += 1;
      job().finally(() => { running -= 1; pump(); });
    }
  };
  const send = (files) => {
    const fields = { sex: uploadForm.elements.sex.value, chronological_age_months: uploadForm.elements.chronological_age_months.value };
    for (const file of files) {
      const bar = el("progress", { max: 1, value: 0 }), status = el("span", { class: "status muted" }, "queued");
      const item = el("li", { dataset: { file: file.name, outcome: "queued" } }, el("span", { class: "name", title: file.name }, file.name), bar, status);
      list.prepend(item);
      queue.push(async () => {
        status.textContent = "uploading";
        const { status: code, body: answer } = await uploadFile(`/api/projects/${projectId}/studies/`, file, fields, (f) => { bar.value = f; });
        bar.value = 1;
        if (code === 201) { item.dataset.outcome = "stored"; status.replaceChildren("stored as ", el("a", { href: `/studies/${answer.id}/` }, studyName(answer))); }
        else if (code === 200 && answer.already_stored) { item.dataset.outcome = "duplicate"; status.replaceChildren("already stored as ", el("a", { href: `/studies/${answer.study.id}/` }, studyName(answer.study))); }
        else { item.dataset.outcome = "error"; const why = uploadErrorText(code, answer); status.textContent = why.text; status.title = why.technical; }
        status.className = `status ${item.dataset.outcome}`;
      });
    }
    pump();
  };
  uploadForm.addEventListener("submit", (e) => { e.preventDefault(); if (input.files.length) send([...input.files]); input.value = ""; });
  input.addEventListener("change", () => { if (input.files.length) { send([...input.files]); input.value = ""; } });
  ["dragenter", "dragover"].forEach((t) => zone.addEventListener(t, (e) => { e.preventDefault(); zone.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => zone.addEventListener(t, () => zone.classList.remove("over")));
  zone.addEventListener("drop", (e) => { e.preventDefault(); send([...e.dataTransfer.files]); });
  input.required = false;
}

// live
const live = connectLive(projectId, { onReconnect: () => load() });
live.on("study.ingested", (e) => refreshRow(e.study, { insert: true }));
live.on("study.deleted", (e) => removeRow(e.study));
for (const type of ["prediction.ready", "label.saved", "review.queued", "review.resolved", "mask.saved", "mask.failed"]) live.on(type, (e) => e.study && refreshRow(e.study));
live.on("model.promoted", () => load());
live.on("model.repredicted", () => { showRepredictProgress(null); load(); });
// Re-prediction after a promotion (the demo cohort at `make run`) takes minutes: say how far it is.
function showRepredictProgress(event) {
  const progress = document.getElementById("repredict-progress");
  progress.hidden = !event || event.done >= event.total;
  progress.textContent = event ? `predicting ${event.done} / ${event.total}` : "";
}
live.on("model.repredict.progress", (e) => { showRepredictStopped(null); showRepredictProgress(e); });
live.on("model.repredict.failed", () => { showRepredictProgress(null); load(); });  // load: why it stopped
// A re-prediction whose worker died (the server's watchdog ended it): why, and for a trainer a button to finish it.
let stoppedVersion = null;
function showRepredictStopped(stopped) {
  stoppedVersion = stopped ? stopped.model_version : null;
  document.getElementById("repredict-stopped").hidden = !stopped;
  document.getElementById("repredict-stopped-why").textContent = stopped ? stopped.error : "";
}
document.getElementById("repredict-again")?.addEventListener("click", async () => {
  const response = await api(`/api/models/${stoppedVersion}/repredict/`, { method: "POST" });
  if (!response.ok) { toast(response.body.detail || "The re-prediction could not be started again.", "error"); return; }
  showRepredictStopped(null);
  load();
});

load();
