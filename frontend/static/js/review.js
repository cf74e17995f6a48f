// The review page: the live queue, one item's evidence and the decision, the rules and the agreement metrics.
// Everything comes from the API (/api/projects/{p}/review-items/, /api/review-items/{id}/...) and the project
// socket; the page never computes a value itself.
import { api, el } from "./api.js";
import { connectLive } from "./live.js";
import { mountReviewCounter } from "./review-counter.js";
import { closedSentence, decisionSentence } from "./words.js";

const root = document.getElementById("review");
const projectId = root.dataset.project;
const canReview = root.dataset.canReview === "true";
const me = root.dataset.user;
const REASONS = { model_vs_label: "model vs label", label_vs_label: "label vs label", mask_vs_mask: "mask vs mask",
                  model_unsure: "model unsure", model_outside: "outside this model's experience" };
const $ = (selector, scope = document) => scope.querySelector(selector);
const state = { selected: null, items: [], next: null, shown: "" };

const fmt = (value, digits = 1) => (value === null || value === undefined ? "—" : Number(value).toFixed(digits));

function size(item) {
  if (item.magnitude === null) return "hidden";
  if (item.unit === "ratio") return `${fmt(item.magnitude, 1)}× threshold`;  // model_outside: distance over threshold
  return item.unit === "dice" ? `Dice ${fmt(1 - item.magnitude, 2)}` : `${fmt(item.magnitude)} mo`;
}

function stateText(item) {
  if (item.state === "claimed") return item.claimed_by === me ? "claimed by you" : `claimed by ${item.claimed_by}`;
  return item.state === "closed" ? "closed itself" : item.state;
}

// --- the queue -----------------------------------------------------------------------------------------

async function loadQueue(append = false) {
  const params = new URLSearchParams({ state: $("#state-filter").value, limit: "50" });
  if ($("#reason-filter").value) params.set("reason", $("#reason-filter").value);
  const url = append && state.next ? state.next : `/api/projects/${projectId}/review-items/?${params}`;
  const { ok, body: data } = await api(url);
  const body = $("#queue tbody");
  if (!ok) { body.replaceChildren(el("tr", {}, el("td", { colspan: 6, class: "error", text: data?.detail || "Cannot load the queue." }))); return; }
  state.items = append ? state.items.concat(data.results) : data.results;
  state.next = data.next;
  $("#more").hidden = !data.next;
  body.replaceChildren(...state.items.map(row));
  if (!state.items.length) body.append(el("tr", {}, el("td", { colspan: 6, class: "muted", text: "Nothing here: no disagreement needs a reviewer." })));
}

function row(item) {
  const tr = el("tr", { "data-item": item.id, "data-state": item.state, class: item.id === state.selected ? "selected" : null,
                        onclick: () => selectItem(item.id) },
    el("td", { text: item.priority === null ? "·" : fmt(item.priority, 2) }),
    el("td", {}, el("img", { class: "thumb", loading: "lazy", src: item.image_url, alt: "" })),
    el("td", {}, el("a", { href: item.study_url, text: item.study_name || `study ${item.study}`, onclick: (e) => e.stopPropagation() })),
    el("td", { text: REASONS[item.reason] || item.reason }),
    el("td", { text: size(item) }),
    el("td", { text: stateText(item) }));
  return tr;
}

// --- one item ------------------------------------------------------------------------------------------

async function selectItem(id) {
  state.selected = id;
  const url = new URL(location.href);  // the address names the item on screen: reload or share it
  if (url.searchParams.get("item") !== String(id)) { url.searchParams.set("item", String(id)); history.replaceState(null, "", url); }
  for (const tr of document.querySelectorAll("#queue tbody tr")) tr.classList.toggle("selected", Number(tr.dataset.item) === id);
  const { ok, body: data } = await api(`/api/review-items/${id}/`);
  if (!ok) { $("#detail").replaceChildren(el("p", { class: "error", text: data?.detail || "Cannot load this item." })); return; }
  renderDetail(data);
}

