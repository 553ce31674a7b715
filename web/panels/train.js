// Panel 6, Train: choose a model kind and its settings (the form is generated per kind from the core's
// registry and settings table, app.kinds and app.settings: the kind's architecture sizes and
// hyperparameters, then the training settings, each with the core's range and help), train on the MNIST or Fashion-MNIST
// training set in the worker (start, pause, single step, reset), with live uPlot charts of every loss
// term and of throughput, an epoch progress bar, reconstructions of eight fixed test digits refreshed
// as it learns, and download / load of the model as a safetensors file.
import { h, imageCanvas, drawImages, clamp01, fmt, thousands, P } from '../render.js';

const FIXED = [0, 1, 2, 3, 4, 5, 6, 7];  // the test digits whose reconstructions are shown

export function initTrain(app) {
  const { lab, state, set } = app;
  const root = document.getElementById('panel-train');
  const kinds = new Map(app.kinds.map((k) => [k.name, k]));
  const sizeSpecs = new Map(app.settings.sizes.map((s) => [s.name, s]));
  // The state key of a setting of the current kind (a hyperparameter another kind defines differently
  // has a key of its own: state.js).
  const keyOf = (name) => app.settingKeys.get(`${state.kind}.${name}`) ?? app.settingKeys.get(name);
  // The fields of a kind: its architecture sizes and hyperparameters (registry), then the training settings.
  // Hyperparameters set from the data (a PixelCNN's code grid: K, H, W) are not fields.
  const fieldsOf = (kind) => [...kind.sizes.map((n) => sizeSpecs.get(n)), ...kind.hyper.filter((hp) => !hp.fromData), ...app.settings.train];
  const kindSelect = h('select', { 'aria-label': 'model kind', 'data-testid': 'kind' },
    app.kinds.map((k) => h('option', { value: k.name, title: k.description }, k.description.split(':')[0])));
  kindSelect.value = state.kind;
  kindSelect.addEventListener('change', () => set({ kind: kindSelect.value }));
  const dataSelect = h('select', { 'aria-label': 'data set' }, h('option', { value: 'mnist' }, 'MNIST'), h('option', { value: 'fashion' }, 'Fashion-MNIST'));
  dataSelect.value = state.data;
  dataSelect.addEventListener('change', () => set({ data: dataSelect.value }));
  const fieldsBox = h('div', { class: 'fields', 'data-testid': 'train-fields' });
  const btn = {
    start: h('button', { class: 'primary', onclick: () => start(), 'data-testid': 'train-start' }, 'Start'),
    pause: h('button', { onclick: () => lab.call('trainPause'), 'data-testid': 'train-pause' }, 'Pause'),
    step: h('button', { onclick: () => singleStep(), 'data-testid': 'train-step' }, 'Step'),
    reset: h('button', { onclick: () => reset(), 'data-testid': 'train-reset' }, 'Reset'),
    save32: h('button', { onclick: () => download('f32'), 'data-testid': 'download' }, 'Download (F32)'),
    save16: h('button', { onclick: () => download('f16') }, 'F16'),
    toDraw: h('button', { onclick: () => addToDraw(), 'data-testid': 'train-to-draw' }, 'Show in Draw'),
  };
  const fileInput = h('input', { type: 'file', accept: '.safetensors', 'aria-label': 'load a model file', 'data-testid': 'load-file' });
  fileInput.addEventListener('change', () => loadFile(fileInput.files[0]));
  const progress = h('progress', { max: 1, value: 0, 'data-testid': 'epoch-progress' });
  const progressText = h('span', { class: 'muted small' }, 'not started');
  const lossBox = h('div', { class: 'chart', 'data-testid': 'loss-chart' });
  const speedBox = h('div', { class: 'chart' });
  const recon = imageCanvas(8, 2, 2, 'pix');
  recon.dataset.testid = 'train-recon';
  const summary = h('div', { class: 'figs-line', 'data-testid': 'train-summary' });

  root.append(h('div', { class: 'train-layout' },
    h('div', { class: 'train-form' },
      h('label', {}, 'Model ', kindSelect), h('label', {}, 'Data ', dataSelect), fieldsBox,
      h('div', { class: 'buttons' }, btn.start, btn.pause, btn.step, btn.reset),
      h('div', {}, progress, ' ', progressText),
      h('div', { 'data-errors': '' }),  // this panel's messages, by its buttons (main.js)
      h('div', { class: 'buttons' }, btn.save32, btn.save16, btn.toDraw),
      h('div', { class: 'small load' }, h('div', { class: 'label' }, 'load a model file'), fileInput)),
    h('div', { class: 'train-main' },
      summary,
      h('div', { class: 'row wrap' },
        h('div', {}, h('div', { class: 'label' }, 'loss terms per image (nats; MSE for the VQ-VAE)'), lossBox),
        h('div', {}, h('div', { class: 'label' }, 'throughput (images/s)'), speedBox)),
      h('div', { class: 'label' }, 'eight test digits (top) and their reconstructions (bottom)'), recon)));

  function renderFields() {
    const fields = fieldsOf(kinds.get(state.kind));
    fieldsBox.dataset.fields = fields.length;
    fieldsBox.replaceChildren(...fields.map((spec) => {
      const key = keyOf(spec.name), label = spec.name.replace(/_/g, ' ');
      const flag = spec.integer && spec.min === 0 && spec.max === 1;  // a 0/1 switch
      const input = spec.type === 'choice'
        ? h('select', { 'aria-label': spec.name }, spec.choices.map((c) => h('option', { value: c }, c)))
        : flag ? h('input', { type: 'checkbox', 'aria-label': spec.name })
          : h('input', { type: 'number', min: spec.min, max: spec.max, step: spec.type === 'int' || spec.integer ? 1 : 'any', 'aria-label': spec.name });
      if (flag) input.checked = state[key] === 1; else input.value = state[key];
      input.addEventListener('change', async () => {
        const typed = input.value;  // what was typed, before it is put back to the valid value
        const v = flag ? (input.checked ? 1 : 0) : app.schema[key].parse(typed);
        if (v === undefined) {
          input.value = state[key];
          // The core's message for the value, the one the CLI and the bindings give.
          const why = typed.trim() === '' ? 'a value is required'
            : await lab.call('settingError', { kind: state.kind, name: spec.name, value: Number(typed) }).catch((e) => e.message);
          app.error(new Error(`${why && typed.trim() !== '' ? why : `${label}: ${why || `${typed} is not valid`}`} (it stays ${state[key]})`));
          return;
        }
        app.clearError();
        set({ [key]: v });
      });
      return h('label', { title: spec.help }, `${label} `, input);
    }));
  }

  // The config and the settings sent to the core: the kind's values that differ from the registry's
  // defaults (a default the model caps, as k-sparse's k, stays the model's choice), every training setting.
  function config() {
    const c = { kind: state.kind };
    for (const spec of fieldsOf(kinds.get(state.kind)).slice(0, -app.settings.train.length)) {
      const v = state[keyOf(spec.name)];
      if (v !== spec.default) c[spec.name] = v;
    }
    return c;
  }
  function settings() {
    return Object.fromEntries(app.settings.train.map((spec) => [spec.name, state[keyOf(spec.name)]]));
  }

  // ---- the session ----
  let session = null;  // {kind, terms, x, ys, speed, info}
  let running = false;
  let fixed = null;

  // What the form asks for: a session made from another form (the kind or a setting changed since, even
  // while paused) is not resumed under this one; Start and Step make a new model instead.
  const formKey = () => JSON.stringify([config(), settings(), state.data]);
  async function ensureSession() {
    if (session && session.form === formKey()) return session;
    const before = progressText.textContent;
    progressText.textContent = 'loading the training set…';
    let r;
    try {
      r = await lab.call('trainCreate', { config: config(), settings: settings(), data: state.data });
    } catch (e) { progressText.textContent = before; throw e; }
    newSession(r.info, r.progress);
    return session;
  }

  function newSession(info, prog) {
    const terms = ['loss', ...info.lossTerms];
    const mine = session = { kind: info.kind, terms, x: [], ys: terms.map(() => []), sx: [], sy: [], info, progress: prog, form: formKey() };
    app.loaded.add('training');
    app.onTrainingModel?.(info);
    showProgress(prog);
    // Each chart and the reconstructions in a task of its own, so no main-thread task is long as training
    // starts (the loss chart alone took about 30 ms here).
    const later = (f) => setTimeout(() => { if (session === mine) f(); }, 0);
    later(() => { makeLossChart(); later(() => { makeSpeedChart(); later(refreshRecon); }); });
  }

  async function start() {
    try {
      await ensureSession();
      await lab.call('trainRun', {});
      setRunning(true);
      app.clearError();
    } catch (e) { app.error(e); progressText.textContent = 'not started'; }
  }
  async function singleStep() {
    try {
      await ensureSession();
      await lab.call('trainStep');
      app.clearError();
    } catch (e) { app.error(e); }
  }
  async function reset() {
    await lab.call('trainReset');
    session = null;
    app.loaded.delete('training');
    app.onTrainingModel?.(null);
    setRunning(false);
    progress.value = 0;
    progressText.textContent = 'not started';
    summary.textContent = '';
    lossBox.replaceChildren();
    speedBox.replaceChildren();
    lossPlot = speedPlot = null;
  }
  async function download(dtype) {
    try {
      if (!session) throw new Error('train or load a model first');
      const bytes = await lab.call('trainSave', { dtype });
      const a = h('a', { href: URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' })), download: `latentlab_${session.kind}_${session.progress?.stepsDone ?? 0}steps_${dtype}.safetensors` });
      document.body.append(a);
      a.click();
      a.remove();
      app.metrics.downloadedBytes = bytes.length;
    } catch (e) { app.error(e); }
  }
  // The model being trained (or loaded) as a row of the Draw panel, beside the pretrained ones.
  function addToDraw() {
    if (!session) { app.error(new Error('train or load a model first')); return; }
    app.clearError();
    if (!state.models.includes('training')) set({ models: [...state.models, 'training'] });
    if (state.panels.includes('draw')) document.getElementById('draw').scrollIntoView({ block: 'start' });
  }
  async function loadFile(file) {
    if (!file) return;
    let before = progressText.textContent;
    try {
      const bytes = new Uint8Array(await file.arrayBuffer());
      before = progressText.textContent;
      progressText.textContent = 'loading the training set…';
      const r = await lab.call('trainCreate', { bytes, settings: settings(), data: state.data }, [bytes.buffer]);
      if (kinds.has(r.info.kind)) set({ kind: r.info.kind });  // the form names the loaded model's kind
      newSession(r.info, r.progress);
      summary.textContent = `Loaded ${file.name}: ${r.info.kind}, ${thousands(r.info.parameters)} parameters. Train it further, or see it in the Draw panel.`;
      app.metrics.loadedModel = r.info;
      app.clearError();
      if (!state.models.includes('training')) set({ models: [...state.models, 'training'] });
    } catch (e) { app.error(e); progressText.textContent = session ? before : 'not started'; }
    fileInput.value = '';
  }

  function setRunning(r) {
    running = r;
    btn.start.disabled = r;
    btn.step.disabled = r;
    btn.pause.disabled = !r;
    root.classList.toggle('running', r);
  }

  function showProgress(p) {
    if (!p) return;
    session.progress = p;
    if (progress.max !== p.stepsPerEpoch) progress.max = p.stepsPerEpoch;
    progress.value = p.stepInEpoch;
    progressText.textContent = `epoch ${p.epoch + 1}, step ${p.stepInEpoch} of ${p.stepsPerEpoch} · ${thousands(p.stepsDone)} steps`;
  }

  // ---- charts ----
  let lossPlot = null, speedPlot = null, lastDraw = 0;
  const COLOURS = ['#222', '#e15759', '#4e79a7', '#59a14f', '#f28e2b', '#b07aa1'];
  let chartWidth = 0;
  function makeLossChart() {
    // Measured before the DOM changes, so reading it forces no second layout.
    chartWidth = Math.max(300, Math.min(560, (lossBox.parentElement.parentElement.clientWidth || 900) / 2 - 20));
    const width = chartWidth;
    lossBox.replaceChildren();
    lossPlot = new window.uPlot({
      width, height: 240,
      scales: { x: { time: false }, y: { distr: 3 } },  // log: the first steps' drop does not flatten the rest
      axes: [{ label: 'step', stroke: '#555' }, { stroke: '#555', size: 60 }],
      series: [{ label: 'step' }, ...session.terms.map((t, i) => ({ label: t, stroke: COLOURS[i % COLOURS.length], width: i === 0 ? 2 : 1.25, points: { show: false } }))],
      legend: { live: true },
    }, [[], ...session.terms.map(() => [])], lossBox);
    lossPlot.setData([session.x, ...session.ys]);
    showLatest(lossPlot);
  }
  // A chart's legend shows the newest step's values while the pointer is not over it (not '--').
  function showLatest(u) {
    if (u && !(u.cursor.left >= 0) && u.data[0].length) u.setLegend({ idx: u.data[0].length - 1 });
  }
  function makeSpeedChart() {
    speedBox.replaceChildren();
    speedPlot = new window.uPlot({
      width: Math.min(chartWidth, 420), height: 240,
      scales: { x: { time: false }, y: { range: (u, lo, hi) => [0, hi * 1.1 || 1] } },
      axes: [{ label: 'step', stroke: '#555' }, { stroke: '#555', size: 60 }],
      series: [{ label: 'step' }, { label: 'images/s', stroke: '#59a14f', width: 1.5, points: { show: false } }],
    }, [[], []], speedBox);
    speedPlot.setData([session.sx, session.sy]);
    showLatest(speedPlot);
  }

  function thin(arrs) {  // keeps charts cheap: halve the points beyond 4000
    if (arrs[0].length <= 4000) return;
    for (const a of arrs) { const k = a.filter((_, i) => i % 2 === 0); a.length = 0; a.push(...k); }
  }

  lab.on('train', (ev) => {
    if (!session) return;
    for (const s of ev.steps) {
      session.x.push(s.step);
      session.ys[0].push(s.loss);
      session.terms.slice(1).forEach((t, i) => session.ys[i + 1].push(s.terms[t] > 0 ? s.terms[t] : null));
    }
    if (ev.imagesPerSecond) { session.sx.push(ev.progress.stepsDone); session.sy.push(ev.imagesPerSecond); }
    thin([session.x, ...session.ys]);
    thin([session.sx, session.sy]);
    showProgress(ev.progress);
    const last = ev.steps[ev.steps.length - 1];
    if (last) {
      summary.replaceChildren(h('b', {}, `loss ${fmt(last.loss, 2)}`), ' = ', session.terms.slice(1).map((t) => `${t} ${fmt(last.terms[t], 3)}`).join(' + '),
        ev.imagesPerSecond ? ` · ${thousands(ev.imagesPerSecond)} images/s` : '');
      app.metrics.trainLoss = session.ys[0].slice();
      app.metrics.trainSteps = last.step;
    }
    if (ev.error) app.error(new Error(`training stopped: ${ev.error}`));
    if (!ev.running && running) setRunning(false);
    const now = performance.now();
    if (now - lastDraw > 200 || !ev.running) {
      lastDraw = now;
      lossPlot?.setData([session.x, ...session.ys]);
      speedPlot?.setData([session.sx, session.sy]);
      showLatest(lossPlot);
      showLatest(speedPlot);
      app.metrics.chartPoints = session.x.length;
    }
    if (now - lastRecon > 500 || !ev.running) refreshRecon();
  });

  let lastRecon = 0, reconBusy = false;
  async function refreshRecon() {
    if (reconBusy || !session || session.info.capabilities.categoricalInput) return;  // a prior over codes: no images
    reconBusy = true;
    lastRecon = performance.now();
    try {
      if (!fixed || fixed.data !== state.data) fixed = { data: state.data, ...(await lab.call('testDigits', { data: state.data, indices: FIXED })) };
      const { results } = await lab.call('reconstructAll', { names: ['training'], pixels: fixed.pixels });
      const both = new Float32Array(16 * P);
      both.set(fixed.pixels, 0);
      if (results.training.recon) both.set(clamp01(results.training.recon), 8 * P);
      drawImages(recon, both, 8);
    } catch (e) { /* the session may have been reset meanwhile */ }
    reconBusy = false;
  }

  app.onChange((keys) => {
    if (keys.includes('kind')) { kindSelect.value = state.kind; renderFields(); }
    if (keys.includes('data')) dataSelect.value = state.data;
    const trainKeys = ['kind', 'data', ...new Set(app.settingKeys.values())];
    if (session && keys.some((k) => trainKeys.includes(k))) {
      summary.textContent = session.form === formKey() ? '' : running ? 'Settings changed: Pause, then Start, to train a new model with them.'
        : 'Settings changed: Start trains a new model with them (download this one first to keep it).';
    }
  });
  summary.append(h('span', { class: 'muted' }, 'Press Start: the training set downloads (9.6 MB for MNIST), then the model trains here, in your browser.'));
  renderFields();
  setRunning(false);
  btn.pause.disabled = true;
  return {};
}
