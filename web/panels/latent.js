// Panel 2, Latent space: the test set encoded by a 2-D-latent model as a scatter coloured by digit
// (uPlot), the drawn digit's posterior mean and spread on it, and the decoded manifold grid over the
// same square. Hovering or clicking the scatter or the grid decodes that point.
import { h, imageCanvas, drawImages, clamp01, DIGIT_COLOURS, fmt } from '../render.js';
import { className, itemsWord } from '../words.js';

export function initLatent(app) {
  const { lab, state, set } = app;
  const root = document.getElementById('panel-latent');
  const chartBox = h('div', { class: 'scatter', 'data-testid': 'scatter' });
  const manifold = imageCanvas(state.grid, state.grid, 1, 'pix manifold');
  manifold.dataset.testid = 'manifold';
  const preview = imageCanvas(1, 1, 4, 'pix');
  const where = h('div', { class: 'muted small' }, 'hover the plane');
  const modelSelect = h('select', { 'aria-label': 'latent model' },
    h('option', { value: 'vae_2d' }, 'VAE, 2-D latent'), h('option', { value: 'ae_2d' }, 'Plain AE, 2-D code'));
  modelSelect.value = state.latent;
  modelSelect.addEventListener('change', () => set({ latent: modelSelect.value }));
  const gridInput = h('input', { type: 'range', min: 5, max: 25, value: state.grid, 'aria-label': 'manifold grid size' });
  gridInput.addEventListener('change', () => set({ grid: Number(gridInput.value) }));
  const note = h('div', { class: 'muted small' });

  root.append(h('div', { class: 'row wrap' },
    // The scatter's column no wider than the chart, so the decoded plane and the decoded point fit beside it.
    h('div', { class: 'latent-main' }, h('div', { class: 'controls' }, h('label', {}, 'Model ', modelSelect), h('label', {}, 'Grid ', gridInput)), chartBox, note),
    h('div', {}, h('div', { class: 'label' }, 'decoded plane'), manifold),
    h('div', { class: 'preview' }, h('div', { class: 'label' }, 'decoded point'), preview, where)));

  let plot = null, overlay = null;
  let range = [-3, 3];
  let posterior = null;  // {mean: [x, y], sd: [sx, sy] | null}
  let pending = 0;

  async function build() {
    const name = state.latent;
    const token = ++pending;
    note.textContent = 'encoding the test set…';
    await app.ensureModel(name);
    const { codes, labels } = await lab.call('scatter', { name, data: state.data, count: 10000 });
    if (token !== pending) return;
    // A square range covering the central 99% of the codes (the VAE's is about ±3 by its prior).
    const xs = [], ys = [];
    for (let i = 0; i < labels.length; i++) { xs.push(codes[2 * i]); ys.push(codes[2 * i + 1]); }
    const q = (a, p) => { const s = [...a].sort((u, v) => u - v); return s[Math.floor(p * (s.length - 1))]; };
    const lo = Math.min(q(xs, 0.005), q(ys, 0.005)), hi = Math.max(q(xs, 0.995), q(ys, 0.995));
    const pad = 0.05 * (hi - lo);
    range = [lo - pad, hi + pad];
    // uPlot wants ascending x shared by all series: one series per digit, null elsewhere.
    const order = xs.map((_, i) => i).sort((a, b) => xs[a] - xs[b]);
    const data = [order.map((i) => xs[i])];
    for (let d = 0; d < 10; d++) data.push(order.map((i) => (labels[i] === d ? ys[i] : null)));
    const width = Math.min(460, chartBox.parentElement.clientWidth || 460);
    const opts = {
      width, height: width, mode: 1,
      scales: { x: { time: false, range: () => range }, y: { range: () => range } },
      axes: [{ label: 'z₁', stroke: '#555' }, { label: 'z₂', stroke: '#555' }],
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false, setScale: false }, points: { show: false } },
      series: [{ label: 'z₁' }, ...DIGIT_COLOURS.map((c, d) => ({
        label: className(state.data, d), stroke: c, fill: c, paths: () => null, spanGaps: false,
        points: { show: true, size: 2.5, width: 0, stroke: c, fill: c },
      }))],
      hooks: {
        draw: [() => drawPosterior()],
        setCursor: [(u) => { if (u.cursor.left >= 0) hover(u.posToVal(u.cursor.left, 'x'), u.posToVal(u.cursor.top, 'y')); }],
      },
    };
    if (plot) plot.destroy();
    chartBox.replaceChildren();
    plot = new window.uPlot(opts, data, chartBox);
    // The posterior marker lives on its own canvas over the plot, so moving it never redraws 10,000 points.
    overlay = h('canvas', { class: 'overlay' });
    overlay.style.cssText = 'position:absolute;left:0;top:0;pointer-events:none';
    plot.over.append(overlay);
    plot.over.addEventListener('click', () => {
      const u = plot;
      hover(u.posToVal(u.cursor.left, 'x'), u.posToVal(u.cursor.top, 'y'), true);
    });
    note.textContent = `${labels.length.toLocaleString()} test ${itemsWord(state.data)} · ${name === 'vae_2d' ? 'VAE: codes crowd around 0 as N(0, I) asks, and the plane has no holes' : 'AE: clusters sprawl and the space between them decodes to blurs'}`;
    app.metrics.scatterPoints = labels.length;
    await drawManifold();
    app.clearError();
    updatePosterior();
    if (!where.dataset.touched) hover(0, 0);  // something in the preview box before the first hover
  }

  async function drawManifold() {
    const steps = state.grid;
    const images = await lab.call('manifold', { name: state.latent, steps, lo: range[0], hi: range[1] });
    drawImages(manifold, clamp01(images), steps);
    const size = Math.min(460, Math.max(300, chartBox.clientWidth - 60));
    manifold.style.width = manifold.style.height = `${size}px`;
  }

  let hoverBusy = false, hoverNext = null;
  async function hover(x, y) {
    if (!Number.isFinite(x) || !Number.isFinite(y)) return;
    hoverNext = [x, y];
    if (hoverBusy) return;
    hoverBusy = true;
    while (hoverNext) {
      const [zx, zy] = hoverNext;
      hoverNext = null;
      const img = await lab.call('decode', { name: state.latent, z: new Float32Array([zx, zy]) });
      drawImages(preview, clamp01(img), 1);
      where.textContent = `z = (${fmt(zx)}, ${fmt(zy)})`;
      if (zx !== 0 || zy !== 0) where.dataset.touched = '1';
    }
    hoverBusy = false;
  }
  manifold.addEventListener('mousemove', (e) => {
    const r = manifold.getBoundingClientRect();
    const fx = (e.clientX - r.left) / r.width, fy = (e.clientY - r.top) / r.height;
    hover(range[0] + fx * (range[1] - range[0]), range[1] - fy * (range[1] - range[0]));
  });

  // The current input's code: the VAE's posterior mean and standard deviations, the AE's code.
  async function updatePosterior() {
    if (!plot) return;
    const name = state.latent;
    const r = await lab.call('posterior', { name, pixels: app.input.pixels });
    posterior = { mean: [r.mean[0], r.mean[1]], sd: r.logvar ? [Math.exp(0.5 * r.logvar[0]), Math.exp(0.5 * r.logvar[1])] : null };
    drawPosterior();
  }

  function drawPosterior() {
    if (!posterior || !plot || !overlay) return;
    const u = plot;
    const dpr = devicePixelRatio;
    // The plot area's size from uPlot (device pixels): reading the element's size would force a layout.
    const { width: w, height: hgt } = u.bbox;
    if (overlay.width !== w) { overlay.width = w; overlay.style.width = `${w / dpr}px`; }
    if (overlay.height !== hgt) { overlay.height = hgt; overlay.style.height = `${hgt / dpr}px`; }
    const ctx = overlay.getContext('2d');
    ctx.clearRect(0, 0, overlay.width, overlay.height);
    const [mx, my] = posterior.mean;
    const cx = u.valToPos(mx, 'x', false) * dpr, cy = u.valToPos(my, 'y', false) * dpr;
    ctx.save();
    ctx.lineWidth = 2 * dpr;
    ctx.strokeStyle = '#111';
    ctx.fillStyle = 'rgba(17, 17, 17, 0.12)';
    if (posterior.sd) {
      // The 2-sigma ellipse of q(z|x).
      const rx = Math.abs(u.valToPos(mx + 2 * posterior.sd[0], 'x', false) * dpr - cx);
      const ry = Math.abs(u.valToPos(my + 2 * posterior.sd[1], 'y', false) * dpr - cy);
      ctx.beginPath();
      ctx.ellipse(cx, cy, Math.max(rx, 3), Math.max(ry, 3), 0, 0, 2 * Math.PI);
      ctx.fill();
      ctx.stroke();
    }
    ctx.beginPath();
    ctx.arc(cx, cy, 5 * dpr, 0, 2 * Math.PI);
    ctx.fillStyle = '#fff';
    ctx.fill();
    ctx.stroke();
    ctx.restore();
  }

  let inputTimer = 0;
  app.onInput(() => {
    clearTimeout(inputTimer);
    inputTimer = setTimeout(updatePosterior, 30);
  });
  app.onChange((keys) => {
    if (keys.includes('latent') || keys.includes('data')) build().catch(app.error);
    else if (keys.includes('grid')) drawManifold().catch(app.error);
  });
  build().catch(app.error);
  return { rebuild: build };
}