function say(text, kind = "") {
  const line = $("#status");
  if (line) { line.textContent = text; line.className = `status-line ${kind}`; }
}

async function act(path, options, okText) {
  const { ok, body: data } = await api(path, options);
  if (!ok) { say(data?.detail || "Failed.", "error"); return null; }
  renderDetail(data);
  say(okText, "ok");
  loadQueue();
  loadAgreement();
  return data;
}

function images(item) {
  const figures = [el("figure", {}, el("img", { src: item.image_url, alt: "radiograph", id: "item-image" }), el("figcaption", { text: "radiograph" }))];
  const ev = item.evidence;
  if (ev && item.reason === "mask_vs_mask") {
    const revisions = ev.between === "model" ? [ev.revision] : ev.revisions || [];
    for (const revision of revisions) {
      figures.push(el("figure", {}, el("img", { src: `/api/masks/${revision}/png/`, alt: "expert mask" }), el("figcaption", { text: `mask revision ${revision}` })));
    }
    if (ev.between === "model" && ev.prediction) {
      figures.push(el("figure", {}, el("img", { src: `/api/studies/${item.study}/predictions/${ev.prediction.model_version}/mask.png`, alt: "model mask" }),
        el("figcaption", { text: `model ${ev.prediction.model}` })));
    }
  }
  return el("div", { class: "images" }, ...figures);
}

function values(item) {
  const ev = item.evidence;
  if (!ev) return el("p", { class: "muted", text: "Values hidden (blind review)." });
  const dl = el("dl", { class: "values" });
  const add = (term, text) => dl.append(el("dt", { text: term }), el("dd", { text }));
  if (ev.label) add("Label", `${fmt(ev.label.months)} months (${ev.label.source}${ev.label.author ? `, ${ev.label.author}` : ""})`);
  for (const label of ev.labels || []) add(`Expert ${label.author || "?"}`, `${fmt(label.months)} months`);
  if (ev.prediction) {
    const p = ev.prediction;
    const range = p.interval_months ? ` (${Math.round(p.interval_level * 100)}% interval ${fmt(p.interval_months[0])}–${fmt(p.interval_months[1])})` : "";
    const audit = String(p.model || "").startsWith("audit ") ? " — found by the label audit" : "";
    add(`Model ${p.model}`, `${fmt(p.age_months)} months${range}${p.out_of_fold ? ", out of fold" : ""}${audit}`);
    if (p.interval_note) dl.append(el("dd", { class: "warning small", text: p.interval_note }));
  }
  if (ev.delta_months !== undefined) add("Difference", `${fmt(ev.delta_months)} months (flag above ${fmt(ev.threshold_months)})`);
  if (ev.spread_months !== undefined) add("Spread", `${fmt(ev.spread_months)} months`);
  if (ev.outside_reason !== undefined) add("Outside this model's experience", ev.outside_reason);
  if (ev.dice !== undefined) add("Dice", `${fmt(ev.dice, 3)} between ${ev.between} (flag below ${ev.min_dice})`);
  if (item.my_blind_read !== null && item.my_blind_read !== undefined) add("Your blind reading", `${fmt(item.my_blind_read)} months`);
  return dl;
}

