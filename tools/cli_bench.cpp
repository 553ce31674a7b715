// `latentlab bench`: training speed of one model kind at batch B, single-image reconstruction latency,
// and how close a training step is to its bare matrix products. With --json the output is one JSON
// object (for other tools):
//   {"model", "batch", "threads", "backend" (the GEMM mode: "auto" unless LATENTLAB_GEMM forces one),
//    "gemm" (speed.h, gemm_report_json: CPU model and instruction set, OpenBLAS's core, the measured
//    choice per shape class), "data", "seconds", "images_per_s" (median 0.25 s window),
//    "images_per_s_best", "step_ms", "latency_ms" (median single-image reconstruction),
//    "latency_ms_xnnpack", "xnnpack_latency_ratio" (core / XNNPACK: above 1 XNNPACK is faster),
//    "infer_batch", "infer_images_per_s" (forward-only reconstruction of a batch, core),
//    "infer_images_per_s_xnnpack", "xnnpack_infer_ratio" (XNNPACK / core: above 1 XNNPACK is faster),
//    "inference_default_single", "inference_default_batch" (what --inference auto picks: the faster here),
//    "gemm_floor_ms" (the step's GEMMs alone), "gemm_gflops" (their rate), "step_over_gemm_ratio"}
// The *_xnnpack figures and ratios are there when the build has XNNPACK and it takes the kind; the core
// and XNNPACK inference figures come from one interleaved measurement (speed.h, measure_inference).
// With --prior FILE (a PixelCNN prior) also "prior_sample_ms": 16 grids sampled cell by cell, as the page
// does (median of 5), and "prior_sample_ms_one_grid".
// The measurements themselves are in speed.cpp (shared with bench/bench_wasm.cpp).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>


#include "core/kernels/kernels.h"
#include "core/backends/xnnpack_infer.h"
#include "tools/cli.h"
#include "tools/speed.h"

