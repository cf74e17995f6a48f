// Minimal PNG codec for what the platform serves: grayscale 8/16-bit decode (the full-resolution
// image, so window/level works on 16-bit values) and 1-bit grayscale encode (masks to save).
// zlib runs natively through (De)CompressionStream.

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

async function pipe(bytes, stream) {
  const out = await new Response(new Blob([bytes]).stream().pipeThrough(stream)).arrayBuffer();
  return new Uint8Array(out);
}

/** → {width, height, depth, data: Uint8Array | Uint16Array} for grayscale PNGs (color type 0), else null. */
export async function decodeGray(buffer) {
  const bytes = new Uint8Array(buffer), view = new DataView(buffer);
  if (!SIGNATURE.every((b, i) => bytes[i] === b)) return null;
  let offset = 8, width = 0, height = 0, depth = 0, color = 0, interlace = 0;
  const parts = [];
  while (offset < bytes.length) {
    const length = view.getUint32(offset), type = String.fromCharCode(...bytes.subarray(offset + 4, offset + 8));
    const body = bytes.subarray(offset + 8, offset + 8 + length);
    if (type === "IHDR") {
      width = view.getUint32(offset + 8); height = view.getUint32(offset + 12);
      depth = body[8]; color = body[9]; interlace = body[12];
    } else if (type === "IDAT") parts.push(body);
    else if (type === "IEND") break;
    offset += 12 + length;
  }
  if (color !== 0 || interlace !== 0 || (depth !== 8 && depth !== 16)) return null;
  const raw = await pipe(new Blob(parts), new DecompressionStream("deflate"));
  const bpp = depth / 8, stride = width * bpp;
  const out = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)], src = y * (stride + 1) + 1, row = y * stride, up = row - stride;
    for (let x = 0; x < stride; x++) {
      const a = x >= bpp ? out[row + x - bpp] : 0, b = y ? out[up + x] : 0, c = y && x >= bpp ? out[up + x - bpp] : 0;
      let v = raw[src + x];
      if (filter === 1) v += a;
      else if (filter === 2) v += b;
      else if (filter === 3) v += (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      out[row + x] = v;
    }
  }
  if (depth === 8) return { width, height, depth, data: out };
  const data = new Uint16Array(width * height);
  for (let i = 0, j = 0; i < data.length; i++, j += 2) data[i] = (out[j] << 8) | out[j + 1];
  return { width, height, depth, data };
}

const CRC_TABLE = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, body) {
  const out = new Uint8Array(12 + body.length), view = new DataView(out.buffer);
  view.setUint32(0, body.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(body, 8);
  view.setUint32(8 + body.length, crc32(out.subarray(4, 8 + body.length)));
  return out;
}

/** A binary mask (0/1 per pixel) → PNG Blob, 1-bit grayscale (decoders read it as 0/255). */
export async function encodeMask(mask, width, height) {
  const stride = (width + 7) >> 3, raw = new Uint8Array((stride + 1) * height), packed = new Uint8Array(stride);
  let previous = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {  // filter "Up" (2): a row like the previous one becomes zeros, cheap to deflate
    packed.fill(0);
    for (let x = 0, i = y * width; x < width; x++, i++) if (mask[i]) packed[x >> 3] |= 0x80 >> (x & 7);
    const row = y * (stride + 1);
    raw[row] = 2;
    for (let b = 0; b < stride; b++) raw[row + 1 + b] = (packed[b] - previous[b]) & 0xff;
    previous = packed.slice();
  }
  const header = new Uint8Array(13), view = new DataView(header.buffer);
  view.setUint32(0, width); view.setUint32(4, height); header[8] = 1; header[9] = 0;
  const idat = await pipe(raw, new CompressionStream("deflate"));
  return new Blob([new Uint8Array(SIGNATURE), chunk("IHDR", header), chunk("IDAT", idat), chunk("IEND", new Uint8Array())],
                  { type: "image/png" });
}
