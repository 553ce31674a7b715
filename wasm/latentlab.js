// LatentLab in JavaScript: a promise-based loader and two classes over the Embind API of
// wasm/bindings.cpp. Copied next to the module (build/wasm-release/latentlab.js), which it imports.
//
//   const lab = await loadLatentLab();
//   const vae = new lab.Model(bytesOfSafetensorsFile);           // or new lab.Model({kind: 'vae'}, seed)
//   const recon = vae.reconstruct(pixels);                        // Float32Array [B*784] -> [B*784]
//   const trainer = new lab.Trainer(vae, {images, labels}, {batch: 128, lr: 1e-3, seed: 1});
//   const {steps} = trainer.step(20);                             // loss terms of each step
//
// Every failure (a wrong-size array, a bad file, an invalid option) throws an Error carrying the core's
// message; the module keeps working afterwards. That includes memory: a model, batch or array that does
// not fit what is left of the module's 2 GB throws an 'out of memory' Error (dispose() what is no longer
// used), and a file or config asking for more than the core's budget is refused before allocating. Arrays are copied once into wasm memory and results
// copied once out, so returned arrays are plain JS arrays the caller owns (transferable to a worker's
// client). Objects free their wasm memory when garbage-collected; dispose() frees it at once.

import createLatentLabModule from './latentlab_wasm.js';

// options: passed to Emscripten's factory (wasmBinary: the .wasm bytes; locateFile(name, dir)).
export async function loadLatentLab(options = {}) {
  const opts = { ...options };
  const isNode = typeof process === 'object' && !!process.versions && !!process.versions.node;
  if (isNode && !opts.wasmBinary && !opts.locateFile) {
    // This Emscripten cannot read a file: URL under node; read the bytes here.
    const fs = typeof process.getBuiltinModule === 'function' ? process.getBuiltinModule('fs') : null;
    if (!fs) {
      throw new Error('loadLatentLab: under node older than 20.16, pass {wasmBinary: <bytes of latentlab_wasm.wasm>}');
    }
    opts.wasmBinary = fs.readFileSync(new URL('./latentlab_wasm.wasm', import.meta.url));
  }
  const core = await createLatentLabModule(opts);
  return makeApi(core);
}

