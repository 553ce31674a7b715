// Panel 4, Sample: a VAE's samples from its prior N(0, T^2 I); the VQ-VAE's samples from its learned
// PixelCNN prior, drawn cell by cell (animated: the code map fills in raster order while the decoded
// digits sharpen); and uniformly random code grids for contrast.
import { h, imageCanvas, drawImages, clamp01, codeRgb } from '../render.js';

const VAE_N = 64, VQ_N = 16;

export function initSample(app) {
  const { lab, state, set, manifest } = app;
  const root = document.getElementById('panel-sample');
  const vaeGrid = imageCanvas(8, 8, 1.6, 'pix');
  vaeGrid.dataset.testid = 'vae-samples';
  const priorGrid = imageCanvas(4, 4, 2.2, 'pix');
  priorGrid.dataset.testid = 'prior-samples';
  const priorCodes = h('canvas', { class: 'codes-mini', width: 4 * 7, height: 4 * 7 });
  const uniformGrid = imageCanvas(4, 4, 2.2, 'pix');
  uniformGrid.dataset.testid = 'uniform-samples';
  const tempInput = h('input', { type: 'range', min: 0.05, max: 2, step: 0.05, value: state.temperature, 'aria-label': 'temperature' });
  const tempLabel = h('span', {}, state.temperature.toFixed(2));
  tempInput.addEventListener('input', () => { tempLabel.textContent = Number(tempInput.value).toFixed(2); });
  tempInput.addEventListener('change', () => set({ temperature: Number(tempInput.value) }));
  const samplerSelect = h('select', { 'aria-label': 'VAE to sample' },
    ['vae_2d', 'vae_mlp', 'conv_vae', 'beta_vae'].filter((n) => manifest.some((m) => m.name === n))
      .map((n) => { const m = manifest.find((x) => x.name === n); return h('option', { value: n }, `${m.title}, ${m.blurb}`); }));
  samplerSelect.value = state.sampler;
  samplerSelect.addEventListener('change', () => set({ sampler: samplerSelect.value }));
  const priorNote = h('div', { class: 'muted small' });
  // A class-conditional prior: which digit it draws (hidden until the prior says it has classes).
  const classSelect = h('select', { 'aria-label': 'digit the prior draws', 'data-testid': 'prior-class', hidden: true },
    h('option', { value: -1 }, 'each digit in turn'),
    ...Array.from({ length: 10 }, (_, d) => h('option', { value: d }, `digit ${d}`)));
  classSelect.value = String(state.pclass);
  classSelect.addEventListener('change', () => set({ pclass: Number(classSelect.value) }));
  const hasPrior = manifest.some((m) => m.name === 'vqvae_prior');

  root.append(
    h('div', { class: 'controls' },
      h('label', {}, 'Temperature ', tempInput, ' ', tempLabel),
      h('button', { onclick: () => set({ seed: state.seed + 1 }), 'data-testid': 'resample' }, 'Sample again'),
      h('span', { class: 'muted small' }, 'seed ', h('b', { id: 'seed-label' }, state.seed))),
    h('div', { class: 'row wrap' },
      h('div', {}, h('div', { class: 'label' }, 'VAE: z ~ N(0, T²I) ', samplerSelect), vaeGrid),
      h('div', {}, h('div', { class: 'label' }, 'VQ-VAE + PixelCNN prior ', classSelect), h('div', { class: 'row' }, priorGrid, h('div', {}, h('div', { class: 'muted small' }, 'codes'), priorCodes)), priorNote),
      h('div', {}, h('div', { class: 'label' }, 'VQ-VAE, uniformly random codes'), uniformGrid)));

  async function sampleVae() {
    try {
      await app.ensureModel(state.sampler);
      const images = await lab.call('sample', { name: state.sampler, count: VAE_N, temperature: state.temperature, seed: state.seed });
      drawImages(vaeGrid, clamp01(images), 8);
      app.metrics.vaeSamples = VAE_N;
      app.clearError('vae');
    } catch (e) { app.error(e, 'vae'); }
  }

  // The 16 code grids as one 28x28 image, a pixel per cell in its code's colour.
  function drawCodes(codes) {
    const img = new ImageData(28, 28);
    for (let i = 0; i < VQ_N; i++) {
      for (let c = 0; c < 49; c++) {
        const x = (i % 4) * 7 + (c % 7), y = Math.floor(i / 4) * 7 + Math.floor(c / 7);
        img.data.set([...codeRgb(codes[i * 49 + c]), 255], (y * 28 + x) * 4);
      }
    }
    priorCodes.getContext('2d').putImageData(img, 0, 0);
  }

  let token = 0;
  async function samplePrior() {
    if (!hasPrior) { priorNote.textContent = 'no prior file in models/'; return; }
    const my = ++token;
    try {
      await app.ensureModel('vqvae');
      const info = await lab.call('loadPrior', { name: 'vqvae_prior' });
      classSelect.hidden = !info.classes;
      const t0 = performance.now();
      const off = lab.on('priorFrame', ({ token: t, cell, codes, images }) => {
        if (t !== my) return;
        drawImages(priorGrid, clamp01(images), 4);
        drawCodes(codes);
        priorNote.textContent = `sampling cell ${cell + 1} of 49…`;
      });
      const { images, codes, labels } = await lab.call('priorSample', { name: 'vqvae', count: VQ_N, temperature: Math.max(0.05, state.temperature), seed: state.seed, animate: true, every: 1, token: my, pclass: state.pclass });
      off();
      if (my !== token) return;
      drawImages(priorGrid, clamp01(images), 4);
      drawCodes(codes);
      const ms = performance.now() - t0;  // 49 cell steps, each decoded and drawn
      const which = !labels ? '' : state.pclass >= 0 ? `, all of digit ${state.pclass}` : ', digits 0-9 in turn';
      priorNote.textContent = `${VQ_N} grids${which}, 49 cells each, sampled in ${(ms / 1000).toFixed(1)} s`;
      app.metrics.priorSampleMs = ms;
      app.metrics.priorSamples = VQ_N;
      app.metrics.priorLabels = labels;
      app.clearError('prior');
    } catch (e) { app.error(e, 'prior'); }
  }

  async function sampleUniform() {
    try {
      await app.ensureModel('vqvae');
      const { images } = await lab.call('uniformCodes', { name: 'vqvae', count: VQ_N, seed: state.seed });
      drawImages(uniformGrid, clamp01(images), 4);
      app.clearError('uniform');
    } catch (e) { app.error(e, 'uniform'); }
  }

  app.onChange((keys) => {
    if (keys.includes('seed')) document.getElementById('seed-label').textContent = state.seed;
    if (keys.some((k) => ['seed', 'temperature', 'sampler'].includes(k))) sampleVae();
    if (keys.includes('pclass')) classSelect.value = String(state.pclass);
    if (keys.some((k) => ['seed', 'temperature'].includes(k))) { samplePrior(); sampleUniform(); }
    else if (keys.includes('pclass')) samplePrior();
  });
  sampleVae();
  sampleUniform();
  samplePrior();
  return { sampleVae, samplePrior };
}
