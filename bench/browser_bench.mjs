#!/usr/bin/env node
// The browser benchmark (issues 4 and 5), in Debian's headless Chromium: builds the page, serves it on
// 127.0.0.1 and measures, in one run of one browser:
//   - bench.html: training images/s at batch 128 and single-image reconstruction latency of the MLP VAE
//     and the conv VQ-VAE in the page's worker, and its wasm memory;
//   - TensorFlow.js 4.22 (WebAssembly backend) training the same MLP VAE (bench/tfjs_vae.html): the
//     in-run baseline the VAE figure is divided by;
//   - the demo page: drawing to updated reconstructions of every model on screen (median per stroke
//     event), and the longest main-thread task while training and sampling run.
// The VAE and TensorFlow.js take turns, --rounds runs each (default 5): medians, min-max and quartiles.
// Prints one JSON object (and writes it to --out FILE if given), naming the CPU and its instruction set.
//   node bench/browser_bench.mjs [--seconds 10] [--rounds 5] [--wasm build/wasm-release] [--out file.json]
//   node bench/browser_bench.mjs --memory-seconds 600      (the conv VQ-VAE's wasm memory over 10 minutes)
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { createServer } from '../scripts/serve.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, def) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : def; };
const seconds = Number(arg('--seconds', 10));
const wasmDir = path.resolve(root, arg('--wasm', 'build/wasm-release'));
const site = path.join(wasmDir, 'web');
const built = spawnSync(process.execPath, [path.join(root, 'scripts/build_web.mjs'), '--out', site, '--wasm', wasmDir], { encoding: 'utf8' });
if (built.status !== 0) { console.error(built.stdout + built.stderr); process.exit(1); }

