// The worker's models: the WebAssembly module (loaded once), the pretrained and loaded models by name,
// the PixelCNN prior, and the ops that run a model on images the page sends: reconstruct (with the
// core's per-image loss terms), encode, decode, sample. The model being trained is reached by the name
// 'training' (training.js sets it).
import { loadLatentLab } from '../lib/latentlab.js';
import { dataset, fetchBytes, pixelsOf } from './data.js';

export const worker = {
  lab: null,         // the module's API (wasm/latentlab.js)
  prior: null,       // the PixelCNN prior over the VQ-VAE's codes (Prior)
  training: null,    // the training session (training.js), whose model is 'training'
};
const models = new Map();  // name -> {model, info}

export async function loadLab() {
  if (!worker.lab) worker.lab = await loadLatentLab({ locateFile: (file) => new URL(`../lib/${file}`, import.meta.url).href });
  return worker.lab;
}

export async function loadModel(name) {
  if (models.has(name)) return models.get(name).info;
  const bytes = await fetchBytes(`models/${name}.safetensors`, `model ${name}`);
  return addModel(name, bytes);
}

function addModel(name, bytes) {
  const model = new worker.lab.Model(bytes);
  const old = models.get(name);
  if (old) old.model.dispose();
  const info = model.info();
  models.set(name, { model, info });
  return info;
}

export function modelNamed(name) {
  if (name === 'training') {
    if (!worker.training) throw new Error('no model is being trained');
    return worker.training.model;
  }
  const m = models.get(name);
  if (!m) throw new Error(`model '${name}' is not loaded`);
  return m.model;
}

function timed(fn) {
  const t0 = performance.now();
  const value = fn();
  return { value, ms: performance.now() - t0 };
}

// Per-image figures of one image from reconstructTerms' arrays: {terms: {name: value}, loss, mse}.
function figuresOf(r, i) {
  const terms = {};
  for (const [k, v] of Object.entries(r.terms)) terms[k] = v[i];
  return { terms, loss: r.loss[i], mse: r.mse[i] };
}

export const modelOps = {
  async init({ load = [] }) {
    const lab = await loadLab();
    const loaded = {};
    await Promise.all(load.map(async (name) => { loaded[name] = await loadModel(name); }));
    return { kinds: lab.kinds(), settings: lab.settings(), loaded };
  },
  loadModel: ({ name }) => loadModel(name),
  async loadPrior({ name }) {
    if (!worker.prior) worker.prior = new worker.lab.Prior(await fetchBytes(`models/${name}.safetensors`, `prior ${name}`));
    return worker.prior.info();
  },
  // A safetensors file from the person: checked by the core, then shown next to the pretrained models.
  loadModelBytes: ({ name, bytes }) => addModel(name, bytes),
  async testDigits({ data = 'mnist', indices }) {
    const set = await dataset(data, 't10k');
    return { pixels: pixelsOf(set, indices), labels: indices.map((i) => set.labels[i]), count: set.count };
  },
  async testSetInfo({ data = 'mnist' }) {
    const set = await dataset(data, 't10k');
    return { count: set.count };
  },
  // Every listed model's reconstruction of one image with the core's loss terms for it (the figures
  // `latentlab eval` gives for that image, z = posterior mean), timed per model (the work, not the
  // messages).
  reconstructAll({ names, pixels }) {
    const out = {};
    const t0 = performance.now();
    for (const name of names) {
      try {
        const { value, ms } = timed(() => modelNamed(name).reconstructTerms(pixels));
        out[name] = { recon: value.recon, ms, ...figuresOf(value, 0) };
      } catch (e) {
        out[name] = { error: e.message };
      }
    }
    return { results: out, ms: performance.now() - t0 };
  },
  encode: ({ name, pixels }) => modelNamed(name).encode(pixels),
  // VAE posterior mean and log-variance of the images.
  posterior({ name, pixels }) {
    const m = modelNamed(name);
    return { mean: m.encode(pixels), logvar: m.info().hasLogvar ? m.encodeLogvar(pixels) : null };
  },
  decode: ({ name, z }) => modelNamed(name).decode(z),
  sample: ({ name, count, temperature, seed }) => modelNamed(name).sample(count, temperature, seed),
  memory() {
    return { wasmBytes: worker.lab ? worker.lab.memoryBytes() : 0 };
  },
};
