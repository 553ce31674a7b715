// The page: reads the state from the URL, starts the worker, loads the first view's models, and wires
// the panels. Nothing here computes: the worker does (client.js), this thread only draws.
import { WorkerClient } from './client.js';
import { state, set, readUrl, onChange, schema, addCoreSettings } from './state.js';
import { h, fmt } from './render.js';
import { initDraw } from './panels/draw.js';
import { initLatent } from './panels/latent.js';
import { initInterpolate } from './panels/interpolate.js';
import { initSample } from './panels/sample.js';
import { initVq } from './panels/vq.js';
import { initTrain } from './panels/train.js';

readUrl();
const lab = new WorkerClient(new URL('./worker.js', import.meta.url));
const statusBar = document.getElementById('status');
const downloads = new Map();

// Download progress of models and data, in one line at the top.
lab.on('download', ({ label, loaded, total, done }) => {
  if (done) downloads.delete(label);
  else downloads.set(label, { loaded, total });
  const parts = [...downloads].map(([l, { loaded: a, total: t }]) => (t ? `${l} ${Math.round((100 * a) / t)}%` : `${l} ${(a / 1e6).toFixed(1)} MB`));
  statusBar.textContent = parts.length ? `Loading ${parts.join(' · ')}` : '';
  statusBar.classList.toggle('busy', parts.length > 0);
});

const loadedListeners = new Set();
const inputListeners = new Set();
const app = {
  lab, state, set, schema, onChange,
  manifest: [],
  loaded: new Set(),
  metrics: {},  // figures the browser tests and benchmarks read (window.latentlab.metrics)
  input: { pixels: new Float32Array(784), source: 'drawing' },
  setInput(pixels, meta) {
    app.input = { pixels, ...meta };
    for (const fn of inputListeners) fn(app.input);
  },
  onInput: (fn) => inputListeners.add(fn),
  onModelsLoaded: (fn) => loadedListeners.add(fn),
  async ensureModel(name) {
    if (app.loaded.has(name)) return;
    await lab.call('loadModel', { name });
    app.loaded.add(name);
    for (const fn of loadedListeners) fn(name);
  },
  error(e) {
    console.warn(e);
    const box = document.getElementById('errors');
    box.replaceChildren(h('div', { class: 'error' }, String(e.message || e), h('button', { class: 'icon', onclick: () => box.replaceChildren() }, '×')));
  },
  // A message concerns the last action: the next one that succeeds clears it.
  clearError() {
    document.getElementById('errors').replaceChildren();
  },
};
window.latentlab = app;

async function boot() {
  app.manifest = await (await fetch('models/manifest.json')).json();
  const known = new Set(app.manifest.map((m) => m.name));
  // The first view: the drawing panel's models, the 2-D models of the latent view and the VQ-VAE.
  const first = [...new Set([...state.models, 'vae_2d', 'ae_2d', 'vqvae'])].filter((n) => known.has(n));
  const { kinds, settings } = await lab.call('init', { load: first });
  app.kinds = kinds;
  app.settings = settings;
  app.settingKeys = addCoreSettings(settings, kinds);  // before any panel can write the URL
  for (const n of first) app.loaded.add(n);
  document.body.classList.toggle('embed', state.embed);
  showPanels();
  const panels = {
    draw: initDraw(app),
    latent: initLatent(app),
    interpolate: initInterpolate(app),
    sample: initSample(app),
    vq: initVq(app),
    train: initTrain(app),
  };
  app.panels = panels;
  onChange(async (keys) => {
    if (keys.includes('panels') || keys.includes('embed')) showPanels();
    if (keys.includes('models')) {
      for (const n of state.models) if (known.has(n)) await app.ensureModel(n).catch(app.error);
      panels.draw.refresh();
    }
  });
  if (state.embed && window.parent !== window) {
    // Embedded (embed.js): tell the host page our height whenever it changes.
    const report = () => window.parent.postMessage({ latentlab: 'height', height: document.documentElement.scrollHeight }, '*');
    new ResizeObserver(report).observe(document.body);
    report();
  }
  app.ready = true;
  document.body.dataset.ready = '1';
}

function showPanels() {
  for (const section of document.querySelectorAll('section.panel')) {
    section.hidden = !state.panels.includes(section.dataset.panel);
  }
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('off', !state.panels.includes(a.dataset.panel));
}

boot().catch((e) => {
  app.error(e);
  document.body.dataset.ready = 'error';
});

export { fmt };
