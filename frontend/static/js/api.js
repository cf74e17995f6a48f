// REST helpers: session auth + CSRF, JSON errors as {error, detail} (docs/architecture.md, API conventions).

export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

/** fetch wrapper → {ok, status, body}; never throws on HTTP errors (network errors become status 0). */
export async function api(path, { method = "GET", json, form, signal } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" }, signal };
  if (method !== "GET") init.headers["X-CSRFToken"] = csrfToken();
  if (json !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(json); }
  if (form) init.body = form;
  let response;
  try { response = await fetch(path, init); } catch (error) {
    if (error.name === "AbortError") throw error;
    return { ok: false, status: 0, body: { error: "network", detail: "The server cannot be reached." } };
  }
  const type = response.headers.get("Content-Type") || "";
  const body = type.includes("json") ? await response.json().catch(() => null) : null;
  return { ok: response.ok, status: response.status, body: body || {} };
}

/** One file per request with upload progress (fetch has none): resolves {status, body}. */
export function uploadFile(url, file, fields, onProgress) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    const form = new FormData();
    form.append("file", file, file.name);
    for (const [key, value] of Object.entries(fields || {})) if (value !== "" && value != null) form.append(key, value);
    xhr.open("POST", url);
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch { body = { detail: xhr.statusText }; }
      resolve({ status: xhr.status, body });
    };
    xhr.onerror = () => resolve({ status: 0, body: { error: "network", detail: "The upload was interrupted." } });
    xhr.send(form);
  });
}

export const fmt = {
  months(m) { return m == null ? "—" : `${(+m).toFixed(1)}`; },
  /** 131.5 → "10 y 11.5 m" */
  ym(m) {
    if (m == null) return "—";
    const years = Math.floor(m / 12), rest = m - years * 12;
    return `${years} y ${rest.toFixed(rest % 1 ? 1 : 0)} m`;
  },
  /** The server's interval (the project's one level, clipped to its age range): [30.2, 44.9], 0.9 → "90% interval 30.2–44.9" */
  interval(range, level) { return range ? `${Math.round(level * 100)}% interval ${range[0].toFixed(1)}–${range[1].toFixed(1)}` : ""; },
  when(iso) { return iso ? new Date(iso).toLocaleString([], { dateStyle: "short", timeStyle: "short" }) : ""; },
};

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) if (child != null) node.append(child.nodeType ? child : String(child));
  return node;
}

export function toast(message, kind = "info") {
  let box = document.getElementById("toasts");
  if (!box) { box = el("div", { id: "toasts", role: "status", "aria-live": "polite" }); document.body.append(box); }
  const item = el("div", { class: `toast ${kind}` }, message);
  box.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 8000 : 3500);
}

// Why "Next case" chose a study, said on the study page it opens (the response's strategy, rank and reason).
const CHOSEN_BECAUSE = {
  coreset: "the least like the studies already labelled, in the model's features",
  uncertainty: "the model is least sure of its reading",
  diverse: "the model is unsure and its age is unlike the labelled ones",
  random: "a random pick, so the labels stay a representative sample",
  oldest: "the oldest unlabelled study",
};
const INSTEAD_BECAUSE = {
  no_model: "the project has no model yet", not_scored_yet: "the model has not scored the studies yet",
  coreset_not_ranked: "core-set has not ranked this model's studies yet",
};

/** Go to the study "Next case" answered with, remembering (for this tab) why it was chosen. */
export function openNextCase(body) {
  sessionStorage.setItem(`chosen:${body.study}`, JSON.stringify({ strategy: body.strategy, rank: body.rank, reason: body.reason }));
  location.assign(body.study_url);
}

/** One sentence on why "Next case" opened this study, or null when it was opened another way. */
export function chosenBecause(studyId) {
  const chosen = JSON.parse(sessionStorage.getItem(`chosen:${studyId}`) || "null");
  if (!chosen) return null;
  const rank = chosen.rank ? ` (rank ${chosen.rank})` : "";
  const instead = INSTEAD_BECAUSE[chosen.reason] ? `, because ${INSTEAD_BECAUSE[chosen.reason]}` : "";
  return `Next case by ${chosen.strategy}${rank}${instead}: ${CHOSEN_BECAUSE[chosen.strategy] || "its score"}.`;
}

/** "Next case" that does not hand back what this labeler just passed over while other cases wait. */
export async function nextCaseUrl(projectId, leaving = null) {
  const key = `skipped:${projectId}`;
  const skipped = JSON.parse(sessionStorage.getItem(key) || "[]").filter((id) => id !== leaving);
  if (leaving != null) skipped.unshift(leaving);
  sessionStorage.setItem(key, JSON.stringify(skipped.slice(0, 20)));
  return api(`/api/projects/${projectId}/next-case/?skip=${skipped.slice(0, 20).join(",")}`);
}
