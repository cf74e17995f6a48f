// One websocket per project page (docs/architecture.md, Live events) with reconnect + backoff and a visible state.

export function connectLive(projectId, { onEvent, onReconnect } = {}) {
  const badge = document.getElementById("live-state");
  if (badge) badge.hidden = false;  // hidden on the pages that open no socket (members, settings)
  const listeners = new Map();
  let socket, attempt = 0, closedByUs = false, everOpened = false, lastSeq = null, refreshing = 0;
  // Every project event carries seq, one more than the project's previous event: a gap means this page missed some
  // (the server's channel layer drops what a slow consumer leaves unread), so it reloads what it shows.
  function refresh() {
    clearTimeout(refreshing);
    refreshing = setTimeout(() => { if (onReconnect) onReconnect(); }, 200);
  }

  function show(state, text) {
    if (!badge) return;
    badge.dataset.state = state;
    badge.textContent = text;
  }

  function open() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/ws/projects/${projectId}/`);
    socket.onmessage = (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch { return; }
      event.received_at = Date.now();
      if (event.type === "hello") {
        attempt = 0;
        show("live", "live");
        if (everOpened) refresh();  // we may have missed events while away
        everOpened = true;
        lastSeq = typeof event.seq === "number" ? event.seq : null;
      } else if (typeof event.seq === "number") {
        if (lastSeq !== null && event.seq > lastSeq + 1) { live.gaps += 1; refresh(); }
        lastSeq = lastSeq === null ? event.seq : Math.max(lastSeq, event.seq);
      }
      if (event.type === "access.changed") { location.reload(); return; }  // the page's controls follow the role
      if (onEvent) onEvent(event);
      for (const fn of listeners.get(event.type) || []) fn(event);
      for (const fn of listeners.get("*") || []) fn(event);
      document.dispatchEvent(new CustomEvent("live:event", { detail: event }));
      window.dispatchEvent(new CustomEvent("boneage:event", { detail: event }));  // e.g. the header's review counter
    };
    socket.onclose = (close) => {
      if (closedByUs) return;
      if (close.code === 4401 || close.code === 4404) { show("reconnecting", "offline (no access to this project)"); return; }
      const delay = Math.min(15000, 500 * 2 ** attempt) * (0.75 + Math.random() / 2);
      attempt += 1;
      show("reconnecting", `reconnecting in ${Math.ceil(delay / 1000)} s…`);
      setTimeout(open, delay);
    };
  }

  open();
  window.addEventListener("online", () => { if (socket.readyState === WebSocket.CLOSED) { attempt = 0; open(); } });
  const live = {
    gaps: 0,  // how many times a gap in seq made the page reload (the browser tests read it)
    on(type, fn) { if (!listeners.has(type)) listeners.set(type, []); listeners.get(type).push(fn); return live; },
    get connected() { return socket && socket.readyState === WebSocket.OPEN; },
    close() { closedByUs = true; socket.close(); },
  };
  window.__live = live;  // for the browser tests and the benchmarks
  return live;
}