function makeApi(core) {
  // Frees the C++ object of a wrapper that was garbage-collected without dispose().
  const registry = typeof FinalizationRegistry === 'function'
    ? new FinalizationRegistry((handle) => handle.delete())
    : null;

  function unwrap(result) {
    if (result.ok) return result.value;
    const error = new Error(result.error);
    if (result.value !== undefined) error.partial = result.value;  // e.g. steps done before a failure
    throw error;
  }

  // A C++ input buffer of n elements filled with data; the buffer is null when memory for it could not
  // be had.
  function fill(buffer, data, what) {
    if (buffer === null) throw new Error(`${what}: out of memory: no room for ${data.length} values (dispose() models and trainers no longer in use)`);
    if (data.length) buffer.set(data);
  }

  function own(wrapper, handle) {
    wrapper._handle = handle;
    if (registry) registry.register(wrapper, handle, wrapper);
  }

  function release(wrapper) {
    if (!wrapper._handle) return;
    if (registry) registry.unregister(wrapper);
    wrapper._handle.delete();
    wrapper._handle = null;
  }

  // Fills a new C++ object (fill throws on failure: the object is then freed), then gives it to the
  // wrapper with its info.
  function adopt(wrapper, handle, fill) {
    try {
      fill();
    } catch (e) {
      handle.delete();
      throw e;
    }
    own(wrapper, handle);
    wrapper._info = JSON.parse(unwrap(handle.info()));
  }

  // A file's bytes into the object's buffer, then parsed by its load().
  function loadBytes(handle, source, what) {
    const bytes = toBytes(source, what);
    fill(handle.bufferU8(bytes.length), bytes, what);
    unwrap(handle.load());
  }

  function live(wrapper, what) {
    if (!wrapper._handle) throw new Error(`${what}: this object was disposed`);
    return wrapper._handle;
  }

  function toBytes(data, what) {
    if (data instanceof Uint8Array) return data;
    if (data instanceof ArrayBuffer) return new Uint8Array(data);
    if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    throw new TypeError(`${what}: expected a Uint8Array or ArrayBuffer`);
  }

  function checkNumbers(values, what) {
    if (values instanceof Float32Array || values instanceof Float64Array || Array.isArray(values)) return values;
    throw new TypeError(`${what}: expected a Float32Array (or an array of numbers)`);
  }

  // Any array of numbers (a typed array of any type, or an Array).
  function checkArray(values, what) {
    if ((ArrayBuffer.isView(values) && !(values instanceof DataView)) || Array.isArray(values)) return values;
    throw new TypeError(`${what}: expected an array of numbers (a typed array or an Array)`);
  }

  // Fills the C++ object's input buffer (one copy in), calls `method`, copies a typed-array result out.
  function callWithF32(handle, values, method, ...args) {
    fill(handle.bufferF32(values.length), values, method);
    const value = unwrap(handle[method](...args));
    return ArrayBuffer.isView(value) ? value.slice() : value;
  }

  class Model {
    // new Model(bytes)                 a safetensors file (Uint8Array or ArrayBuffer)
    // new Model(config, seed = 1)      a fresh model: config is an object or JSON string
    //                                  ({kind: 'vae', hidden: 400, latent: 20, ...hyperparameters})
    constructor(source, seed = 1) {
      const handle = new core.ModelCore();
      adopt(this, handle, () => {
        if (typeof source === 'string' || (source && typeof source === 'object' && !ArrayBuffer.isView(source) &&
                                          !(source instanceof ArrayBuffer))) {
          if (typeof seed !== 'number') throw new TypeError('Model: seed must be a number');
          unwrap(handle.create(typeof source === 'string' ? source : JSON.stringify(source), seed));
        } else {
          loadBytes(handle, source, 'Model');
        }
      });
    }

    // {kind, config, parameters, lossTerms, input, codeSize, hasPrior, hasLogvar, capabilities, metadata};
    // capabilities: what the model can do (codeGrids: null or [{H, W, K, D}] per level, ...; bindings.cpp).
    info() {
      return JSON.parse(unwrap(live(this, 'info').info()));
    }
    get kind() { return this._info.kind; }
    get input() { return this._info.input; }
    get codeSize() { return this._info.codeSize; }

    // pixels: B*input values in [0, 1] -> reconstruction probabilities (z = posterior mean).
    reconstruct(pixels) {
      return callWithF32(live(this, 'reconstruct'), checkNumbers(pixels, 'reconstruct'), 'reconstruct');
    }
    // pixels -> codes [B*codeSize] (VAE: posterior means).
    encode(pixels) {
      return callWithF32(live(this, 'encode'), checkNumbers(pixels, 'encode'), 'encode');
    }
    // pixels -> posterior log-variances [B*latent] (VAE only).
    encodeLogvar(pixels) {
      return callWithF32(live(this, 'encodeLogvar'), checkNumbers(pixels, 'encodeLogvar'), 'encodeLogvar');
    }
    // pixels -> class probabilities [B*classes] (models with info().capabilities.classifier: the judge).
    classify(pixels) {
      return callWithF32(live(this, 'classify'), checkNumbers(pixels, 'classify'), 'classify');
    }
    // pixels -> {recon: Float32Array [B*input], terms: {bce, kl, ...: Float32Array [B]}, loss:
    // Float64Array [B], mse: Float64Array [B]}: the reconstruction (z = posterior mean) and each image's
    // own loss terms and squared error (for one image, exactly evaluate()'s figures).
    reconstructTerms(pixels) {
      return callWithF32(live(this, 'reconstructTerms'), checkNumbers(pixels, 'reconstructTerms'), 'reconstructTerms');
    }
    // codes [B*codeSize] -> pixel probabilities [B*input].
    decode(z) {
      return callWithF32(live(this, 'decode'), checkNumbers(z, 'decode'), 'decode');
    }
    // count images from the prior N(0, temperature^2 I) (VAE only) -> [count*input].
    sample(count, temperature = 1, seed = 1) {
      const h = live(this, 'sample');
      return unwrap(h.sample(count, temperature, seed)).slice();
    }
    // Mean loss per image over the pixels: {count, loss, terms: {bce, kl, ...}, mse, metrics}.
    // mode 'mean' (z = posterior mean) or 'sample' (one z per image, drawn with seed).
    evaluate(pixels, { mode = 'mean', seed = 1 } = {}) {
      return callWithF32(live(this, 'evaluate'), checkNumbers(pixels, 'evaluate'), 'evaluate', mode, seed);
    }
    // VQ-VAE only: {K, D, grid, ema, codebook: Float32Array [K*D], stepsSinceUsed: Int32Array [K],
    // deadCodeSteps, restarts}. (Code assignments: encode(pixels) gives each cell's code index.)
    vqState() {
      return unwrap(live(this, 'vqState').vqState());
    }
    // The model as a safetensors file (Uint8Array); dtype 'f32' or 'f16'.
    save(dtype = 'f32') {
      return unwrap(live(this, 'save').save(dtype)).slice();
    }
    dispose() { release(this); }
  }

  class Trainer {
    // model: a Model (kept alive by the trainer); data: {images, labels, format = 'auto'}: the IDX
    // files' bytes, or raw pixel bytes (N*input) and labels (N) with format 'raw' ('auto' tells them
    // apart by the IDX magic); with codeModel (a Model with code grids, e.g. a VQ-VAE) and limit, a
    // model over grids of categories (a PixelCNN prior) trains on codeModel's code grids of the first
    // `limit` images (0: all) with their labels; settings: {lr, batch, epochs, seed, schedule, warmup, clip, reduction},
    // each absent one at the core's default (lab.settings().train lists them with their ranges).
    constructor(model, data, settings = {}) {
      if (!(model instanceof Model)) throw new TypeError('Trainer: expected a Model');
      if (!data || typeof data !== 'object') throw new TypeError('Trainer: expected data {images, labels}');
      const images = toBytes(data.images, 'Trainer images');
      const labels = toBytes(data.labels, 'Trainer labels');
      const handle = new core.TrainerCore(live(model, 'Trainer'));
      try {
        fill(handle.bufferImages(images.length), images, 'Trainer');
        fill(handle.bufferLabels(labels.length), labels, 'Trainer');
        if (data.codeModel) {  // a model over code grids: trains on codeModel's codes of the images
          unwrap(handle.setupCodes(live(data.codeModel, 'Trainer codeModel'), data.format ?? 'auto',
                                   JSON.stringify(settings), data.limit ?? 0));
        } else {
          unwrap(handle.setup(data.format ?? 'auto', JSON.stringify(settings)));
        }
      } catch (e) {
        handle.delete();
        throw e;
      }
      own(this, handle);
      this.model = model;
    }

    // Runs n steps: {steps: [{step, epoch, loss, terms: {...}, mse}], stepsDone, epoch, stepInEpoch,
    // stepsPerEpoch, trainSize, batch, lr, seed}; a VQ-VAE adds codeUsage: {counts [K], used,
    // perplexity} over these steps' batches. A diverging step throws (error.partial has the rest).
    step(n = 1) {
      return unwrap(live(this, 'step').step(n));
    }
    progress() {
      return unwrap(live(this, 'progress').progress());
    }
    dispose() { release(this); }
  }

  class Prior {
    // new Prior(bytes): a PixelCNN prior file (latentlab train-prior) over a VQ-VAE's code grids.
    constructor(source) {
      const handle = new core.PriorCore();
      adopt(this, handle, () => loadBytes(handle, source, 'Prior'));
    }
    // {K, H, W, channels, layers, stacks, classes, metadata}; classes > 0: a class-conditional prior.
    info() { return { ...this._info }; }
    // count grids [count*H*W] (Int32Array of code indices), sampled ancestrally cell by cell.
    // labels (class-conditional prior only): the class of each grid; by default the classes in turn
    // (0, 1, ..., classes - 1, 0, ...).
    sample(count, temperature = 1, seed = 1, labels = undefined) {
      const h = live(this, 'sample');
      this._setLabels(h, count, labels, 'sample');
      return unwrap(h.sample(count, temperature, seed)).slice();
    }
    // Resamples cell `cell` (raster index) of each grid in codes given its earlier cells; returns the
    // grids with that cell filled (the step a page animates: cell = 0, 1, ..., H*W - 1). labels as in sample.
    sampleCell(codes, cell, temperature = 1, seed = 1, labels = undefined) {
      const h = live(this, 'sampleCell');
      const c = codes instanceof Int32Array ? codes : Int32Array.from(codes);
      fill(h.bufferI32(c.length), c, 'Prior');
      this._setLabels(h, Math.floor(c.length / (this._info.H * this._info.W)), labels, 'sampleCell');
      return unwrap(h.sampleCell(cell, temperature, seed)).slice();
    }
    // Negative log-likelihood of each grid in nats (given its label if the prior is conditional) -> Float32Array [B].
    nll(codes, labels = undefined) {
      const h = live(this, 'nll');
      const c = codes instanceof Int32Array ? codes : Int32Array.from(codes);
      fill(h.bufferI32(c.length), c, 'Prior');
      this._setLabels(h, Math.floor(c.length / (this._info.H * this._info.W)), labels, 'nll');
      return unwrap(h.nll()).slice();
    }
    _setLabels(h, count, labels, what) {
      const classes = this._info.classes;
      if (labels === undefined || labels === null) {
        if (!classes) { h.bufferLabels(0); return; }
        labels = Int32Array.from({ length: Math.max(count, 0) }, (_, i) => i % classes);
      }
      if (!ArrayBuffer.isView(labels) && !Array.isArray(labels)) throw new TypeError(`${what}: labels must be an array of class indices`);
      for (const y of labels)
        if (!Number.isInteger(y)) throw new TypeError(`${what}: label ${y} is not an integer`);
      fill(h.bufferLabels(labels.length), labels, what);
    }
    dispose() { release(this); }
  }

  // Code usage over a sliding window of the last `capacity` count vectors (e.g. Trainer.step's
  // codeUsage.counts, one per call): add(counts), summary() -> {counts, cells, used, dead, perplexity,
  // batches}.
  class CodeUsageWindow {
    constructor(K, capacity = 50) {
      const handle = new core.UsageWindowCore();
      try {
        unwrap(handle.setup(K, capacity));
      } catch (e) {
        handle.delete();
        throw e;
      }
      own(this, handle);
    }
    add(counts) { unwrap(live(this, 'add').add(checkArray(counts, 'add'))); }
    summary() { return unwrap(live(this, 'summary').summary()); }
    dispose() { release(this); }
  }

  return {
    Model,
    Trainer,
    Prior,
    CodeUsageWindow,
    // Analyses of a VQ model's code assignments (codes: indices, as Model.encode gives them):
    // codeUsage -> {counts: Float64Array [K], cells, used, dead, perplexity};
    // codePatches(images: bytes of N images, codes [N*grid*grid]) -> {patches: Float32Array
    // [K*patch*patch] (the mean input patch of each code), counts: Float64Array [K]}.
    codeUsage: (codes, K) => unwrap(core.codeUsage(checkArray(codes, 'codeUsage'), K)),
    codePatches: (images, codes, { K, grid, patch = 12 }) =>
      unwrap(core.codePatches(toBytes(images, 'codePatches'), checkArray(codes, 'codePatches'), K, grid, patch)),
    // count grids of `cells` uniformly random codes in [0, K), drawn with seed (the CLI's
    // `sample --uniform-codes` stream) -> Float32Array [count*cells] of indices (decode() reads them).
    uniformCodes: (count, cells, K, seed = 1) => unwrap(core.uniformCodes(count, cells, K, seed)),
    // Benchmark hooks: the GEMM backends built in ('scalar', 'eigen', 'wasmsimd'), switching between
    // them (every model then uses that one), and GFLOP/s of one GEMM shape with the current backend.
    gemmBackends: () => core.gemmBackends(),
    setGemmBackend: (name) => unwrap(core.setGemmBackend(name)),
    benchGemm: ({ M, N, K, transA = false, transB = false, seconds = 0.5 }) => unwrap(core.benchGemm(M, N, K, transA, transB, seconds)),
    // Bytes of wasm memory the module holds now (it grows with use and never shrinks).
    memoryBytes: () => core.memoryBytes(),
    // [{name, description, sizes: ['hidden', 'latent' (those the kind uses)], hyper: [{name, default, min,
    // max, integer, help}]}]
    kinds: () => JSON.parse(core.ModelCore.kinds()),
    // The common settings from the core's tables: {train: [{name, type: 'int'|'number'|'choice', default,
    // min, max, choices, help}], sizes: [{name, default, min, max, integer, help}] (hidden, latent)}.
    settings: () => JSON.parse(core.ModelCore.settings()),
    // The core's message for a bad value of a setting of `kind` ('' when valid), as the CLI prints it.
    settingError: (kind, name, value) => core.ModelCore.settingError(String(kind), String(name), Number(value)),
  };
}
