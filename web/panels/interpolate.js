// Panel 3, Interpolate: two digits (test digits, or the drawing) encoded, the straight line between
// their codes decoded in steps, for the plain AE, the VAE and the VQ-VAE side by side. The VQ-VAE's
// code is discrete, so its "line" switches cells from one grid's codes to the other's, in raster order.
import { h, imageCanvas, drawImages, clamp01, P } from '../render.js';
import { labelText } from '../words.js';

const STEPS = 10;
const ROWS = [
  { name: 'ae_2d', title: 'Plain AE (2-D code)' },
  { name: 'vae_2d', title: 'VAE (2-D latent)' },
  { name: 'vqvae', title: 'VQ-VAE (7×7 codes)' },
];

export function initInterpolate(app) {
  const { lab, state, set } = app;
  const root = document.getElementById('panel-interpolate');
  const ends = [imageCanvas(1, 1, 2.5), imageCanvas(1, 1, 2.5)];
  // The ends are test image numbers (which of the 10,000), each shown with its label.
  const fromInput = h('input', { type: 'number', min: 0, max: 9999, value: state.from, 'aria-label': 'from test image number' });
  const toInput = h('input', { type: 'number', min: -1, max: 9999, value: state.to, 'aria-label': 'to test image number (-1: drawing)' });
  const endLabels = [h('span', { class: 'muted small', 'data-testid': 'interp-from-label' }), h('span', { class: 'muted small', 'data-testid': 'interp-to-label' })];
  fromInput.addEventListener('change', () => set({ from: clampIndex(fromInput.value, 0) }));
  toInput.addEventListener('change', () => set({ to: clampIndex(toInput.value, -1) }));
  const rowEls = ROWS.map((r) => {
    const c = imageCanvas(STEPS, 1, 2.5);
    c.dataset.model = r.name;
    return { ...r, canvas: c };
  });
  root.append(
    h('div', { class: 'controls' },
      h('label', {}, 'From test image # ', fromInput), h('div', { class: 'interp-end' }, ends[0], endLabels[0]),
      h('label', {}, 'to # ', toInput), h('div', { class: 'interp-end' }, ends[1], endLabels[1]),
      h('button', { onclick: () => set({ from: rnd(), to: rnd() }) }, 'Random pair'),
      h('button', { onclick: () => set({ to: -1 }) }, 'To my drawing')),
    h('div', { class: 'interp', 'data-testid': 'interp' }, rowEls.map((r) => h('div', { class: 'interp-row' }, h('span', { class: 'model-name' }, r.title), r.canvas))));

  let token = 0;
  async function update() {
    const my = ++token;
    try {
      const { pixels, labels } = await lab.call('testDigits', { data: state.data, indices: [state.from, Math.max(0, state.to)] });
      if (my !== token) return;
      endLabels[0].textContent = labelText(state.data, labels[0]);
      endLabels[1].textContent = state.to < 0 ? 'your drawing' : labelText(state.data, labels[1]);
      const a = pixels.slice(0, P);
      const b = state.to < 0 ? app.input.pixels : pixels.slice(P);
      drawImages(ends[0], a, 1);
      drawImages(ends[1], b, 1);
      const both = new Float32Array(2 * P);
      both.set(a, 0);
      both.set(b, P);
      for (const r of rowEls) {
        await app.ensureModel(r.name);
        // Discrete codes (the model has code grids) switch cell by cell; vectors move along the line.
        const { capabilities } = await lab.call('loadModel', { name: r.name });  // cached: the model's info
        const discrete = Boolean(capabilities?.codeGrids);
        const codes = await lab.call('encode', { name: r.name, pixels: both });
        const Z = codes.length / 2;
        const z = new Float32Array(STEPS * Z);
        for (let s = 0; s < STEPS; s++) {
          const t = s / (STEPS - 1);
          for (let j = 0; j < Z; j++) {
            z[s * Z + j] = discrete ? (j < Math.round(t * Z) ? codes[Z + j] : codes[j]) : (1 - t) * codes[j] + t * codes[Z + j];
          }
        }
        const images = await lab.call('decode', { name: r.name, z });
        if (my !== token) return;
        drawImages(r.canvas, clamp01(images), STEPS);
      }
      app.clearError();
    } catch (e) {
      app.error(e);
    }
  }
  app.onChange((keys) => {
    if (keys.includes('from') || keys.includes('to') || keys.includes('data')) {
      fromInput.value = state.from;
      toInput.value = state.to;
      update();
    }
  });
  let timer = 0;
  app.onInput(() => { if (state.to < 0) { clearTimeout(timer); timer = setTimeout(update, 60); } });
  update();
  return { update };
}

function clampIndex(v, lo) {
  const n = Math.round(Number(v));
  return Number.isFinite(n) ? Math.max(lo, Math.min(9999, n)) : lo;
}
const rnd = () => Math.floor(Math.random() * 10000);
