// The review queue's open count, kept live on any project page.
//
//   import { mountReviewCounter } from "/static/js/review-counter.js";
//   mountReviewCounter(document.querySelector("#review-count"), projectId, socket);
//
// `socket` (optional) is the page's open WebSocket to /ws/projects/{p}/. Without one, the counter listens
// for `window` CustomEvents named "boneage:event" whose `detail` is a live event message, so a page with
// its own socket dispatcher can forward them: window.dispatchEvent(new CustomEvent("boneage:event", {detail: msg})).
// Every review.* event carries `open_count`; the counter also fetches the count at start and whenever the socket
// (re)connects ("hello"), since events sent while it was down are lost.

export function mountReviewCounter(element, projectId, socket) {
  if (!element) return () => {};
  let events = 0;  // a count fetched before a newer event arrived is stale: drop it
  const show = (count) => {
    element.textContent = String(count);
    element.dataset.count = String(count);
    element.title = `${count} open review item${count === 1 ? "" : "s"}`;
    element.hidden = false;
  };
  const fetchCount = () => {
    const seen = events;
    fetch(`/api/projects/${projectId}/review-items/?limit=1`, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : null))
      .then((body) => body && seen === events && show(body.open_count))
      .catch(() => {});
  };
  fetchCount();
  const onEvent = (message) => {
    if (!message || typeof message.type !== "string") return;
    if (message.type === "hello") fetchCount();
    else if (message.type.startsWith("review.") && "open_count" in message) {
      events += 1;
      show(message.open_count);
    }
  };
  const onSocket = (event) => { try { onEvent(JSON.parse(event.data)); } catch { /* not JSON */ } };
  const onWindow = (event) => onEvent(event.detail);
  if (socket) socket.addEventListener("message", onSocket);
  window.addEventListener("boneage:event", onWindow);
  return () => {
    if (socket) socket.removeEventListener("message", onSocket);
    window.removeEventListener("boneage:event", onWindow);
  };
}