function decisionForm(item) {
  const ev = item.evidence || {};
  const box = el("div", { class: "decide" });
  const post = (body, text) => act(`/api/review-items/${item.id}/resolve/`, { method: "POST", json: body }, text);
  const isMask = item.reason === "mask_vs_mask";
  if (!isMask) {
    const accepts = el("div", { class: "row" });
    if (ev.labels?.length) {
      for (const label of ev.labels) {
        accepts.append(el("button", { type: "button", class: "accept-label", onclick: () => post({ decision: "accept_label", label: label.id }, "Label accepted as gold."),
          text: `Accept ${label.author || "label"}: ${fmt(label.months)}` }));
      }
    } else if (ev.label) {
      accepts.append(el("button", { type: "button", id: "accept-label", onclick: () => post({ decision: "accept_label" }, "Label accepted as gold."),
        text: `Accept label ${fmt(ev.label.months)}` }));
    }
    if (ev.prediction) {
      accepts.append(el("button", { type: "button", id: "accept-model", onclick: () => post({ decision: "accept_model" }, "Model value accepted as gold."),
        text: `Accept model ${fmt(ev.prediction.age_months)}` }));
    }
    box.append(accepts);
    const months = el("input", { type: "number", min: 0, max: 240, step: 0.5, id: "new-value", placeholder: "months",
                                 value: item.my_blind_read ?? "" });
    box.append(el("div", { class: "row" }, el("label", { text: "New value " }, months),
      el("button", { type: "button", class: "primary", id: "decide-new-value",
                     onclick: () => post({ decision: "new_value", months: months.value }, "New gold value saved.") , text: "Save gold value" })));
  } else {
    const row = el("div", { class: "row" });
    if (ev.prediction) row.append(el("button", { type: "button", id: "accept-model-mask", text: "Accept model mask",
      onclick: () => post({ decision: "accept_model" }, "Model mask accepted as gold.") }));
    box.append(row);
  }
  const file = el("input", { type: "file", accept: "image/png", id: "mask-file" });
  box.append(el("div", { class: "row" },
    el("a", { href: `/studies/${item.study}/?review_item=${item.id}#mask`, id: "open-editor", text: "Correct the mask in the editor" }),
    el("span", { class: "muted", text: "or upload a corrected PNG:" }), file,
    el("button", { type: "button", onclick: () => {
      if (!file.files.length) { say("Choose the corrected mask PNG first.", "error"); return; }
      const form = new FormData();
      form.append("decision", "mask");
      form.append("file", file.files[0]);
      act(`/api/review-items/${item.id}/resolve/`, { method: "POST", form }, "Corrected mask saved as gold.");
    }, text: "Save mask" })));
  const reason = el("input", { type: "text", id: "dismiss-reason", placeholder: "why nothing needs fixing", size: 32 });
  box.append(el("div", { class: "row" }, reason,
    el("button", { type: "button", id: "dismiss", onclick: () => post({ decision: "dismiss", reason: reason.value }, "Dismissed."), text: "Dismiss" })));
  return box;
}

const shownKey = (item) => `${item.id}:${item.state}:${item.claimed_by}:${item.values_hidden}`;

// A live event about the item on screen: re-render only when what it shows changed (another reviewer took or
// decided it, or the rules closed it), never for our own claim echoing back — that would wipe what is typed.
async function refreshSelected() {
  const { ok, body: data } = await api(`/api/review-items/${state.selected}/`);
  if (ok && shownKey(data) !== state.shown) renderDetail(data);
}

