// Panel 1, Draw: a large canvas (mouse, touch, pen through pointer events), MNIST-style preprocessing
// (bounding box scaled to fit 20x20, centre of mass moved to the centre of 28x28), and every chosen
// model's reconstruction updating live beside a per-pixel error map. Or pick a test digit.
import { h, imageCanvas, drawImages, signed, clamp01, fmt, P, SIDE } from '../render.js';
import { labelText, term } from '../words.js';

const PAD = 280;      // drawing canvas size in CSS pixels (and backing pixels)
const BRUSH = 19;     // stroke width in canvas pixels: about MNIST's pen at 28x28

export function initDraw(app) {
  const { lab, state, set, manifest } = app;
  const root = document.getElementById('panel-draw');
  const pad = h('canvas', { class: 'pad', width: PAD, height: PAD, 'aria-label': 'drawing area', 'data-testid': 'pad' });
  const inputView = imageCanvas(1, 1, 4, 'pix input');
  inputView.dataset.testid = 'input28';
  const status = h('span', { class: 'muted' }, 'Draw a digit with the mouse, a finger or a pen.');
  const rows = h('div', { class: 'recon-rows', 'data-testid': 'recons' });
  // Which of the 10,000 test images: a number, not the digit it shows (the status line names its label).
  const digitInput = h('input', { type: 'number', min: 0, max: 9999, value: Math.max(0, state.digit), 'aria-label': 'test image number' });

  let strokes = [];   // [[x, y], ...] per stroke
  let current = null;
  let pixels = new Float32Array(P);
  let inFlight = false, dirty = false, preprocessedAt = 0;
  // Latency, per request, from the oldest input change it serves: `latencies` from the pointer
  // handler's start to every reconstruction drawn (they show in the next frame); `breakdown` from the
  // event's own time stamp (which includes the browser's wait before dispatching it): [preprocessed,
  // worker replied, rows drawn, next frame started].
  let handlerAt = 0, eventAt = 0, pendingHandler = 0, pendingEvent = 0;
  const breakdown = [];
  app.metrics.drawBreakdown = breakdown;
  const latencies = [];
  app.metrics.drawLatencies = latencies;
  const figures = {};  // model name -> the core's figures of the current input, and the text shown
  app.metrics.drawFigures = figures;

  const addSelect = h('select', { 'aria-label': 'add a model' },
    h('option', { value: '' }, 'add a model…'),
    manifest.filter((m) => m.role === 'model').map((m) => h('option', { value: m.name }, `${m.title}, ${m.blurb} (${(m.bytes / 1e6).toFixed(1)} MB)`)));
  addSelect.addEventListener('change', () => {
    const name = addSelect.value;
    addSelect.value = '';
    if (name && !state.models.includes(name)) set({ models: [...state.models, name] });
  });

  root.append(
    h('div', { class: 'draw-layout' },
      h('div', { class: 'draw-left' },
        pad,
        h('div', { class: 'buttons' },
          h('button', { onclick: () => { strokes = []; redraw(); changed(); set({ digit: -1 }); }, 'data-testid': 'clear' }, 'Clear'),
          h('button', { onclick: () => { strokes.pop(); redraw(); changed(); } }, 'Undo')),
        h('div', { class: 'buttons' },
          h('button', { onclick: () => pickDigit(Math.floor(Math.random() * 10000)), 'data-testid': 'random-digit' }, 'Random test image')),
        h('div', { class: 'buttons' },
          h('label', {}, 'Test image # ', digitInput),
          h('button', { onclick: () => pickDigit(Number(digitInput.value)) }, 'Show')),
        status),
      h('div', { class: 'draw-right' },
        h('div', { class: 'input-box' }, h('div', { class: 'label' }, '28×28 input'), inputView,
          h('div', { class: 'muted small' }, 'fit to 20×20, centred by mass')),
        h('div', {},
          h('div', { class: 'recon-head' }, h('span', {}, 'model'), h('span', {}, 'output'), h('span', {}, 'error'), h('span', {}, term('bce'), ' · ', term('mse'), ' · time')),
          rows,
          addSelect))));

  // ---- drawing ----
  const g = pad.getContext('2d', { willReadFrequently: true });  // read back on every stroke: keep it on the CPU
  function redraw() {
    g.fillStyle = '#000';
    g.fillRect(0, 0, PAD, PAD);
    g.strokeStyle = '#fff';
    g.fillStyle = '#fff';
    g.lineWidth = BRUSH;
    g.lineCap = 'round';
    g.lineJoin = 'round';
    for (const s of strokes) {
      if (s.length === 1) { g.beginPath(); g.arc(s[0][0], s[0][1], BRUSH / 2, 0, 2 * Math.PI); g.fill(); continue; }
      g.beginPath();
      g.moveTo(s[0][0], s[0][1]);
      for (const [x, y] of s.slice(1)) g.lineTo(x, y);
      g.stroke();
    }
  }
  let padRect = null;  // measured once per stroke: reading it per move would force a layout each time
  function point(e) {
    const r = padRect || pad.getBoundingClientRect();
    return [((e.clientX - r.left) * PAD) / r.width, ((e.clientY - r.top) * PAD) / r.height];
  }
  pad.addEventListener('pointerdown', (e) => {
    handlerAt = performance.now();
    pad.setPointerCapture(e.pointerId);
    padRect = pad.getBoundingClientRect();
    eventAt = e.timeStamp;
    if (state.digit >= 0) { strokes = []; set({ digit: -1 }); }
    current = [point(e)];
    strokes.push(current);
    redraw();
    changed();
    e.preventDefault();
  });
  pad.addEventListener('pointermove', (e) => {
    if (!current) return;
    handlerAt = performance.now();
    eventAt = e.timeStamp;
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
    for (const ev of events.length ? events : [e]) current.push(point(ev));
    redraw();
    changed();
  });
  const end = () => { current = null; padRect = null; };
  pad.addEventListener('pointerup', end);
  pad.addEventListener('pointercancel', end);

  // ---- input to models ----
  function changed() {
    pixels = preprocess(g.getImageData(0, 0, PAD, PAD));
    setInput(pixels, { source: 'drawing' });
  }

  async function pickDigit(i) {
    if (!Number.isInteger(i) || i < 0 || i > 9999) return;
    let px, labels;
    try {
      ({ pixels: px, labels } = await lab.call('testDigits', { data: state.data, indices: [i] }));
      app.clearError('digit');
    } catch (e) { app.error(e, 'digit'); return; }
    digitInput.value = i;
    set({ digit: i });
    strokes = [];
    showDigitOnPad(px);
    setInput(px, { source: 'test', index: i, label: labels[0], data: state.data });
  }

  function showDigitOnPad(px) {
    const small = new ImageData(SIDE, SIDE);
    for (let p = 0; p < P; p++) {
      const v = Math.round(px[p] * 255);
      small.data.set([v, v, v, 255], p * 4);
    }
    const c = document.createElement('canvas');
    c.width = c.height = SIDE;
    c.getContext('2d').putImageData(small, 0, 0);
    g.imageSmoothingEnabled = false;
    g.drawImage(c, 0, 0, PAD, PAD);
  }

  function setInput(px, meta) {
    app.input = { pixels: px, ...meta };
    const now = performance.now();
    if (!pendingHandler) { pendingHandler = handlerAt || now; pendingEvent = eventAt || pendingHandler; }
    handlerAt = eventAt = 0;
    preprocessedAt = now;
    request();  // first, so the worker computes while this thread draws the rest
    drawImages(inputView, px, 1);
    app.setInput(px, meta);
    status.textContent = meta.source === 'test' ? `Test image #${meta.index}: ${labelText(meta.data, meta.label)}.` : 'Your drawing.';
    status.dataset.testid = 'draw-status';
  }

  // Coalesces requests: at most one in flight; the newest input goes next.
  async function request() {
    if (inFlight) { dirty = true; return; }
    inFlight = true;
    app.metrics.drawSettled = false;  // true again once the newest input's reconstructions are drawn
    const started = pendingHandler, startedEvent = pendingEvent;
    pendingHandler = pendingEvent = 0;
    const input = app.input.pixels;
    try {
      const names = state.models.filter((n) => app.loaded.has(n));
      const pre = preprocessedAt - startedEvent;
      const { results } = await lab.call('reconstructAll', { names, pixels: input });
      const replied = performance.now() - startedEvent;
      renderRows(input, results);
      app.clearError();
      latencies.push(performance.now() - started);
      const drawn = performance.now() - startedEvent;
      await new Promise((r) => requestAnimationFrame(r));
      breakdown.push([pre, replied, drawn, performance.now() - startedEvent]);
      if (breakdown.length > 500) breakdown.shift();
      if (latencies.length > 500) latencies.shift();
    } catch (e) {
      app.error(e);
    }
    inFlight = false;
    if (dirty) { dirty = false; request(); } else app.metrics.drawSettled = true;
  }

  const rowEls = new Map();
  function rowFor(name) {
    if (rowEls.has(name)) return rowEls.get(name);
    const meta = name === 'training' ? { title: 'Your model', blurb: 'from the Train panel' } : manifest.find((m) => m.name === name) || { title: name, kind: '?' };
    const recon = imageCanvas(1, 1, 3);
    const err = imageCanvas(1, 1, 3, 'pix err');
    const figs = h('span', { class: 'figs' }, '…');
    const remove = h('button', { class: 'icon', title: `remove ${meta.title}`, onclick: () => set({ models: state.models.filter((n) => n !== name) }) }, '×');
    const el = h('div', { class: 'recon-row', 'data-model': name },
      h('span', { class: 'model-name' }, h('b', {}, meta.title), h('br'), h('span', { class: 'muted small' }, meta.blurb || meta.kind)),
      recon, err, figs, remove);
    const row = { el, recon, err, figs, meta };
    rowEls.set(name, row);
    return row;
  }

  function renderRows(input, results) {
    // Rebuild the list only when the models change (a rebuild costs a layout of the page).
    const order = state.models.join(',');
    if (rows.dataset.order !== order) {
      rows.replaceChildren(...state.models.map((n) => rowFor(n).el));
      rows.dataset.order = order;
    }
    for (const name of state.models) {
      const row = rowFor(name);
      const r = results[name];
      if (!r) { row.figs.textContent = app.loaded.has(name) ? '' : 'loading…'; continue; }
      if (r.error) { row.figs.textContent = r.error; continue; }
      const rec = clamp01(r.recon);
      drawImages(row.recon, rec, 1);
      const diff = new Float32Array(P);
      for (let p = 0; p < P; p++) diff[p] = rec[p] - input[p];
      drawImages(row.err, diff, 1, signed);
      row.el.dataset.sum = rec.reduce((a, b) => a + b, 0).toFixed(3);
      // The core's figures for this image (z = posterior mean), as `latentlab eval` reports them: the
      // model's own BCE term (none for a model trained on MSE, such as the VQ-VAE) and the squared error
      // of its reconstruction; every loss term in the tooltip.
      row.figs.textContent = `${fmt(r.terms.bce, 1)} · ${fmt(r.mse, 1)} · ${r.ms < 0.1 ? '<0.1' : r.ms.toFixed(1)} ms`;
      row.figs.title = `${Object.entries(r.terms).map(([k, v]) => `${k} ${fmt(v, 2)}`).join(', ')}; loss ${fmt(r.loss, 2)}; squared error ${fmt(r.mse, 2)}`;
      figures[name] = { terms: r.terms, loss: r.loss, mse: r.mse, shown: row.figs.textContent };
    }
  }

  app.onModelsLoaded(() => request());
  // Another data set: the test image shown is that set's image of the same number, with its label.
  app.onChange((keys) => { if (keys.includes('data') && state.digit >= 0) pickDigit(state.digit); });
  redraw();
  if (state.digit >= 0) pickDigit(state.digit);
  else changed();
  return { refresh: request, pickDigit };
}