namespace ll::cli {

namespace {

struct BenchOptions {
  std::string model = "vae", prior;
  int batch = 128, threads = 1, infer_batch = 128;
  double seconds = 3.0;
  bool json = false;
};

// Median milliseconds to sample `count` whole grids cell by cell (5 runs).
double prior_sampling_ms(Model& prior, int count) {
  prior.reserve(count);
  std::vector<float> codes(static_cast<size_t>(count) * prior.config().input);
  std::vector<int32_t> labels(static_cast<size_t>(count), 0);  // class 0 when the prior is conditional
  std::vector<double> ms;
  for (int run = 0; run < 5; run++) {
    Rng rng(static_cast<uint64_t>(run) + 1);
    const auto t0 = std::chrono::steady_clock::now();
    prior.sampler()->sample(codes.data(), count, 1.0f, rng, prior.conditioning() ? labels.data() : nullptr);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

int run_bench(const BenchOptions& o) {
  const int threads = set_num_threads(o.threads);
  ModelConfig config;
  config.kind = o.model;
  Status s = config.validate();
  if (!s.ok()) return fail(s);
  std::string source;
  Dataset data = speed_data(&source);
  TrainSpeed speed;
  s = measure_training(config, data, o.batch, o.seconds, &speed);
  if (!s.ok()) return fail(s);
  double floor_s = 0.0, flops = 0.0;
  std::vector<InferenceBackend> backends = {InferenceBackend::kCore};
  const bool xnnpack = xnnpack_built() && xnnpack_supports_kind(o.model);
  if (xnnpack) backends.push_back(InferenceBackend::kXnnpack);
  std::vector<InferenceSpeed> infer;
  s = measure_inference(config, data, backends, o.infer_batch, std::min(o.seconds, 1.0), 300, threads, &infer);
  if (s.ok()) s = measure_step_gemm_floor(config, data, o.batch, 0.5, &floor_s, &flops);
  if (!s.ok()) return fail(s);
  const double latency_ms = infer[0].latency_ms;
  // What `--inference auto` would pick here: the same rule (xnnpack_infer.h) on this run's measurements.
  const char* default_single = inference_backend_name(
      xnnpack ? faster_inference_backend(infer[1].latency_ms / latency_ms) : InferenceBackend::kCore);
  const char* default_batch = inference_backend_name(
      xnnpack ? faster_inference_backend(infer[0].images_per_s / infer[1].images_per_s) : InferenceBackend::kCore);
  double prior16_ms = -1.0, prior1_ms = -1.0;
  if (!o.prior.empty()) {
    std::unique_ptr<Model> prior;
    if (!(s = load_model_file(o.prior, &prior)).ok()) return fail(s);
    if (!prior->sampler()) return fail(o.prior + ": a '" + prior->config().kind + "' model has no sampler to time");
    prior16_ms = prior_sampling_ms(*prior, 16);
    prior1_ms = prior_sampling_ms(*prior, 1);
  }
  const double step_ms = 1e3 * o.batch / speed.images_per_s;
  const double ratio = step_ms / (1e3 * floor_s);
  const char* backend = gemm_backend_name(gemm_backend());
  if (o.json) {
    std::printf("{\"model\": \"%s\", \"batch\": %d, \"threads\": %d, \"backend\": \"%s\", \"gemm\": %s, "
                "\"data\": \"%s\", \"seconds\": %.3g, \"images_per_s\": %.1f, \"images_per_s_best\": %.1f, "
                "\"step_ms\": %.4f, \"latency_ms\": %.4f, ",
                o.model.c_str(), o.batch, threads, backend, gemm_report_json().c_str(), source.c_str(), o.seconds,
                speed.images_per_s,
                speed.images_per_s_best, step_ms, latency_ms);
    if (xnnpack)
      std::printf("\"latency_ms_xnnpack\": %.4f, \"xnnpack_latency_ratio\": %.3f, ", infer[1].latency_ms,
                  latency_ms / infer[1].latency_ms);
    std::printf("\"infer_batch\": %d, \"infer_images_per_s\": %.1f, ", o.infer_batch, infer[0].images_per_s);
    if (xnnpack)
      std::printf("\"infer_images_per_s_xnnpack\": %.1f, \"xnnpack_infer_ratio\": %.3f, ", infer[1].images_per_s,
                  infer[1].images_per_s / infer[0].images_per_s);
    std::printf("\"inference_default_single\": \"%s\", \"inference_default_batch\": \"%s\", "
                "\"gemm_floor_ms\": %.4f, \"gemm_gflops\": %.2f, \"step_over_gemm_ratio\": %.3f",
                default_single, default_batch, 1e3 * floor_s, flops / floor_s / 1e9, ratio);
    if (prior16_ms >= 0.0)
      std::printf(", \"prior_sample_ms\": %.2f, \"prior_sample_ms_one_grid\": %.2f", prior16_ms, prior1_ms);
    std::printf("}\n");
  } else {
    std::printf("%s, batch %d, %d thread%s, GEMM %s, data %s\n", o.model.c_str(), o.batch, threads,
                threads == 1 ? "" : "s", backend, source.c_str());
    std::printf("  training            %.0f images/s (best 0.25 s window %.0f), %.3f ms per step\n",
                speed.images_per_s, speed.images_per_s_best, step_ms);
    std::printf("  step GEMMs alone    %.3f ms (%.1f GFLOP/s); step / GEMM floor = %.2f\n", 1e3 * floor_s,
                flops / floor_s / 1e9, ratio);
    std::printf("  reconstruction      core: %.4f ms per single image (median of 300), %.0f images/s at batch %d\n",
                latency_ms, infer[0].images_per_s, o.infer_batch);
    if (xnnpack)
      std::printf("                      XNNPACK: %.4f ms (core/XNNPACK %.2fx), %.0f images/s (XNNPACK/core %.2fx)\n",
                  infer[1].latency_ms, latency_ms / infer[1].latency_ms, infer[1].images_per_s,
                  infer[1].images_per_s / infer[0].images_per_s);
    std::printf("  default inference   %s for single images, %s for batch %d\n", default_single, default_batch,
                o.infer_batch);
    if (prior16_ms >= 0.0)
      std::printf("  prior sampling      %.1f ms for 16 grids cell by cell, %.1f ms for one (median of 5)\n", prior16_ms,
                  prior1_ms);
    std::printf("%s\n", gemm_report_text().c_str());
  }
  return 0;
}

}  // namespace

Action add_bench(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "Measure training images/s, single-image reconstruction latency, forward-only batch inference "
               "(core and, where built, XNNPACK) and the step's GEMM floor (MNIST when installed, else "
               "synthetic images)");
  cmd->add_option("--model", o->model, model_kinds_help())->check(model_kind_validator());
  cmd->add_option("--batch", o->batch, "Batch size (default 128)")->check(CLI::Range(1, 100000));
  cmd->add_option("--seconds", o->seconds, "Training time to measure (default 3)")->check(CLI::Range(0.1, 3600.0));
  cmd->add_option("--infer-batch", o->infer_batch, "Batch size of the forward-only inference figures (default 128)")
      ->check(CLI::Range(1, 10000));
  cmd->add_option("--prior", o->prior, "A PixelCNN prior file: also time sampling 16 grids and one grid cell by cell");
  add_threads_option(cmd, &o->threads);
  cmd->add_flag("--json", o->json, "Print one JSON object");
  return [o] { return run_bench(*o); };
}

}  // namespace ll::cli