function renderDetail(item) {
  state.shown = shownKey(item);
  const detail = $("#detail");
  const head = el("h2", { text: `${REASONS[item.reason] || item.reason} · ` },
    el("a", { href: item.study_url, text: item.study_name || `study ${item.study}` }));
  const parts = [head, el("p", { class: "muted", id: "item-state", text: `${stateText(item)} · priority ${item.priority === null ? "hidden" : fmt(item.priority, 2)}` }), images(item)];
  const open = item.state === "open" || item.state === "claimed";
  const mine = item.state === "claimed" && item.claimed_by === me;
  if (canReview && open) {
    const claimRow = el("div", { class: "row" });
    if (!mine) claimRow.append(el("button", { type: "button", id: "claim", class: "primary", text: "Claim",
      onclick: () => act(`/api/review-items/${item.id}/claim/`, { method: "POST" }, "Claimed: it is yours until the lease ends.") }));
    else claimRow.append(el("span", { text: `yours until ${new Date(item.lease_expires_at).toLocaleTimeString()} ` }),
      el("button", { type: "button", id: "release", class: "link", text: "give back",
                     onclick: () => act(`/api/review-items/${item.id}/release/`, { method: "POST" }, "Given back to the queue.") }));
    parts.push(claimRow);
  }
  if (item.values_hidden && canReview && open) {
    const months = el("input", { type: "number", min: 0, max: 240, step: 0.5, id: "blind-months", placeholder: "months" });
    parts.push(el("div", { class: "row" }, el("label", { text: "Blind review — your own bone age first: " }, months),
      el("button", { type: "button", id: "blind-read", class: "primary", text: "Show the others",
                     onclick: () => act(`/api/review-items/${item.id}/blind-read/`, { method: "POST", json: { months: months.value } }, "Your reading is kept with the decision.") })));
  } else {
    parts.push(values(item));
  }
  if (canReview && open && !item.values_hidden) {
    const form = decisionForm(item);
    if (!mine) {  // deciding needs the claim: the buttons wait for it
      form.querySelectorAll("button, input").forEach((control) => { control.disabled = true; });
      form.prepend(el("p", { class: "muted", id: "claim-first", text: "Claim the item to decide it." }));
    }
    parts.push(form);
  }
  if (!open) {
    parts.push(el("p", { id: "outcome", text: item.state === "closed" ? closedSentence(item.closed_reason)
      : item.outcome ? decisionSentence(item.resolved_by || "A reviewer", item.decision, item.outcome)
        : `${item.resolved_by || "A reviewer"} decided this item (values hidden by blind review).` }));
  }
  parts.push(el("p", { id: "status", class: "status-line" }));
  detail.replaceChildren(...parts);
}

// --- rules and agreement ---------------------------------------------------------------------------------

async function loadRules() {
  const { ok, body: data } = await api(`/api/projects/${projectId}/review-settings/`);
  const box = $("#rules");
  if (!ok) return;
  const dl = el("dl", { class: "rules" });
  const inputs = [];
  for (const [rule, options] of Object.entries(data.settings)) {
    const explain = (data.words || {})[rule] || {}, titles = explain.titles || {};  // in words; names in tooltips
    dl.append(el("dt", { text: explain.title || REASONS[rule] || rule, title: rule }), el("dd", { text: explain.summary || "" }));
    if (typeof options !== "object") {
      const input = el("input", { type: typeof options === "boolean" ? "checkbox" : "number", "data-rule": rule, disabled: !data.can_edit });
      if (typeof options === "boolean") input.checked = options; else input.value = options;
      inputs.push(input);
      dl.append(el("dd", {}, el("label", { title: rule }, input, ` ${explain.title || rule}`)));
      continue;
    }
    for (const [option, value] of Object.entries(options)) {
      const input = el("input", { type: typeof value === "boolean" ? "checkbox" : "number", step: "any", "data-rule": rule, "data-option": option, disabled: !data.can_edit });
      if (typeof value === "boolean") input.checked = value; else input.value = value;
      inputs.push(input);
      const name = option === "enabled" ? "On" : titles[option] || option;
      dl.append(el("dd", {}, el("label", { title: `${rule}.${option}` }, `${name} `, input, el("span", { class: "muted", text: ` ${explain[option] || ""}` }))));
    }
    if (explain.priority) {  // the formula is an engineer's: one click away
      dl.append(el("dd", {}, el("details", { class: "small" }, el("summary", { text: "How the queue orders these" }),
        el("code", { text: `priority = ${explain.priority}` }))));
    }
  }
  const parts = [el("h2", { text: "Rules" }), dl];
  if (data.can_edit) {
    parts.push(el("button", { type: "button", class: "primary", id: "save-rules", text: "Save rules (re-runs them on every study)", onclick: async () => {
      const patch = {};
      for (const input of inputs) {
        const value = input.type === "checkbox" ? input.checked : Number(input.value);
        if (input.dataset.option) (patch[input.dataset.rule] ||= {})[input.dataset.option] = value;
        else patch[input.dataset.rule] = value;
      }
      const result = await api(`/api/projects/${projectId}/review-settings/`, { method: "PATCH", json: patch });
      $("#rules-status").textContent = result.ok ? "Saved; the rules re-run in the background." : result.body?.detail;
      $("#rules-status").className = `status-line ${result.ok ? "ok" : "error"}`;
    } }), el("p", { id: "rules-status", class: "status-line" }));
  } else {
    parts.push(el("p", { class: "muted", text: "Only admins change the rules." }));
  }
  box.replaceChildren(...parts);
}

