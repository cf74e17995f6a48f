// Radiograph viewer: wheel zoom, drag pan, fit, window/level (right drag or Shift+drag, presets),
// invert. Shows the display PNG first and fetches the full 16-bit image only once you zoom past it.
// Layers (masks, heatmaps) live in one "stage" in image pixel coordinates, moved by a CSS transform.
import { decodeGray } from "./png.js";

export const WL_PRESETS = {
  full: { center: 0.5, width: 1.0, label: "Full range" },
  bone: { center: 0.62, width: 0.55, label: "Bone" },
  physes: { center: 0.7, width: 0.35, label: "Physes (narrow)" },
  soft: { center: 0.3, width: 0.6, label: "Soft tissue" },
};

export class Viewer {
  constructor(root, { width, height, displayUrl, fullUrl }) {
    Object.assign(this, { root, width, height, displayUrl, fullUrl });
    this.scale = 1; this.tx = 0; this.ty = 0;
    this.wl = { ...WL_PRESETS.full }; this.invert = false;
    this.tool = null;  // {down(p, e), move(p, e), up(p, e), cursor} from the mask editor
    this.listeners = new Set();
    this.source = null;  // {width, height, data, depth}: pixels behind window/level
    this.resolution = "none";
    this.stage = document.createElement("div");
    this.stage.className = "stage";
    Object.assign(this.stage.style, { width: `${width}px`, height: `${height}px` });
    this.canvas = document.createElement("canvas");
    this.canvas.className = "layer image-layer";
    this.stage.append(this.canvas);
    root.append(this.stage);
    this.bind();
    new ResizeObserver(() => { if (this.fitted) this.fit(); }).observe(root);
  }

  onChange(fn) { this.listeners.add(fn); }
  emit() { for (const fn of this.listeners) fn(this); }

  addLayer(node, className = "") {
    node.classList.add("layer");
    if (className) node.classList.add(className);
    this.stage.append(node);
    return node;
  }

  async load() {
    const image = new Image();
    image.decoding = "async";
    image.src = this.displayUrl;
    await image.decode();
    this.canvas.width = image.naturalWidth; this.canvas.height = image.naturalHeight;
    this.canvas.getContext("2d").drawImage(image, 0, 0);
    this.resolution = "display";
    this.fit();
    requestAnimationFrame(() => {
      performance.mark("first-image");
      this.root.dataset.firstImage = "shown";
    });
    this.emit();
  }

  sourcePixels() {
    if (!this.source) {  // the 8-bit display pixels, read back once
      const { width, height } = this.canvas;
      const rgba = this.canvas.getContext("2d").getImageData(0, 0, width, height).data;
      const data = new Uint8Array(width * height);
      for (let i = 0; i < data.length; i++) data[i] = rgba[i * 4];
      this.source = { width, height, depth: 8, data };
    }
    return this.source;
  }

  async loadFull() {
    if (this.fullPromise) return this.fullPromise;
    this.root.dataset.full = "loading";
    this.fullPromise = (async () => {
      const response = await fetch(this.fullUrl, { credentials: "same-origin" });
      const decoded = response.ok ? await decodeGray(await response.arrayBuffer()) : null;
      if (!decoded) { this.root.dataset.full = "unavailable"; return; }
      this.source = decoded;
      this.canvas.width = decoded.width; this.canvas.height = decoded.height;
      this.resolution = "full";
      this.render();
      this.root.dataset.full = "shown";
      this.emit();
    })();
    return this.fullPromise;
  }

  /** Apply window/level and invert through a lookup table. */
  render() {
    if (this.pending) return;
    this.pending = requestAnimationFrame(() => {
      this.pending = 0;
      const src = this.sourcePixels(), levels = src.depth === 16 ? 65536 : 256;
      const lut = new Uint32Array(levels), low = this.wl.center - this.wl.width / 2;
      for (let v = 0; v < levels; v++) {
        let g = Math.round(Math.min(1, Math.max(0, (v / (levels - 1) - low) / this.wl.width)) * 255);
        if (this.invert) g = 255 - g;
        lut[v] = 0xff000000 | (g << 16) | (g << 8) | g;
      }
      const image = new ImageData(src.width, src.height), out = new Uint32Array(image.data.buffer), data = src.data;
      for (let i = 0; i < data.length; i++) out[i] = lut[data[i]];
      this.canvas.getContext("2d").putImageData(image, 0, 0);
    });
  }

