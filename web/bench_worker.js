// The Web Worker of bench.html: the page's model ops (worker/models.js, so `init` loads the module) and
// the benchmark op, over the page worker's protocol. The benchmark lives here, with bench.html and
// bench/browser_bench.mjs (which drives both in headless Chromium), not in the page's worker.
import { dataset, pixelsOf } from './worker/data.js';
import { modelOps, worker } from './worker/models.js';
import { post, serve, yieldToMessages } from './worker/protocol.js';

// Training images/s of a fresh `model` kind at `batch` on the MNIST training set for `seconds`, and
// single-image reconstruction latency (median over 40 groups of 10 calls, measured here in the worker:
// no message passing). Same fields as `latentlab bench --json`.
async function bench({ model = 'vae', batch = 128, seconds = 10, data = 'mnist', baseline = true }) {
  const { lab } = worker;
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
}

serve({ ...modelOps, bench });