async function loadAgreement() {
  const { ok, body: data } = await api(`/api/projects/${projectId}/agreement/`);
  if (!ok) return;
  const mae = (m) => (m.mae_months === null ? "—" : `${fmt(m.mae_months, 2)} months`);
  const table = el("table", { class: "metrics" },
    el("tr", {}, el("th", { text: "Experts vs experts (MAE)" }), el("td", { text: `${mae(data.experts)} · ${data.experts.pairs} pairs` })),
    el("tr", {}, el("th", { text: "Model vs review decisions (MAE)" }), el("td", { text: `${mae(data.model_vs_review)} · n ${data.model_vs_review.n}` })),
    el("tr", {}, el("th", { text: "Model vs labels, out of fold (MAE)" }), el("td", { text: `${mae(data.model_vs_labels)} · n ${data.model_vs_labels.n}` })),
    el("tr", {}, el("th", { text: "Mask Dice, model vs expert" }), el("td", { text: data.mask_dice.model_vs_expert.n
      ? `median ${fmt(data.mask_dice.model_vs_expert.median, 3)}, p10 ${fmt(data.mask_dice.model_vs_expert.p10, 3)} · n ${data.mask_dice.model_vs_expert.n}` : "—" })));
  const histogram = data.mask_dice.model_vs_expert.histogram;
  const top = Math.max(1, ...histogram);
  const bars = el("div", { class: "histogram", title: "Dice histogram: bins " + data.mask_dice.model_vs_expert.bins.join(" / ") },
    ...histogram.map((n, i) => el("span", { style: `height:${(60 * n) / top}px`, title: `≥ ${data.mask_dice.model_vs_expert.bins[i]}: ${n}` })));
  const rules = el("table", { class: "metrics" }, el("tr", {}, ...["rule", "opened", "open", "resolved", "dismissed", "closed itself"].map((t) => el("th", { text: t }))));
  for (const [rule, c] of Object.entries(data.rules)) {
    const resolved = Object.entries(c.resolved).map(([k, v]) => `${k.replace("_", " ")} ${v}`).join(", ") || "0";
    rules.append(el("tr", {}, ...[REASONS[rule], c.opened, c.open, resolved, c.dismissed, c.closed].map((t) => el("td", { text: String(t) }))));
  }
  $("#agreement").replaceChildren(el("h2", { text: "Agreement" }), table, bars, el("h3", { text: "What each rule opened, and how it ended" }), rules);
}

// --- live --------------------------------------------------------------------------------------------------

let refreshTimer = null;
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => { loadQueue(); loadAgreement(); }, 250);
}

function onLiveEvent(message) {
  if (message.type?.startsWith("review.")) {
    refreshSoon();
    if (message.item === state.selected && message.type !== "review.queued") refreshSelected();
  }
}

$("#reason-filter").addEventListener("change", () => loadQueue());
$("#state-filter").addEventListener("change", () => loadQueue());
$("#more").addEventListener("click", () => loadQueue(true));
mountReviewCounter($("#review-count"), projectId);  // fed by the "boneage:event" window events of live.js
connectLive(projectId, { onEvent: onLiveEvent, onReconnect: refreshSoon });  // events sent while down are lost: reload
loadQueue().then(() => {
  const asked = Number(new URL(location.href).searchParams.get("item"));
  if (asked) selectItem(asked);
});
loadRules();
loadAgreement();
