// Mask editor on the viewer: brush, eraser, lasso add/subtract, fill holes, reset, undo/redo.
// The mask is one byte per image pixel; each operation keeps only its bounding box (before/after)
// in the history, so hundreds of steps fit. Painting is batched per animation frame.

const HISTORY = 100;
const COLORS = { edit: [34, 211, 238], canny: [245, 158, 11], model: [167, 139, 250] };

export async function loadMaskPixels(url, width, height) {
  const image = new Image();
  image.src = url;
  await image.decode();
  const canvas = new OffscreenCanvas(width, height), ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(image, 0, 0, width, height);
  const rgba = ctx.getImageData(0, 0, width, height).data, mask = new Uint8Array(width * height);
  for (let i = 0; i < mask.length; i++) mask[i] = rgba[i * 4] >= 128 ? 1 : 0;
  return mask;
}

/** A read-only tinted overlay (Canny or model mask) at the PNG's own resolution. */
export async function tintedOverlay(url, kind) {
  const image = new Image();
  image.src = url;
  await image.decode();
  const canvas = document.createElement("canvas");
  canvas.width = image.naturalWidth; canvas.height = image.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(image, 0, 0);
  const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height), d = pixels.data, [r, g, b] = COLORS[kind];
  for (let i = 0; i < d.length; i += 4) { const on = d[i] >= 128; d[i] = r; d[i + 1] = g; d[i + 2] = b; d[i + 3] = on ? 255 : 0; }
  ctx.putImageData(pixels, 0, 0);
  canvas.dataset.overlay = kind;
  return canvas;
}

export class MaskEditor {
  constructor(viewer, { width, height }) {
    Object.assign(this, { viewer, width, height });
    this.mask = new Uint8Array(width * height);
    this.committed = new Uint8Array(width * height);  // the mask before the running operation
    this.undoStack = []; this.redoStack = [];
    this.tool = "pan"; this.radius = 24; this.listeners = new Set();
    this.canvas = document.createElement("canvas");
    this.canvas.width = width; this.canvas.height = height;
    this.ctx = this.canvas.getContext("2d");
    this.pixels = this.ctx.createImageData(width, height);
    this.words = new Uint32Array(this.pixels.data.buffer);
    const [r, g, b] = COLORS.edit;
    this.on = (255 << 24) | (b << 16) | (g << 8) | r;  // little-endian RGBA
    viewer.addLayer(this.canvas, "mask-layer");
    this.cursor = document.createElement("div");
    this.cursor.className = "brush-cursor";
    viewer.addLayer(this.cursor);
    this.lassoSvg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    this.lassoSvg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    this.lassoPath = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    this.lassoSvg.append(this.lassoPath);
    viewer.addLayer(this.lassoSvg, "lasso-layer");
    this.queue = []; this.frames = 0;
    this.stroke = null;
    this.setTool("pan");
  }

  onChange(fn) { this.listeners.add(fn); }
  emit(reason) { for (const fn of this.listeners) fn(reason, this); }

  get canUndo() { return this.undoStack.length > 0; }
  get canRedo() { return this.redoStack.length > 0; }
  get area() { let n = 0; for (let i = 0; i < this.mask.length; i++) n += this.mask[i]; return n / this.mask.length; }

  setTool(tool) {
    this.tool = tool;
    this.viewer.tool = tool === "pan" ? null : this;
    this.viewer.root.dataset.mode = tool;
    this.cursor.hidden = !(tool === "brush" || tool === "eraser");
    this.emit("tool");
  }
  setRadius(radius) { this.radius = Math.max(1, Math.min(400, Math.round(radius))); this.updateCursor(); this.emit("radius"); }

  /** Replace the whole mask (load a revision, reset to Canny/model, restore a draft). */
  replace(mask, { record = true, label = "replace" } = {}) {
    if (record) this.record(mask, label);
    else { this.mask.set(mask); this.committed.set(mask); this.undoStack = []; this.redoStack = []; }
    this.redraw(0, 0, this.width, this.height);
    this.emit(record ? "edit" : "load");
  }