// The site, plus TensorFlow.js under /tfjs/ and the baseline page under /bench/.
const page = createServer(site);
const tfjs = { 'tf.min.js': '@tensorflow/tfjs/dist/tf.min.js', 'tf-backend-wasm.min.js': '@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js' };
for (const f of ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm']) tfjs[f] = `@tensorflow/tfjs-backend-wasm/dist/${f}`;
const server = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x');
  if (u.pathname.startsWith('/tfjs/') || u.pathname === '/bench/tfjs_vae.html') {
    const file = u.pathname === '/bench/tfjs_vae.html' ? path.join(root, 'bench/tfjs_vae.html') : path.join(root, 'node_modules', tfjs[u.pathname.slice(6)] || '-');
    if (!fs.existsSync(file)) { res.writeHead(404).end(); return; }
    const type = file.endsWith('.wasm') ? 'application/wasm' : file.endsWith('.html') ? 'text/html' : 'text/javascript';
    res.writeHead(200, { 'content-type': type });
    fs.createReadStream(file).pipe(res);
    return;
  }
  page.emit('request', req, res);
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}`;

const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'latentlab-bench-'));
const browser = await chromium.launchPersistentContext(userDir, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, viewport: { width: 1300, height: 950 },
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

// --memory-seconds S: only the conv VQ-VAE, trained on full MNIST for S seconds (issue 4: wasm memory at
// most 160 MB and no growth over 10 minutes), its memory at 10 s, each minute and at the peak.
const memorySeconds = Number(arg('--memory-seconds', 0));

async function measure(url) {
  const p = await browser.newPage();
  await p.goto(base + url);
  await p.waitForFunction(() => window.benchResult, null, { timeout: (Math.max(seconds, memorySeconds) + 240) * 1000 });
  const r = await p.evaluate(() => window.benchResult);
  await p.close();
  if (r.error) throw new Error(`${url}: ${r.error}`);
  return r;
}

// The machine, named in every result: CPU model and the widest x86 vector instruction set it has.
const cpuFlags = (() => { try { return (fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m) || ['', ''])[1].split(' '); } catch { return []; } })();
const isa = cpuFlags.includes('avx512f') ? 'avx512f' : cpuFlags.includes('avx2') && cpuFlags.includes('fma') ? 'avx2+fma' : cpuFlags.length ? 'x86-64 baseline' : 'unknown';
const result = { date: new Date().toISOString(), chromium: browser.browser()?.version(), seconds, cpu: os.cpus()[0]?.model, isa, cores: os.cpus().length };
// Closes the browser and the server, writes --out, prints the JSON object.
async function finish() {
  await browser.close();
  server.close();
  fs.rmSync(userDir, { recursive: true, force: true });
  const out = arg('--out');
  if (out) fs.writeFileSync(out, JSON.stringify(result, null, 2));
  console.log(JSON.stringify(result, null, 2));
}
if (memorySeconds > 0) {
  result.vqvae_memory = await measure(`/bench.html?model=vqvae&batch=128&seconds=${memorySeconds}&baseline=0`);
  await finish();
  const m = result.vqvae_memory;
  console.log(`\nconv VQ-VAE trained ${m.seconds.toFixed(0)} s (${m.steps} steps, ${Math.round(m.images_per_s)} images/s): wasm memory ${m.wasm_memory_start_mb} MB before, ${m.wasm_memory_after_10s_mb} MB at 10 s, peak ${m.wasm_memory_peak_mb} MB; per minute: ${m.wasm_memory_per_minute_mb.join(', ')}`);
  process.exit(0);
}
// LatentLab's MLP VAE and TensorFlow.js's take turns, --rounds times each (the side that starts
// alternates), so a change in the machine's load hits both alike; the figures are the medians, with the
// spread and every run. result.vae and result.tfjs_vae are each side's median run in full.
const rounds = Math.max(1, Number(arg('--rounds', 5)));
const spread = (xs) => {
  const v = [...xs].sort((a, b) => a - b);
  const at = (q) => v[Math.round(q * (v.length - 1))];
  return { median: v.length % 2 ? v[v.length >> 1] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2, min: v[0], max: v[v.length - 1], q1: at(0.25), q3: at(0.75), runs: xs };
};
const medianRun = (runs) => [...runs].sort((a, b) => a.images_per_s - b.images_per_s)[(runs.length - 1) >> 1];
const tfjsRuns = [], vaeRuns = [];
for (let r = 0; r < rounds; r++) {
  for (const side of r % 2 ? ['latentlab', 'tfjs'] : ['tfjs', 'latentlab']) {
    if (side === 'tfjs') tfjsRuns.push(await measure(`/bench/tfjs_vae.html?batch=128&seconds=${seconds}`));
    else vaeRuns.push(await measure(`/bench.html?model=vae&batch=128&seconds=${seconds}`));
  }
}
result.rounds = rounds;
result.vae_images_per_s = spread(vaeRuns.map((r) => r.images_per_s));
result.tfjs_vae_images_per_s = spread(tfjsRuns.map((r) => r.images_per_s));
result.vae_over_tfjs_per_round = vaeRuns.map((r, i) => r.images_per_s / tfjsRuns[i].images_per_s);
result.vae = medianRun(vaeRuns);
result.tfjs_vae = medianRun(tfjsRuns);
result.vae_over_tfjs = result.vae_images_per_s.median / result.tfjs_vae_images_per_s.median;
result.vqvae = await measure(`/bench.html?model=vqvae&batch=128&seconds=${seconds}`);

// The demo page: drawing latency and main-thread long tasks while training and sampling.
{
  const p = await browser.newPage();
  await p.addInitScript(() => {
    window.__longTasks = [];
    new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__longTasks.push(e.duration); }).observe({ type: 'longtask', buffered: true });
  });
  await p.goto(`${base}/`);
  await p.waitForFunction(() => document.body.dataset.ready === '1' && window.latentlab.metrics.priorSamples > 0, null, { timeout: 240000 });
  // The first view's prior samples: 16 grids cell by cell, each of the 49 steps decoded and drawn.
  result.prior_sample_16_grids_animated_ms = await p.evaluate(() => window.latentlab.metrics.priorSampleMs);
  await p.evaluate(() => { window.latentlab.metrics.drawLatencies.length = 0; window.latentlab.metrics.drawBreakdown.length = 0; window.__longTasks.length = 0; });
  const pad = await p.$('[data-testid=pad]');
  await pad.scrollIntoViewIfNeeded();
  const box = await pad.boundingBox();
  await p.click('[data-testid=clear]');
  for (let s = 0; s < 6; s++) {
    await p.mouse.move(box.x + 60 + s * 25, box.y + 50);
    await p.mouse.down();
    for (let i = 1; i <= 25; i++) { await p.mouse.move(box.x + 60 + s * 25 + i * 2, box.y + 50 + i * 7); await p.waitForTimeout(16); }
    await p.mouse.up();
  }
  const lat = (await p.evaluate(() => window.latentlab.metrics.drawLatencies)).sort((a, b) => a - b);
  const parts = await p.evaluate(() => window.latentlab.metrics.drawBreakdown);
  const med = (i) => { const v = parts.map((x) => x[i]).sort((a, b) => a - b); return Number(v[v.length >> 1].toFixed(2)); };
  const models = await p.$$eval('.recon-row', (r) => r.length);
  result.draw = { models, events: lat.length, median_ms: lat[lat.length >> 1], p90_ms: lat[Math.floor(lat.length * 0.9)],
    from_event_timestamp_median_ms: { preprocessed: med(0), worker_replied: med(1), rows_drawn: med(2), next_frame_started: med(3) }, long_tasks_while_drawing: await p.evaluate(() => window.__longTasks.slice()) };
  // Long tasks on the page's thread while the worker trains and the prior samples.
  await p.evaluate(() => { window.__longTasks.length = 0; });
  await p.click('[data-testid=train-start]');
  // Polled with plain evaluate calls, not waitForFunction: Playwright's own poller runs on the page's
  // main thread (a 60 ms task of its own was measured here), which would be counted as the page's.
  for (let t0 = Date.now(); !(await p.evaluate(() => window.latentlab.metrics.trainSteps > 0));) {
    if (Date.now() - t0 > 240000) throw new Error('training did not start');
    await p.waitForTimeout(100);
  }
  await p.click('[data-testid=resample]');
  await p.waitForTimeout(seconds * 1000);
  await p.click('[data-testid=train-pause]');
  const tasks = await p.evaluate(() => window.__longTasks.slice());
  result.main_thread = { seconds, long_tasks: tasks.length, longest_ms: tasks.length ? Math.max(...tasks) : 0 };
  await p.close();
}
await finish();
const range = (s) => `${Math.round(s.median)} (min ${Math.round(s.min)}, max ${Math.round(s.max)})`;
console.log(`\nMLP VAE training, batch 128, medians of ${rounds} interleaved runs each: LatentLab ${range(result.vae_images_per_s)} images/s, TensorFlow.js-wasm ${range(result.tfjs_vae_images_per_s)} (${result.vae_over_tfjs.toFixed(1)}x; per round ${result.vae_over_tfjs_per_round.map((x) => x.toFixed(1)).join(', ')})`);
console.log(`conv VQ-VAE training, batch 128: ${Math.round(result.vqvae.images_per_s)} images/s; single-image reconstruction: VAE ${result.vae.latency_ms.toFixed(3)} ms, VQ-VAE ${result.vqvae.latency_ms.toFixed(3)} ms`);
console.log(`drawing -> ${result.draw.models} reconstructions drawn (shown at the next frame): median ${result.draw.median_ms.toFixed(1)} ms from the pointer handler over ${result.draw.events} updates (from the event time stamp to the next frame: ${result.draw.from_event_timestamp_median_ms.next_frame_started} ms); longest main-thread task while training + sampling: ${result.main_thread.longest_ms} ms`);
console.log(`GEMM ${result.vae.batch}x784 * (400x784)^T: LatentLab ${result.vae.gemm[0].gflops[result.vae.gemm_backend].toFixed(1)} GFLOP/s (scalar ${result.vae.gemm[0].gflops.scalar.toFixed(1)}), TensorFlow.js XNNPACK matMul ${result.tfjs_vae.matmul_gflops.gflops.toFixed(1)} (${(100 * result.vae.gemm[0].gflops[result.vae.gemm_backend] / result.tfjs_vae.matmul_gflops.gflops).toFixed(0)}%)`);
console.log(`training over the scalar-GEMM baseline: VAE ${result.vae.ratio_to_scalar_gemm.toFixed(1)}x, VQ-VAE ${result.vqvae.ratio_to_scalar_gemm.toFixed(1)}x`);
console.log(`wasm memory peak: VAE ${result.vae.wasm_memory_peak_mb} MB, VQ-VAE ${result.vqvae.wasm_memory_peak_mb} MB`);
console.log(`PixelCNN prior: 16 grids sampled cell by cell on the page, each step decoded and drawn: ${(result.prior_sample_16_grids_animated_ms / 1000).toFixed(2)} s`);