  setWindow(center, width) {
    this.wl = { center: Math.min(1.2, Math.max(-0.2, center)), width: Math.min(2, Math.max(0.02, width)) };
    this.render(); this.emit();
  }
  preset(name) { const p = WL_PRESETS[name]; if (p) this.setWindow(p.center, p.width); }
  toggleInvert() { this.invert = !this.invert; this.render(); this.emit(); }

  apply() {
    this.stage.style.transform = `translate(${this.tx}px, ${this.ty}px) scale(${this.scale})`;
    const pixel = this.scale * this.width / this.canvas.width;  // screen px per source px
    this.stage.classList.toggle("pixelated", pixel > 3);
    if (this.resolution === "display" && pixel > 1.05 && this.fullUrl && this.canvas.width < this.width) this.loadFull();
    this.emit();
  }

  fit() {
    const { clientWidth: w, clientHeight: h } = this.root;
    this.scale = Math.min(w / this.width, h / this.height) * 0.98;
    this.tx = (w - this.width * this.scale) / 2; this.ty = (h - this.height * this.scale) / 2;
    this.fitted = true;
    this.apply();
  }

  zoomAt(factor, clientX, clientY) {
    const rect = this.root.getBoundingClientRect();
    const cx = clientX == null ? rect.width / 2 : clientX - rect.left, cy = clientY == null ? rect.height / 2 : clientY - rect.top;
    const scale = Math.min(32, Math.max(0.02, this.scale * factor));
    this.tx = cx - (cx - this.tx) * (scale / this.scale); this.ty = cy - (cy - this.ty) * (scale / this.scale);
    this.scale = scale; this.fitted = false;
    this.apply();
  }

  actualSize() { this.zoomAt(1 / this.scale); }

  toImage(clientX, clientY) {
    const rect = this.root.getBoundingClientRect();
    return { x: (clientX - rect.left - this.tx) / this.scale, y: (clientY - rect.top - this.ty) / this.scale };
  }

  bind() {
    const root = this.root;
    let drag = null;
    root.addEventListener("wheel", (e) => {
      e.preventDefault();
      this.zoomAt(Math.exp(-e.deltaY * (e.deltaMode ? 0.05 : 0.0015)), e.clientX, e.clientY);
    }, { passive: false });
    root.addEventListener("contextmenu", (e) => e.preventDefault());
    root.addEventListener("pointerdown", (e) => {
      root.focus({ preventScroll: true });
      const mode = e.button === 2 || (e.button === 0 && e.shiftKey) ? "window"
        : e.button === 1 || this.spaceDown || !this.tool ? "pan" : "tool";
      drag = { mode, x: e.clientX, y: e.clientY, tx: this.tx, ty: this.ty, wl: { ...this.wl } };
      root.setPointerCapture(e.pointerId);
      root.dataset.drag = mode;
      if (mode === "tool") this.tool.down(this.toImage(e.clientX, e.clientY), e);
    });
    root.addEventListener("pointermove", (e) => {
      if (this.tool && this.tool.hover) this.tool.hover(this.toImage(e.clientX, e.clientY), e);
      if (!drag) return;
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (drag.mode === "pan") { this.tx = drag.tx + dx; this.ty = drag.ty + dy; this.fitted = false; this.apply(); }
      else if (drag.mode === "window") this.setWindow(drag.wl.center - dy / 400, drag.wl.width + dx / 400);
      else {
        const points = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
        for (const p of points.length ? points : [e]) this.tool.move(this.toImage(p.clientX, p.clientY), e);
      }
    });
    const end = (e) => {
      if (!drag) return;
      if (drag.mode === "tool") this.tool.up(this.toImage(e.clientX, e.clientY), e);
      drag = null; delete root.dataset.drag;
    };
    root.addEventListener("pointerup", end);
    root.addEventListener("pointercancel", end);
    window.addEventListener("keydown", (e) => { if (e.code === "Space" && e.target === root) { this.spaceDown = true; e.preventDefault(); } });
    window.addEventListener("keyup", (e) => { if (e.code === "Space") this.spaceDown = false; });
  }
}