  /** Record an operation that turns the current mask into `next` (whole-image diff, cropped to its bbox). */
  record(next, label) {
    let x0 = this.width, y0 = this.height, x1 = -1, y1 = -1;
    const w = this.width;
    for (let i = 0; i < next.length; i++) {
      if (next[i] !== this.mask[i]) {
        const x = i % w, y = (i - x) / w;
        if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
      }
    }
    this.mask.set(next);
    if (x1 < 0) { this.committed.set(next); return false; }
    this.pushHistory(label, x0, y0, x1 + 1, y1 + 1);
    return true;
  }

  crop(source, x0, y0, x1, y1) {
    const out = new Uint8Array((x1 - x0) * (y1 - y0));
    for (let y = y0; y < y1; y++) out.set(source.subarray(y * this.width + x0, y * this.width + x1), (y - y0) * (x1 - x0));
    return out;
  }
  paste(target, data, x0, y0, x1, y1) {
    for (let y = y0; y < y1; y++) target.set(data.subarray((y - y0) * (x1 - x0), (y - y0 + 1) * (x1 - x0)), y * this.width + x0);
  }

  pushHistory(label, x0, y0, x1, y1) {
    const box = [x0, y0, x1, y1];
    this.undoStack.push({ label, box, before: this.crop(this.committed, ...box), after: this.crop(this.mask, ...box) });
    if (this.undoStack.length > HISTORY) this.undoStack.shift();
    this.redoStack = [];
    this.paste(this.committed, this.crop(this.mask, ...box), ...box);
  }

  undo() { this.step(this.undoStack, this.redoStack, "before"); }
  redo() { this.step(this.redoStack, this.undoStack, "after"); }
  step(from, to, side) {
    const op = from.pop();
    if (!op) return;
    this.paste(this.mask, op[side], ...op.box);
    this.paste(this.committed, op[side], ...op.box);
    to.push(op);
    this.redraw(...op.box);
    this.emit("edit");
  }

  redraw(x0, y0, x1, y1) {
    const { mask, words, width, on } = this;
    for (let y = y0; y < y1; y++) for (let i = y * width + x0, end = y * width + x1; i < end; i++) words[i] = mask[i] ? on : 0;
    this.ctx.putImageData(this.pixels, 0, 0, x0, y0, x1 - x0, y1 - y0);
  }

  // --- pointer tool interface used by the viewer ---------------------------------------------------
  down(p) {
    if (this.tool === "brush" || this.tool === "eraser") {
      this.stroke = { value: this.tool === "brush" ? 1 : 0, last: p, box: [this.width, this.height, 0, 0] };
      this.queue.push(p);
      this.schedule();
    } else if (this.tool.startsWith("lasso")) {
      this.stroke = { points: [p] };
      this.lassoSvg.dataset.mode = this.tool;
      this.lassoPath.setAttribute("points", `${p.x},${p.y}`);
    }
  }
  move(p) {
    if (!this.stroke) return;
    if (this.stroke.points) {
      this.stroke.points.push(p);
      if (!this.lassoFrame) this.lassoFrame = requestAnimationFrame(() => {
        this.lassoFrame = 0;
        if (this.stroke && this.stroke.points) this.lassoPath.setAttribute("points", this.stroke.points.map((q) => `${q.x},${q.y}`).join(" "));
      });
    } else { this.queue.push(p); this.schedule(); }
  }
  up() {
    const stroke = this.stroke;
    if (!stroke) return;
    if (stroke.points) {
      this.stroke = null;
      this.lassoPath.setAttribute("points", "");
      if (stroke.points.length > 2) this.fillPolygon(stroke.points, this.tool === "lasso-add" ? 1 : 0);
      return;
    }
    this.flush();
    this.stroke = null;
    const [x0, y0, x1, y1] = stroke.box;
    if (x1 > x0) { this.pushHistory(stroke.value ? "brush" : "eraser", x0, y0, x1, y1); this.emit("edit"); }
  }
  hover(p) { this.hoverPoint = p; this.updateCursor(); }

  updateCursor() {
    const p = this.hoverPoint;
    if (!p) return;
    Object.assign(this.cursor.style, { left: `${p.x - this.radius}px`, top: `${p.y - this.radius}px`,
                                       width: `${2 * this.radius}px`, height: `${2 * this.radius}px` });
  }

