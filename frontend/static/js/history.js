// A study's audit history as a timeline (GET /api/studies/{id}/history/): who, when, what, before → after.
//
//   import { renderHistory } from "/static/js/history.js";
//   renderHistory(document.querySelector("#history"), studyId);   // returns a Promise; call again to refresh
//   renderHistory(element, studyId, { newestFirst: true });        // the study page's side panel
//
// Self-contained: no other module needed; the list is read-only (the history is append-only). Values that blind
// review hides from this viewer come as null with `values_hidden`; the timeline says so instead of showing "—".
import { closedSentence, decisionSentence, maskWords, reasonWords } from "./words.js";

const VERBS = {
  "study.ingested": "ingested", "label.imported": "label imported", "label.saved": "label saved",
  "mask.saved": "mask saved", "review.queued": "queued for review", "review.claimed": "claimed for review",
  "review.released": "released", "review.blind_read": "blind reading entered", "review.resolved": "review decision",
  "review.dismissed": "review dismissed", "review.closed": "review item closed itself", "model.promoted": "model promoted",
  "model.repredict_again": "re-prediction run again",
  "mask.generated": "Canny mask generated", "study.deleted": "study deleted", "study.frame_set": "film read in a new frame",
};

function summarize(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value !== "object") return String(value);
  const keys = ["decision", "months", "source", "reason", "state", "why", "revision", "gold_label", "gold_mask", "active",
                "role", "user", "item"];
  const parts = keys.filter((k) => value[k] !== undefined && value[k] !== null && typeof value[k] !== "object")
    .map((k) => `${k} ${value[k]}`);
  if (value.label && typeof value.label === "object") parts.unshift(`label ${value.label.months ?? "hidden"} (${value.label.source})`);
  return parts.length ? parts.join(", ") : "";  // the raw values are behind "details"
}

const months = (value) => (value == null ? "hidden" : `${+(+value).toFixed(1)}`);

/** A sentence for the events people read most; null → the generic "verb by who: before → after" line. */
function sentence(event) {
  const who = event.actor || "The system";
  const before = event.before || {}, after = event.after || {};
  switch (event.verb) {
    case "label.saved": case "label.imported":
      if (event.values_hidden) return `${who} saved a bone age (value hidden by blind review)`;
      return before.months != null
        ? `${who} changed the bone age ${months(before.months)} → ${months(after.months)} months`
        : `${who} ${event.verb === "label.imported" ? "imported" : "set"} the bone age: ${months(after.months)} months`;
    case "study.ingested": return `${who} uploaded ${after.file || "the study"}`;
    case "study.deleted": return `${who} deleted ${before.name || "the study"} with its files`;
    case "mask.saved": return `${who} saved ${maskWords(after.source)}${after.revision ? ` (revision ${after.revision})` : ""}`;
    case "review.queued": return `The ${reasonWords(after.reason)} rule put this study in the review queue`;
    case "review.claimed": return `${who} claimed the review item`;
    case "review.released": return `${who} gave the review item back to the queue`;
    case "review.blind_read": return event.values_hidden || after.months == null ? `${who} entered a blind reading`
      : `${who} entered a blind reading of ${months(after.months)} months`;
    case "review.resolved": case "review.dismissed":
      return event.values_hidden ? `${who} decided the review item (values hidden by blind review)`
        : decisionSentence(who, after.decision, after).replace(/\.$/, "");
    case "review.closed": return closedSentence(after.why).replace(/\.$/, "");
    case "model.promoted": return `${who} made ${after.active} the active model${before.active ? ` instead of ${before.active}` : ""}`;
    case "model.repredict_again": return `${who} ran ${after.model}'s re-prediction again for ${after.studies_left} studies`;
    case "mask.generated": return "A Canny mask was generated";
    case "study.frame_set":  // annotations.frame: the film check's sure correction, or a labeler's choice
      return after.source === "film_check" ? `The film check was sure: the film is read ${after.words}`
        : `${who} had the film read ${after.words}${before.words ? ` (was ${before.words})` : ""}`;
    case "membership.role_changed":
      return before.role ? `${who} changed ${after.user}'s role ${before.role} → ${after.role}` : `${who} added ${after.user} as ${after.role}`;
    case "membership.removed": return `${who} removed ${before.user} (${before.role})`;
    default: return null;
  }
}

/** "3 minutes ago"; the exact time is the element's title. */
function relative(iso) {
  const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
  const steps = [[60, "second", 1], [3600, "minute", 60], [86400, "hour", 3600], [2592000, "day", 86400], [Infinity, "month", 2592000]];
  const [, unit, size] = steps.find(([limit]) => Math.abs(seconds) < limit);
  return new Intl.RelativeTimeFormat(undefined, { numeric: "auto" }).format(-Math.round(seconds / size), unit);
}

export async function renderHistory(element, studyId, { newestFirst = false } = {}) {
  if (!element) return;
  let response;
  try {
    response = await fetch(`/api/studies/${studyId}/history/`, { credentials: "same-origin" });
  } catch {
    response = null;  // offline: keep what is shown, say why
  }
  if (!response || !response.ok) {
    element.replaceChildren();
    element.textContent = response ? `History unavailable (HTTP ${response.status}).` : "History unavailable: the server cannot be reached.";
    return;
  }
  const events = await response.json();
  if (newestFirst) events.reverse();
  element.replaceChildren();
  const list = document.createElement("ol");
  list.className = "history-timeline";
  for (const event of events) {
    const item = document.createElement("li");
    item.dataset.verb = event.verb;
    const when = document.createElement("time");
    when.dateTime = event.created_at;
    when.textContent = relative(event.created_at);
    when.title = new Date(event.created_at).toLocaleString();
    const said = sentence(event);
    if (said) {
      const line = document.createElement("div");
      line.className = "history-sentence";
      line.textContent = said;
      item.append(line, when);
    } else {
      const what = document.createElement("strong");
      what.textContent = `${VERBS[event.verb] || event.verb} `;
      const who = document.createElement("span");
      who.className = "muted";
      who.textContent = `by ${event.actor || "system"} `;
      const change = document.createElement("div");
      change.className = "history-change";
      change.textContent = event.before ? `${summarize(event.before)} → ${summarize(event.after)}` : summarize(event.after);
      item.append(what, who, when, change);
    }
    const details = document.createElement("details");  // the raw record (ids, checksums) stays one click away
    const summary = document.createElement("summary");
    summary.textContent = "details";
    const raw = document.createElement("pre");
    raw.textContent = JSON.stringify({ verb: event.verb, object: `${event.object_type}#${event.object_id}`,
                                       before: event.before, after: event.after }, null, 1);
    details.append(summary, raw);
    item.append(details);
    if (event.values_hidden) {
      const hidden = document.createElement("div");
      hidden.className = "history-hidden muted";
      hidden.textContent = "values hidden (blind review)";
      item.append(hidden);
    }
    list.append(item);
  }
  if (!events.length) list.textContent = "No history yet.";
  element.append(list);
}
