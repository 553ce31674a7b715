// Small drawing helpers shared by the panels: images to canvases, the code palette, DOM building.
export const SIDE = 28;
export const P = SIDE * SIDE;

// h('div', {class: 'x', onclick: fn}, child, 'text', ...) -> element
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'style') el.style.cssText = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

// A canvas showing `count` images of SIDE x SIDE values in [0, 1] (white ink on black, like MNIST),
// laid out in `cols` columns, each pixel drawn `scale` x `scale`.
export function imageCanvas(cols, rows, scale, className = 'pix') {
  const c = h('canvas', { class: className, width: cols * SIDE, height: rows * SIDE });
  c.style.width = `${cols * SIDE * scale}px`;
  c.style.height = `${rows * SIDE * scale}px`;
  return c;
}

// Draws images [n * P] into the canvas's grid cells, in rows of `cols`. map(v) -> [r, g, b].
export function drawImages(canvas, images, cols, map = grey) {
  const ctx = canvas.getContext('2d');
  const n = Math.floor(images.length / P);
  const rows = Math.ceil(n / cols);
  if (canvas.width !== cols * SIDE || canvas.height !== rows * SIDE) {
    canvas.width = cols * SIDE;
    canvas.height = rows * SIDE;
  }
  const img = ctx.createImageData(cols * SIDE, rows * SIDE);
  for (let i = 0; i < n; i++) {
    const ox = (i % cols) * SIDE, oy = Math.floor(i / cols) * SIDE;
    for (let y = 0; y < SIDE; y++) {
      for (let x = 0; x < SIDE; x++) {
        const [r, g, b] = map(images[i * P + y * SIDE + x]);
        const o = ((oy + y) * cols * SIDE + ox + x) * 4;
        img.data[o] = r; img.data[o + 1] = g; img.data[o + 2] = b; img.data[o + 3] = 255;
      }
    }
  }
  ctx.putImageData(img, 0, 0);
}

export function grey(v) {
  const g = Math.max(0, Math.min(255, Math.round(v * 255)));
  return [g, g, g];
}

// Signed error (reconstruction - input): red where the model adds ink, blue where it misses ink.
export function signed(v) {
  const a = Math.min(1, Math.abs(v));
  const base = 255 * (1 - a);
  return v > 0 ? [255, base, base] : [base, base, 255];
}

// Clamps model outputs to [0, 1] (the VQ-VAE's MSE decoder is unbounded).
export function clamp01(values) {
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = Math.max(0, Math.min(1, values[i]));
  return out;
}

// A distinct colour for each of K codes (golden-angle hues, alternating lightness), as [r, g, b]
// (codeRgb, cached) or a CSS string (codeColour).
const rgbCache = [];
export function codeRgb(k) {
  if (rgbCache[k]) return rgbCache[k];
  const hue = (k * 137.508) % 360, s = 0.7, l = k % 2 ? 0.58 : 0.42;
  const f = (n) => {
    const kk = (n + hue / 30) % 12;
    return Math.round(255 * (l - s * Math.min(l, 1 - l) * Math.max(-1, Math.min(kk - 3, 9 - kk, 1))));
  };
  return (rgbCache[k] = [f(0), f(8), f(4)]);
}
export function codeColour(k) {
  const [r, g, b] = codeRgb(k);
  return `rgb(${r} ${g} ${b})`;
}

// Numbers with thousands separators; one formatter (creating one per call is slow).
const numberFormat = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
export const thousands = (v) => numberFormat.format(v);

// Ten digit colours (Tableau 10), for the latent scatter.
export const DIGIT_COLOURS = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#79706e'];

export function fmt(v, digits = 2) {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  return a >= 1000 ? v.toFixed(0) : a >= 100 ? v.toFixed(1) : v.toFixed(digits);
}