  schedule() { if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.flush(); }); }

  flush() {
    const stroke = this.stroke;
    if (!stroke || !this.queue.length) return;
    const r = this.radius, box = [this.width, this.height, 0, 0];
    for (const p of this.queue) {  // stamp discs along the segment from the previous point
      const dx = p.x - stroke.last.x, dy = p.y - stroke.last.y, n = Math.max(1, Math.ceil(Math.hypot(dx, dy) / Math.max(1, r / 3)));
      for (let k = 1; k <= n; k++) this.stamp(stroke.last.x + (dx * k) / n, stroke.last.y + (dy * k) / n, r, stroke.value, box);
      if (stroke.last === p) this.stamp(p.x, p.y, r, stroke.value, box);
      stroke.last = p;
    }
    this.queue = [];
    if (box[2] > box[0]) {
      this.redraw(...box);
      stroke.box = [Math.min(stroke.box[0], box[0]), Math.min(stroke.box[1], box[1]), Math.max(stroke.box[2], box[2]), Math.max(stroke.box[3], box[3])];
    }
    this.frames += 1;
  }

  stamp(cx, cy, r, value, box) {
    const y0 = Math.max(0, Math.floor(cy - r)), y1 = Math.min(this.height - 1, Math.ceil(cy + r));
    for (let y = y0; y <= y1; y++) {
      const half = Math.sqrt(Math.max(0, r * r - (y + 0.5 - cy) ** 2));
      const x0 = Math.max(0, Math.round(cx - half)), x1 = Math.min(this.width, Math.round(cx + half));
      if (x1 <= x0) continue;
      this.mask.fill(value, y * this.width + x0, y * this.width + x1);
      if (x0 < box[0]) box[0] = x0; if (x1 > box[2]) box[2] = x1;
      if (y < box[1]) box[1] = y; if (y + 1 > box[3]) box[3] = y + 1;
    }
  }

  fillPolygon(points, value) {
    const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
    const x0 = Math.max(0, Math.floor(Math.min(...xs))), y0 = Math.max(0, Math.floor(Math.min(...ys)));
    const x1 = Math.min(this.width, Math.ceil(Math.max(...xs)) + 1), y1 = Math.min(this.height, Math.ceil(Math.max(...ys)) + 1);
    if (x1 <= x0 || y1 <= y0) return;
    const canvas = new OffscreenCanvas(x1 - x0, y1 - y0), ctx = canvas.getContext("2d");
    ctx.beginPath();
    points.forEach((p, i) => (i ? ctx.lineTo(p.x - x0, p.y - y0) : ctx.moveTo(p.x - x0, p.y - y0)));
    ctx.closePath(); ctx.fill();
    const alpha = ctx.getImageData(0, 0, x1 - x0, y1 - y0).data;
    for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) {
      if (alpha[((y - y0) * (x1 - x0) + (x - x0)) * 4 + 3] >= 128) this.mask[y * this.width + x] = value;
    }
    this.pushHistory(value ? "lasso add" : "lasso subtract", x0, y0, x1, y1);
    this.redraw(x0, y0, x1, y1);
    this.emit("edit");
  }

  /** Background = zero pixels connected to the border; every other zero pixel is a hole: fill it. */
  fillHoles() {
    const { width: w, height: h, mask } = this, outside = new Uint8Array(w * h), stack = new Int32Array(w * h);
    let top = 0;
    const seed = (i) => { if (!mask[i] && !outside[i]) { outside[i] = 1; stack[top++] = i; } };
    for (let x = 0; x < w; x++) { seed(x); seed((h - 1) * w + x); }
    for (let y = 0; y < h; y++) { seed(y * w); seed(y * w + w - 1); }
    while (top) {
      const i = stack[--top], x = i % w;
      if (x > 0) seed(i - 1); if (x < w - 1) seed(i + 1);
      if (i >= w) seed(i - w); if (i < w * (h - 1)) seed(i + w);
    }
    const next = new Uint8Array(w * h);
    for (let i = 0; i < next.length; i++) next[i] = outside[i] ? 0 : 1;
    const changed = this.record(next, "fill holes");
    if (changed) { this.redraw(0, 0, w, h); this.emit("edit"); }
    return changed;
  }
}
