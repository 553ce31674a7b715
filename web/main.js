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
import { initGlossary } from './words.js';

readUrl();
// Embedded (embed.js): the host's element learns at once that the page runs, and later its height or
// why it could not start.
const host = state.embed && window.parent !== window ? window.parent : null;
host?.postMessage({ latentlab: 'hello' }, '*');
const lab = new WorkerClient(new URL('./worker.js', import.meta.url));
const statusBar = document.getElementById('status');
// The sticky header's height, for links to a panel to scroll its heading below it (style.css).
new ResizeObserver(([e]) => document.documentElement.style.setProperty('--header-h', `${Math.ceil(e.target.offsetHeight)}px`))
  .observe(document.querySelector('header'));
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
  // The page's own failures (it could not start) at the top; each panel reports its own in place
  // (panelView below).
  error(e) {
    console.warn(e);
    const box = document.getElementById('errors');
    box.replaceChildren(h('div', { class: 'error' }, String(e.message || e), h('button', { class: 'icon', 'aria-label': 'dismiss', onclick: () => box.replaceChildren() }, '×')));
  },
  clearError() {
    document.getElementById('errors').replaceChildren();
  },
};
window.latentlab = app;

// Errors where the user is: a panel's messages show in that panel, in its `[data-errors]` element (by
// the controls that act, as Train's Start) or else at the top of its content, and stay until the action
// that failed next succeeds. A panel gets the app through this view, whose error(e, action) and
// clearError(action) are that panel's; `action` keys a message when one panel runs several things at
// once (Sample's three grids), so one succeeding does not clear another's message. Everything else is
// the app itself.
function panelView(panel) {
  const section = document.getElementById(panel);
  let box = null;
  const messages = new Map();  // action -> element
  const boxOf = () => {
    if (box) return box;
    box = section.querySelector('[data-errors]');
    if (!box) section.querySelector(`#panel-${panel}`).before(box = h('div', { 'data-errors': '' }));
    box.classList.add('panel-errors');
    box.setAttribute('role', 'alert');
    box.dataset.testid = `errors-${panel}`;
    return box;
  };
  const error = (e, action = '') => {
    console.warn(e);
    const text = String(e?.message || e);
    let el = messages.get(action);
    if (!el) {
      el = h('div', { class: 'error' }, h('span', {}), h('button', { class: 'icon', 'aria-label': 'dismiss', onclick: () => clearError(action) }, '×'));
      messages.set(action, el);
      boxOf().append(el);
    }
    el.firstChild.textContent = text;
    // Seen where it happened: a panel on screen brings its message into view (a panel scrolled away
    // does not move the page).
    const r = section.getBoundingClientRect();
    if (r.bottom > 0 && r.top < innerHeight) {
      const b = box.getBoundingClientRect();
      if (b.top < 0 || b.bottom > innerHeight) box.scrollIntoView({ block: 'nearest' });
    }
  };
  const clearError = (action = '') => {
    messages.get(action)?.remove();
    messages.delete(action);
  };
  return new Proxy(app, { get: (target, key) => (key === 'error' ? error : key === 'clearError' ? clearError : target[key]) });
}

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
  document.body.dataset.data = state.data;  // notes for one data set only (style.css .fashion-only)
  initGlossary();
  showPanels();
  const views = Object.fromEntries(['draw', 'latent', 'interpolate', 'sample', 'vq', 'train'].map((p) => [p, panelView(p)]));
  app.views = views;
  const panels = {
    draw: initDraw(views.draw),
    latent: initLatent(views.latent),
    interpolate: initInterpolate(views.interpolate),
    sample: initSample(views.sample),
    vq: initVq(views.vq),
    train: initTrain(views.train),
  };
  app.panels = panels;
  onChange(async (keys) => {
    if (keys.includes('panels') || keys.includes('embed')) showPanels();
    if (keys.includes('data')) document.body.dataset.data = state.data;
    if (keys.includes('models')) {
      let failed = false;
      for (const n of state.models) if (known.has(n)) await app.ensureModel(n).catch((e) => { failed = true; views.draw.error(e, 'models'); });
      if (!failed) views.draw.clearError('models');
      panels.draw.refresh();
    }
  });
  if (host) {
    // Embedded (embed.js): tell the host page our height whenever it changes.
    const report = () => host.postMessage({ latentlab: 'height', height: document.documentElement.scrollHeight }, '*');
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
  host?.postMessage({ latentlab: 'error', message: String(e.message || e) }, '*');
  document.body.dataset.ready = 'error';
});

export { fmt };
