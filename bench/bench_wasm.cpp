// Speed of the GEMM backends and of training, as a plain program (no Google Benchmark), so the same
// measurement runs natively and compiled to wasm under node:
//   node --no-experimental-fetch build/wasm-release/bench/bench_wasm.js [--seconds S] [--batch B]
// Prints, in one run:
//   - GFLOP/s of every available GEMM backend (scalar, eigen, wasmsimd; natively openblas, avx2, avx512
//     and auto) on the shapes the models use,
//     and each as a ratio to the scalar kernel (the in-run baseline);
//   - training images/s (forward, backward, Adam, the model's after-step update; Trainer on real MNIST
//     when found, else synthetic images) for the MLP VAE and the conv VQ-VAE at batch B, with each
//     fast backend, and the step time over the time of the same step's GEMMs alone (tools/speed.h);
//   - single-image reconstruction latency (median).
// Ratios are what to compare; raw figures on a shared machine are noisy.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/kernels/kernels.h"
#include "core/models/model.h"
#include "tools/speed.h"

namespace {

using namespace ll;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::vector<GemmBackend> backends() {
  std::vector<GemmBackend> out;
  // Natively also the own AVX2 / AVX-512 kernels where the CPU has them, and last the choice by
  // measurement (auto: the native default).
  for (GemmBackend b : {GemmBackend::kScalar, GemmBackend::kEigen, GemmBackend::kOpenBlas, GemmBackend::kAvx2,
                        GemmBackend::kAvx512, GemmBackend::kWasmSimd})
    if (gemm_backend_available(b)) out.push_back(b);
#if !defined(__wasm_simd128__)
  out.push_back(GemmBackend::kAuto);
#endif
  return out;
}

struct Shape {
  const char* what;
  bool ta, tb;
  int M, N, K;
};

// MLP VAE 784-400-20 at batch 128 (Linear: forward X W^T, input grad dY W, weight grad dY^T X), then
// the conv VQ-VAE's per-image im2col products (conv.cpp: forward W col, weight grad dY col^T, input
// grad W^T dY; ConvTranspose the other way round).
const Shape kShapes[] = {
    {"vae fc1 fwd    X*W^T", false, true, 128, 400, 784},
    {"vae fc5 dX     dY*W", false, false, 128, 400, 784},
    {"vae fc1 dW     dY^T*X", true, false, 400, 784, 128},
    {"vae fc21 fwd   X*W^T", false, true, 128, 20, 400},
    {"vq enc0 fwd    1->32 k4s2", false, false, 32, 196, 16},
    {"vq enc2 fwd    32->64 k4s2", false, false, 64, 49, 512},
    {"vq enc2 dW", false, true, 64, 512, 49},
    {"vq enc2 dX", true, false, 512, 49, 64},
    {"vq dec0 fwd    16->64 k3", false, false, 64, 49, 144},
    {"vq dec2 fwd    T 64->32 k4s2", true, false, 512, 49, 64},
    {"vq dec4 fwd    T 32->1 k4s2", true, false, 16, 196, 32},
};

// GFLOP/s of one backend on one shape: the best of 5 windows of at least min_s / 5 seconds (and two
// calls) each. The best window is the figure least disturbed by other work on a shared machine.
double gemm_gflops(GemmBackend backend, const Shape& s, double min_s) {
  const int rows_a = s.ta ? s.K : s.M, cols_a = s.ta ? s.M : s.K;
  const int rows_b = s.tb ? s.N : s.K, cols_b = s.tb ? s.K : s.N;
  std::vector<float> a(static_cast<size_t>(rows_a) * cols_a), b(static_cast<size_t>(rows_b) * cols_b),
      c(static_cast<size_t>(s.M) * s.N);
  Rng rng(5);
  rng.fill_uniform(a.data(), a.size(), -1.0f, 1.0f);
  rng.fill_uniform(b.data(), b.size(), -1.0f, 1.0f);
  set_gemm_backend(backend);
  auto call = [&] {
    gemm_f32(s.ta, s.tb, s.M, s.N, s.K, 1.0f, a.data(), cols_a, b.data(), cols_b, 0.0f, c.data(), s.N);
  };
  for (int i = 0; i < 3; i++) call();  // warm up (and let the wasm engine compile its optimised tier)
  double best = 0.0;
  for (int w = 0; w < 5; w++) {
    int reps = 0;
    auto t0 = Clock::now();
    double t = 0.0;
    while (reps < 2 || t < min_s / 5) {
      call();
      reps++;
      t = seconds_since(t0);
    }
    best = std::max(best, 2.0 * s.M * s.N * s.K * reps / t / 1e9);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3.0;
  int batch = 128;
  bool gemm = true, train = true;
  std::vector<std::string> kinds = {"vae", "vqvae"};
  std::string only;  // train with this backend only
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = std::atof(argv[++i]);
    else if (!std::strcmp(argv[i], "--batch") && i + 1 < argc) batch = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--no-gemm")) gemm = false;
    else if (!std::strcmp(argv[i], "--no-train")) train = false;
    else if (!std::strcmp(argv[i], "--model") && i + 1 < argc) kinds = {argv[++i]};
    else if (!std::strcmp(argv[i], "--backend") && i + 1 < argc) only = argv[++i];
    else {
      std::fprintf(stderr, "usage: bench_wasm [--seconds S] [--batch B] [--no-gemm] [--no-train] [--model NAME] [--backend NAME]\n");
      return 2;
    }
  }
  const std::vector<GemmBackend> all = backends();
  const GemmBackend fastest = all.back();
#if defined(__EMSCRIPTEN__)
  std::printf("build: wasm (single thread)\n");
#else
  std::printf("build: native\n");
#endif

  if (gemm) {
    std::printf("\nGEMM GFLOP/s, best of 5 windows (ratio to scalar)\n%-30s %5s %5s %5s", "shape", "M", "N", "K");
    for (GemmBackend b : all) std::printf(" %18s", gemm_backend_name(b));
    std::printf("\n");
    for (const Shape& s : kShapes) {
      std::printf("%-30s %5d %5d %5d", s.what, s.M, s.N, s.K);
      double base = 0.0;
      for (GemmBackend b : all) {
        double g = gemm_gflops(b, s, b == GemmBackend::kScalar ? 0.1 : 0.25);
        if (b == GemmBackend::kScalar) base = g;
        std::printf("   %6.2f (%6.1fx)", g, g / base);
      }
      std::printf("\n");
    }
  }

  if (train) {
    std::string source;
    Dataset data = speed_data(&source);
    std::printf("\nTraining at batch %d on %s, %.1f s each: median 0.25 s window (best window);\n"
                "step / GEMM floor = step time over the time of the same step's GEMMs alone\n",
                batch, source.c_str(), seconds);
    for (const std::string& kind : kinds) {
      ModelConfig config;
      config.kind = kind;
      for (GemmBackend b : all) {
        if (b == GemmBackend::kScalar) continue;  // far too slow to be interesting
        if (!only.empty() && only != gemm_backend_name(b)) continue;
        set_gemm_backend(b);
        TrainSpeed speed;
        double floor_s = 0.0, flops = 0.0;
        Status st = measure_training(config, data, batch, seconds, &speed);
        if (st.ok()) st = measure_step_gemm_floor(config, data, batch, 0.5, &floor_s, &flops);
        if (!st.ok()) {
          std::fprintf(stderr, "bench_wasm: %s\n", st.message().c_str());
          return 1;
        }
        std::printf("  %-6s %-9s %8.0f images/s (%.0f)   step / GEMM floor = %.2f   (GEMMs %.1f GFLOP/s)\n",
                    kind.c_str(), gemm_backend_name(b), speed.images_per_s, speed.images_per_s_best,
                    batch / speed.images_per_s / floor_s, flops / floor_s / 1e9);
      }
    }
    set_gemm_backend(fastest);
    std::printf("\nSingle-image reconstruction, median of 300 (%s)\n", gemm_backend_name(fastest));
    for (const std::string& kind : kinds) {
      ModelConfig config;
      config.kind = kind;
      double ms = 0.0;
      if (measure_reconstruction_ms(config, data, 300, &ms).ok()) std::printf("  %-6s %.3f ms\n", kind.c_str(), ms);
    }
  }
  return 0;
}
