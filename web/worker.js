// The Web Worker: the only JavaScript that loads the WebAssembly module. Everything that computes runs
// here, so the page's thread only draws. It answers requests from client.js ({id, op, args} ->
// {id, ok, value | error}) and pushes events ({event, data}: download progress, training progress,
// prior-sampling frames).
//
// Long jobs (training, animated sampling) run in slices of a few tens of milliseconds and yield between
// slices, so a reconstruction request from the drawing canvas is answered between two slices.
import { loadLatentLab } from './lib/latentlab.js';

const P = 784;
let lab = null;
const models = new Map();  // name -> {model, info}
let prior = null;           // the PixelCNN prior over the VQ-VAE's codes (Prior)
const datasets = new Map(); // 'mnist:t10k' -> {images: Uint8Array pixels, labels, count}
let training = null;        // see ops.trainCreate

const post = (event, data, transfer = []) => self.postMessage({ event, data }, transfer);
const yieldToMessages = () => new Promise((resolve) => setTimeout(resolve, 0));
const SLICE_MS = 40;  // training runs in slices this long, answering messages in between

// ---- data: gzipped IDX files, fetched with progress and decompressed by the browser ----
async function fetchBytes(url, label) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${label}: HTTP ${response.status} for ${url}`);
  const total = Number(response.headers.get('content-length')) || 0;
  const reader = response.body.getReader();
  const chunks = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    post('download', { label, loaded, total });
  }
  post('download', { label, loaded, total, done: true });
  let bytes = concat(chunks, loaded);
  if (url.endsWith('.gz')) {
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
    bytes = new Uint8Array(await new Response(stream).arrayBuffer());
  }
  return bytes;
}

function concat(chunks, n) {
  const out = new Uint8Array(n);
  let at = 0;
  for (const c of chunks) { out.set(c, at); at += c.length; }
  return out;
}

function parseIdx(bytes, wantImages, what) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = bytes.length >= 8 ? view.getUint32(0) : 0;
  if (wantImages ? magic !== 0x803 : magic !== 0x801) throw new Error(`${what}: not an IDX ${wantImages ? 'image' : 'label'} file`);
  const count = view.getUint32(4);
  const header = wantImages ? 16 : 8;
  const per = wantImages ? view.getUint32(8) * view.getUint32(12) : 1;
  if (wantImages && per !== P) throw new Error(`${what}: images are not 28x28`);
  if (bytes.length !== header + count * per) throw new Error(`${what}: truncated (${bytes.length} bytes)`);
  return { count, data: bytes.subarray(header) };
}

// name 'mnist' or 'fashion'; part 't10k' (test) or 'train'. Raw IDX bytes are kept for the trainer.
async function dataset(name, part) {
  const key = `${name}:${part}`;
  if (datasets.has(key)) return datasets.get(key);
  const base = `data/${name}/${part}`;
  const label = `${name === 'mnist' ? 'MNIST' : 'Fashion-MNIST'} ${part === 'train' ? 'training' : 'test'} set`;
  const [imageBytes, labelBytes] = await Promise.all([
    fetchBytes(`${base}-images-idx3-ubyte.gz`, label),
    fetchBytes(`${base}-labels-idx1-ubyte.gz`, `${label} labels`),
  ]);
  const images = parseIdx(imageBytes, true, label);
  const labels = parseIdx(labelBytes, false, `${label} labels`);
  const set = { images: images.data, labels: labels.data, count: images.count, imageBytes, labelBytes };
  datasets.set(key, set);
  return set;
}

function pixelsOf(set, indices) {
  const out = new Float32Array(indices.length * P);
  indices.forEach((i, r) => {
    const src = set.images.subarray(i * P, (i + 1) * P);
    for (let p = 0; p < P; p++) out[r * P + p] = src[p] / 255;
  });
  return out;
}

// ---- models ----
async function loadModel(name) {
  if (models.has(name)) return models.get(name).info;
  const bytes = await fetchBytes(`models/${name}.safetensors`, `model ${name}`);
  return addModel(name, bytes);
}

function addModel(name, bytes) {
  const model = new lab.Model(bytes);
  const old = models.get(name);
  if (old) old.model.dispose();
  const info = model.info();
  models.set(name, { model, info });
  return info;
}

function modelNamed(name) {
  if (name === 'training') {
    if (!training) throw new Error('no model is being trained');
    return training.model;
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

// ---- training ----
// One training session: a fresh model (or a loaded file) and a trainer over a data set. Runs while
// `running`, in slices of about 40 ms, posting 'train' events with the steps' loss terms.
async function trainLoop(session) {
  // A pause then a start between two slices must not leave two loops running: only the newest runs.
  const me = session.loop = (session.loop || 0) + 1;
  let postedRunning = false;
  while (session.running && training === session && session.loop === me) {
    const t0 = performance.now();
    const steps = [];
    let result = null;
    let images = 0;
    try {
      // Steps in calls of n, n sized from the measured step time to fill the slice.
      while (performance.now() - t0 < SLICE_MS) {
        const left = SLICE_MS - (performance.now() - t0);
        let n = Math.max(1, Math.min(64, Math.floor(left / (session.msPerStep || 5))));
        if (session.stopAt) n = Math.min(n, session.stopAt - session.trainer.progress().stepsDone);
        const t1 = performance.now();
        result = session.trainer.step(n);
        const per = (performance.now() - t1) / n;
        session.msPerStep = session.msPerStep ? 0.7 * session.msPerStep + 0.3 * per : per;
        steps.push(...result.steps);
        if (result.codeUsage) mergeUsage(session, result.codeUsage);
        images += result.batch * n;
        if (session.stopAt && result.stepsDone >= session.stopAt) { session.running = false; break; }
      }
    } catch (e) {
      session.running = false;
      if (e.partial) steps.push(...e.partial.steps);
      post('train', { steps, progress: session.trainer.progress(), error: e.message, running: false });
      return;
    }
    const ms = performance.now() - t0;
    session.imagesPerSecond = images / (ms / 1000);
    postedRunning = session.running;
    post('train', {
      steps, progress: result ? strip(result) : session.trainer.progress(), running: session.running,
      imagesPerSecond: session.imagesPerSecond, usage: session.usage ? usageSummary(session) : null,
    });
    await yieldToMessages();
  }
  // Paused between slices: the page's last event must say so, or its chart and buttons keep the state
  // of the slice before the pause. (A stop at stopAt was posted with running: false already.)
  if (training === session && session.loop === me && postedRunning) {
    post('train', { steps: [], progress: session.trainer.progress(), running: false, usage: session.usage ? usageSummary(session) : null });
  }
}

function strip(result) {
  const { steps, codeUsage, ...rest } = result;
  return rest;
}

// Code usage over a sliding window of recent training batches (the last ~50 steps' counts).
function mergeUsage(session, usage) {
  session.usageWindow.push(usage.counts);
  if (session.usageWindow.length > 50) session.usageWindow.shift();
  session.usage = true;
}

function usageSummary(session) {
  const K = session.usageWindow[0].length;
  const counts = new Float64Array(K);
  for (const c of session.usageWindow) for (let k = 0; k < K; k++) counts[k] += c[k];
  const total = counts.reduce((a, b) => a + b, 0);
  let entropy = 0;
  for (const c of counts) if (c > 0) entropy -= (c / total) * Math.log(c / total);
  return { counts: Array.from(counts), used: counts.filter((c) => c > 0).length, perplexity: Math.exp(entropy), steps: session.usageWindow.length };
}

// ---- the operations the page calls ----
const ops = {
  async init({ load = [] }) {
    if (!lab) lab = await loadLatentLab({ locateFile: (file) => new URL(`./lib/${file}`, import.meta.url).href });
    const loaded = {};
    await Promise.all(load.map(async (name) => { loaded[name] = await loadModel(name); }));
    return { kinds: lab.kinds(), settings: lab.settings(), loaded };
  },
  loadModel: ({ name }) => loadModel(name),
  async loadPrior({ name }) {
    if (!prior) prior = new lab.Prior(await fetchBytes(`models/${name}.safetensors`, `prior ${name}`));
    return prior.info();
  },
  async testDigits({ data = 'mnist', indices }) {
    const set = await dataset(data, 't10k');
    return { pixels: pixelsOf(set, indices), labels: indices.map((i) => set.labels[i]), count: set.count };
  },
  async testSetInfo({ data = 'mnist' }) {
    const set = await dataset(data, 't10k');
    return { count: set.count };
  },
  // Every listed model's reconstruction of the same images, timed per model (the work, not the messages).
  reconstructAll({ names, pixels }) {
    const out = {};
    const t0 = performance.now();
    for (const name of names) {
      try {
        const { value, ms } = timed(() => modelNamed(name).reconstruct(pixels));
        out[name] = { recon: value, ms };
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
  // The first `count` test images encoded by a model (the latent-space scatter), in chunks.
  async scatter({ name, data = 'mnist', count = 10000 }) {
    const set = await dataset(data, 't10k');
    const m = modelNamed(name);
    const n = Math.min(count, set.count);
    const Z = m.codeSize;
    const codes = new Float32Array(n * Z);
    for (let first = 0; first < n; first += 500) {
      const idx = Array.from({ length: Math.min(500, n - first) }, (_, i) => first + i);
      codes.set(m.encode(pixelsOf(set, idx)), first * Z);
    }
    return { codes, labels: set.labels.slice(0, n), codeSize: Z };
  },
  // A decoded grid of latent points: rows*cols codes of size 2 over [lo, hi]^2 (top row = high y).
  manifold({ name, steps, lo, hi }) {
    const z = new Float32Array(steps * steps * 2);
    for (let r = 0; r < steps; r++) {
      for (let c = 0; c < steps; c++) {
        z[(r * steps + c) * 2] = lo + ((hi - lo) * (c + 0.5)) / steps;
        z[(r * steps + c) * 2 + 1] = hi - ((hi - lo) * (r + 0.5)) / steps;
      }
    }
    return modelNamed(name).decode(z);
  },
  // VQ-VAE: the code grid of each image and its reconstruction.
  vqCodes({ name, pixels }) {
    const m = modelNamed(name);
    return { codes: m.encode(pixels), recon: m.reconstruct(pixels), state: m.vqState() };
  },
  vqState: ({ name }) => modelNamed(name).vqState(),
  // What each code stands for: the mean input patch (PATCH x PATCH pixels centred on the cell's own
  // 4x4 block) over the cells of the first `count` test images that were assigned that code.
  async vqCodePatches({ name, data = 'mnist', count = 1000 }) {
    const set = await dataset(data, 't10k');
    const m = modelNamed(name);
    const { K, grid } = m.vqState();
    const cellPx = 28 / grid, PATCH = 12, off = (PATCH - cellPx) / 2;
    const sums = new Float32Array(K * PATCH * PATCH), counts = new Float64Array(K);
    const n = Math.min(count, set.count);
    for (let first = 0; first < n; first += 250) {
      const idx = Array.from({ length: Math.min(250, n - first) }, (_, i) => first + i);
      const codes = m.encode(pixelsOf(set, idx));
      idx.forEach((img, r) => {
        const px = set.images.subarray(img * P, (img + 1) * P);
        for (let c = 0; c < grid * grid; c++) {
          const k = codes[r * grid * grid + c];
          counts[k]++;
          const y0 = Math.floor(c / grid) * cellPx - off, x0 = (c % grid) * cellPx - off;
          for (let y = 0; y < PATCH; y++) {
            const Y = y0 + y;
            if (Y < 0 || Y >= 28) continue;
            for (let x = 0; x < PATCH; x++) {
              const X = x0 + x;
              if (X >= 0 && X < 28) sums[k * PATCH * PATCH + y * PATCH + x] += px[Y * 28 + X] / 255;
            }
          }
        }
      });
    }
    for (let k = 0; k < K; k++) for (let i = 0; i < PATCH * PATCH; i++) sums[k * PATCH * PATCH + i] /= Math.max(1, counts[k]);
    return { patches: sums, K, patch: PATCH, counts: Array.from(counts), images: n };
  },
  // Code usage over the first `count` test images: per-code counts, perplexity, used, dead.
  async vqUsage({ name, data = 'mnist', count = 2000 }) {
    const set = await dataset(data, 't10k');
    const m = modelNamed(name);
    const { K } = m.vqState();
    const counts = new Float64Array(K);
    const n = Math.min(count, set.count);
    for (let first = 0; first < n; first += 500) {
      const idx = Array.from({ length: Math.min(500, n - first) }, (_, i) => first + i);
      for (const c of m.encode(pixelsOf(set, idx))) counts[c]++;
    }
    const total = counts.reduce((a, b) => a + b, 0);
    let entropy = 0;
    for (const c of counts) if (c > 0) entropy -= (c / total) * Math.log(c / total);
    const used = counts.filter((c) => c > 0).length;
    return { counts: Array.from(counts), used, dead: K - used, perplexity: Math.exp(entropy), images: n };
  },
  // Prior samples drawn cell by cell; posts a 'priorFrame' event per `every` cells with the partial
  // grids (unsampled cells hold `fill`) and their decodings. Returns the final grids and images.
  // A class-conditional prior draws class `pclass` for every grid, or (pclass -1) the classes in turn.
  async priorSample({ name, count, temperature, seed, animate = true, every = 1, token, pclass = -1 }) {
    const m = modelNamed(name);
    if (!prior) throw new Error('the VQ-VAE prior is not loaded');
    const { H, W, classes } = prior.info();
    const G = H * W;
    const fill = ops.backgroundCode(m);
    const labels = classes ? Int32Array.from({ length: count }, (_, i) => (pclass >= 0 && pclass < classes ? pclass : i % classes)) : undefined;
    let codes = new Int32Array(count * G).fill(fill);
    for (let cell = 0; cell < G; cell++) {
      codes = prior.sampleCell(codes, cell, temperature, seed * 1000 + cell, labels);
      if (animate && ((cell + 1) % every === 0 || cell === G - 1)) {
        post('priorFrame', { token, cell, codes, images: m.decode(Float32Array.from(codes)) });
        await yieldToMessages();
      }
    }
    return { codes, labels: labels ? Array.from(labels) : null, images: m.decode(Float32Array.from(codes)) };
  },
  // The code an empty (black) image is assigned most often: the filler for cells not sampled yet.
  backgroundCode(m) {
    const codes = m.encode(new Float32Array(P));
    const counts = new Map();
    for (const c of codes) counts.set(c, (counts.get(c) || 0) + 1);
    return [...counts.entries()].sort((a, b) => b[1] - a[1])[0][0];
  },
  uniformCodes({ name, count, seed }) {
    const m = modelNamed(name);
    const { K, grid } = m.vqState();
    let s = seed >>> 0 || 1;
    const rand = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 4294967296; };
    const z = new Float32Array(count * grid * grid).map(() => Math.floor(rand() * K));
    return { codes: z, images: m.decode(z) };
  },

  settingError({ kind, name, value }) { return lab.settingError(kind, name, value); },

  // Training: a fresh model of `config` ({kind, latent, ...hyperparameters}) or a model file's bytes,
  // trained on the data set's training images with settings {batch, lr, seed}.
  async trainCreate({ config, bytes, settings, data = 'mnist' }) {
    // The new model and trainer are made first: a bad file or setting throws here and the session that
    // was running stays as it was.
    const set = await dataset(data, 'train');
    const model = bytes ? new lab.Model(bytes) : new lab.Model(config, settings.seed ?? 1);
    let trainer;
    try {
      // Raw pixel bytes (the IDX headers were checked here): the core keeps them as bytes, in one copy.
      trainer = new lab.Trainer(model, { images: set.images, labels: set.labels, format: 'raw' }, settings);
    } catch (e) {
      model.dispose();
      throw e;
    }
    ops.trainReset();
    training = { model, trainer, running: false, usageWindow: [], usage: false, data, stopAt: 0 };
    return { info: model.info(), progress: trainer.progress() };
  },
  trainRun({ steps = 0 } = {}) {
    if (!training) throw new Error('no model is being trained');
    if (training.running) return true;
    training.running = true;
    training.stopAt = steps ? training.trainer.progress().stepsDone + steps : 0;
    trainLoop(training);
    return true;
  },
  trainPause() {
    if (training) training.running = false;
    return true;
  },
  trainStep() {
    if (!training) throw new Error('no model is being trained');
    if (training.running) throw new Error('pause training first');
    const result = training.trainer.step(1);
    if (result.codeUsage) mergeUsage(training, result.codeUsage);
    post('train', { steps: result.steps, progress: strip(result), running: false, usage: training.usage ? usageSummary(training) : null });
    return true;
  },
  trainReset() {
    if (training) {
      training.running = false;
      training.trainer.dispose();
      training.model.dispose();
      training = null;
    }
    return true;
  },
  trainSave({ dtype = 'f32' }) {
    if (!training) throw new Error('no model is being trained');
    return training.model.save(dtype);
  },
  // A safetensors file from the person: checked by the core, then shown next to the pretrained models.
  loadModelBytes({ name, bytes }) {
    return addModel(name, bytes);
  },
  // The benchmark of bench.html: training images/s of a fresh `model` kind at `batch` on the MNIST
  // training set for `seconds`, and single-image reconstruction latency (median over 40 groups of 10 calls, measured here
  // in the worker: no message passing). Same fields as `latentlab bench --json`.
  async bench({ model = 'vae', batch = 128, seconds = 10, data = 'mnist', baseline = true }) {
    const set = await dataset(data, 'train');
    const memoryStart = lab.memoryBytes();
    const m = new lab.Model({ kind: model }, 1);
    const trainer = new lab.Trainer(m, { images: set.images, labels: set.labels, format: 'raw' }, { batch, lr: 1e-3, seed: 1 });
    try {
      trainer.step(3);  // warm-up: first-touch of buffers
      let steps = 0;
      let memoryPeak = lab.memoryBytes(), memoryAt10s = 0;
      const memoryPerMinute = [];  // wasm memory (MB) at the end of each minute of training
      const t0 = performance.now();
      let lastReport = t0;
      while (performance.now() - t0 < seconds * 1000) {
        trainer.step(5);
        steps += 5;
        memoryPeak = Math.max(memoryPeak, lab.memoryBytes());
        if (!memoryAt10s && performance.now() - t0 > 10000) memoryAt10s = lab.memoryBytes();
        if (performance.now() - t0 > 60000 * (memoryPerMinute.length + 1)) memoryPerMinute.push(lab.memoryBytes() / 2 ** 20);
        if (performance.now() - lastReport > 1000) {
          lastReport = performance.now();
          post('benchProgress', { seconds: (lastReport - t0) / 1000, imagesPerSecond: (steps * batch) / ((lastReport - t0) / 1000), memoryBytes: memoryPeak });
          await yieldToMessages();
        }
      }
      const elapsed = (performance.now() - t0) / 1000;
      const measured = {
        model, batch, seconds: elapsed, steps, images_per_s: (steps * batch) / elapsed,
        wasm_memory_start_mb: memoryStart / 2 ** 20, wasm_memory_after_10s_mb: memoryAt10s / 2 ** 20, wasm_memory_peak_mb: memoryPeak / 2 ** 20,
        wasm_memory_per_minute_mb: memoryPerMinute,
      };
      if (!baseline) return { ...measured, final_loss: trainer.step(1).steps[0].loss };
      // The in-run baseline: the same training with the plain scalar GEMM, for a third of the time.
      const fast = lab.gemmBackends().includes('wasmsimd') ? 'wasmsimd' : 'eigen';
      lab.setGemmBackend('scalar');
      let scalarSteps = 0;
      const ts = performance.now();
      try {
        while (performance.now() - ts < Math.max(1, seconds / 3) * 1000) { trainer.step(1); scalarSteps++; }
      } finally {
        lab.setGemmBackend(fast);
      }
      const scalarImagesPerSecond = (scalarSteps * batch) / ((performance.now() - ts) / 1000);
      // GEMM GFLOP/s on the MLP VAE's shapes (batch rows, 784 pixels, 400 hidden), each backend.
      const shapes = [
        { name: 'X*W^T (forward)', M: batch, N: 400, K: 784, transA: false, transB: true },
        { name: 'dY*W (input gradient)', M: batch, N: 400, K: 784, transA: false, transB: false },
        { name: 'dY^T*X (weight gradient)', M: 400, N: 784, K: batch, transA: true, transB: false },
      ];
      const gemm = shapes.map((sh) => {
        const r = { ...sh, gflops: {} };
        for (const b of lab.gemmBackends()) {
          lab.setGemmBackend(b);
          r.gflops[b] = lab.benchGemm({ ...sh, seconds: 0.4 });
        }
        lab.setGemmBackend(fast);
        r.ratio_to_scalar = r.gflops[fast] / r.gflops.scalar;
        return r;
      });
      const test = await dataset(data, 't10k');
      const one = pixelsOf(test, [0]);
      // Per image, from 40 groups of 10 calls (the browser's clock ticks in 0.1 ms steps).
      const times = [];
      for (let g = 0; g < 40; g++) {
        const t1 = performance.now();
        for (let i = 0; i < 10; i++) m.reconstruct(one);
        times.push((performance.now() - t1) / 10);
      }
      times.sort((a, b) => a - b);
      return {
        ...measured, threads: 1, engine: 'wasm-simd128',
        gemm_backend: fast,
        images_per_s_scalar_gemm: scalarImagesPerSecond,
        ratio_to_scalar_gemm: (steps * batch) / elapsed / scalarImagesPerSecond,
        gemm,
        latency_ms: times[times.length >> 1], latency_p90_ms: times[Math.floor(times.length * 0.9)],
        final_loss: trainer.step(1).steps[0].loss,
        user_agent: navigator.userAgent,
      };
    } finally {
      trainer.dispose();
      m.dispose();
    }
  },
  memory() {
    return { wasmBytes: lab ? lab.memoryBytes() : 0 };
  },
};

self.onmessage = async (e) => {
  const { id, op, args } = e.data;
  try {
    if (!ops[op]) throw new Error(`unknown operation '${op}'`);
    const value = await ops[op](args || {});
    self.postMessage({ id, ok: true, value }, transferables(value));
  } catch (err) {
    self.postMessage({ id, ok: false, error: err && err.message ? err.message : String(err) });
  }
};

// Typed arrays in a result move to the page instead of being copied.
function transferables(value, out = []) {
  if (!value || typeof value !== 'object') return out;
  if (ArrayBuffer.isView(value)) {
    if (value.byteOffset === 0 && value.byteLength === value.buffer.byteLength && !out.includes(value.buffer)) out.push(value.buffer);
    return out;
  }
  for (const v of Object.values(value)) transferables(v, out);
  return out;
}
