// A study's audit history as a timeline (GET /api/studies/{id}/history/): who, when, what, before → after.
//
//   import { renderHistory } from "/static/js/history.js";
//   renderHistory(document.querySelector("#history"), studyId);   // returns a Promise; call again to refresh
//   renderHistory(element, studyId, { newestFirst: true });        // the study page's side panel
//
// Self-contained: no other module needed; the list is read-only (the history is append-only). Values that blind
// review hides from this viewer come as null with `values_hidden`; the timeline says so instead of showing "—".

const VERBS = {
  "study.ingested": "ingested", "label.imported": "label imported", "label.saved": "label saved",
  "mask.saved": "mask saved", "review.queued": "queued for review", "review.claimed": "claimed for review",
  "review.released": "released", "review.blind_read": "blind reading entered", "review.resolved": "review decision",
  "review.dismissed": "review dismissed", "review.closed": "review item closed itself", "model.promoted": "model promoted",
  "mask.generated": "Canny mask generated",
};

function summarize(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value !== "object") return String(value);
  const keys = ["decision", "months", "source", "reason", "state", "why", "revision", "gold_label", "gold_mask", "active",
                "role", "user", "item"];
  const parts = keys.filter((k) => value[k] !== undefined && value[k] !== null && typeof value[k] !== "object")
    .map((k) => `${k} ${value[k]}`);
  if (value.label && typeof value.label === "object") parts.unshift(`label ${value.label.months ?? "hidden"} (${value.label.source})`);
  return parts.length ? parts.join(", ") : JSON.stringify(value).slice(0, 120);
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
    when.textContent = new Date(event.created_at).toLocaleString();
    const what = document.createElement("strong");
    what.textContent = ` ${VERBS[event.verb] || event.verb} `;
    const who = document.createElement("span");
    who.className = "muted";
    who.textContent = `by ${event.actor || "system"}`;
    const change = document.createElement("div");
    change.className = "history-change";
    change.textContent = event.before ? `${summarize(event.before)} → ${summarize(event.after)}` : summarize(event.after);
    item.append(when, what, who, change);
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
