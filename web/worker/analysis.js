// The worker's analyses of the models, every figure computed by the core: the latent-space scatter and
// manifold, a VQ-VAE's code grid, its code usage and perplexity (lab.codeUsage) and the mean input patch
// of each code (lab.codePatches) over test images, uniformly random codes (lab.uniformCodes: the core's
// seeded generator), and PixelCNN-prior samples drawn cell by cell with 'priorFrame' events.
import { chunks, dataset, P, pixelsOf } from './data.js';
import { modelNamed, worker } from './models.js';
import { post, yieldToMessages } from './protocol.js';

// The codes (indices as floats) of the first n test images [n * grid * grid], in chunks of `size`.
function testCodes(m, set, n, size) {
  const G = m.codeSize;
  const codes = new Float32Array(n * G);
  for (const idx of chunks(n, size)) codes.set(m.encode(pixelsOf(set, idx)), idx[0] * G);
  return codes;
}

// The code an empty (black) image is assigned most often (ties: the lowest): the filler for cells not
// sampled yet.
function backgroundCode(m) {
  const { counts } = worker.lab.codeUsage(m.encode(new Float32Array(P)), m.vqState().K);
  let best = 0;
  for (let k = 1; k < counts.length; k++) if (counts[k] > counts[best]) best = k;
  return best;
}

export const analysisOps = {
  // The first `count` test images encoded by a model (the latent-space scatter), in chunks.
  async scatter({ name, data = 'mnist', count = 10000 }) {
    const set = await dataset(data, 't10k');
    const m = modelNamed(name);
    const n = Math.min(count, set.count);
    return { codes: testCodes(m, set, n, 500), labels: set.labels.slice(0, n), codeSize: m.codeSize };
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
  // block) over the cells of the first `count` test images that were assigned that code.
  async vqCodePatches({ name, data = 'mnist', count = 1000 }) {
    const PATCH = 12;
    const set = await dataset(data, 't10k');
    const m = modelNamed(name);
    const { K, grid } = m.vqState();
    const n = Math.min(count, set.count);
    const { patches, counts } = worker.lab.codePatches(set.images.subarray(0, n * P), testCodes(m, set, n, 250), { K, grid, patch: PATCH });
    return { patches, K, patch: PATCH, counts: Array.from(counts), images: n };
  },
  // Code usage over the first `count` test images: per-code counts, perplexity, used, dead.
  async vqUsage({ name, data = 'mnist', count = 2000 }) {
    const set = await dataset(data, 't10k');
    const m = modelNamed(name);
    const n = Math.min(count, set.count);
    const u = worker.lab.codeUsage(testCodes(m, set, n, 500), m.vqState().K);
    return { counts: Array.from(u.counts), used: u.used, dead: u.dead, perplexity: u.perplexity, images: n };
  },
  // Prior samples drawn cell by cell; posts a 'priorFrame' event per `every` cells with the partial
  // grids (unsampled cells hold the background code) and their decodings. Returns the final grids and
  // images. A class-conditional prior draws class `pclass` for every grid, or (pclass -1) the classes
  // in turn.
  async priorSample({ name, count, temperature, seed, animate = true, every = 1, token, pclass = -1 }) {
    const m = modelNamed(name);
    const { prior } = worker;
    if (!prior) throw new Error('the VQ-VAE prior is not loaded');
    const { H, W, classes } = prior.info();
    const G = H * W;
    const fill = backgroundCode(m);
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
  // `count` grids of uniformly random codes drawn by the core with `seed` (as `latentlab sample
  // --uniform-codes --seed` draws them), and their decodings.
  uniformCodes({ name, count, seed }) {
    const m = modelNamed(name);
    const { K, grid } = m.vqState();
    const codes = worker.lab.uniformCodes(count, grid * grid, K, seed);
    return { codes, images: m.decode(codes) };
  },
};