// MNIST's preprocessing of a drawing (LeCun et al.): the ink's bounding box scaled (aspect kept) so its
// longer side is 20 pixels, anti-aliased, then placed in 28x28 with its centre of mass at the centre.
export function preprocess(imageData) {
  const { width: W, height: H, data } = imageData;
  let x0 = W, y0 = H, x1 = -1, y1 = -1;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      if (data[(y * W + x) * 4] > 8) {
        if (x < x0) x0 = x; if (x > x1) x1 = x;
        if (y < y0) y0 = y; if (y > y1) y1 = y;
      }
    }
  }
  const out = new Float32Array(P);
  if (x1 < 0) return out;
  const bw = x1 - x0 + 1, bh = y1 - y0 + 1;
  const s = 20 / Math.max(bw, bh);
  const tw = Math.max(1, Math.round(bw * s)), th = Math.max(1, Math.round(bh * s));
  // Area-average downscale of the box into tw x th.
  const small = new Float32Array(tw * th);
  for (let ty = 0; ty < th; ty++) {
    const sy0 = y0 + (ty * bh) / th, sy1 = y0 + ((ty + 1) * bh) / th;
    for (let tx = 0; tx < tw; tx++) {
      const sx0 = x0 + (tx * bw) / tw, sx1 = x0 + ((tx + 1) * bw) / tw;
      let sum = 0, area = 0;
      for (let y = Math.floor(sy0); y < Math.ceil(sy1); y++) {
        const wy = Math.min(y + 1, sy1) - Math.max(y, sy0);
        for (let x = Math.floor(sx0); x < Math.ceil(sx1); x++) {
          const wx = Math.min(x + 1, sx1) - Math.max(x, sx0);
          sum += (data[(y * W + x) * 4] / 255) * wx * wy;
          area += wx * wy;
        }
      }
      small[ty * tw + tx] = area > 0 ? sum / area : 0;
    }
  }
  let mass = 0, mx = 0, my = 0;
  for (let y = 0; y < th; y++) for (let x = 0; x < tw; x++) { const v = small[y * tw + x]; mass += v; mx += v * x; my += v * y; }
  const cx = mass > 0 ? mx / mass : (tw - 1) / 2, cy = mass > 0 ? my / mass : (th - 1) / 2;
  const ox = Math.round(13.5 - cx), oy = Math.round(13.5 - cy);
  for (let y = 0; y < th; y++) {
    for (let x = 0; x < tw; x++) {
      const X = x + ox, Y = y + oy;
      if (X >= 0 && X < SIDE && Y >= 0 && Y < SIDE) out[Y * SIDE + X] = Math.min(1, small[y * tw + x]);
    }
  }
  return out;
}
