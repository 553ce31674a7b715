// Speed measurements shared by `latentlab bench` and bench/bench_wasm.cpp (which also runs compiled to
// wasm under node): training images/s, single-image reconstruction latency, and the bare GEMM floor of
// a training step. Returns figures, never prints.
#pragma once
#include <string>
#include <vector>

#include "core/io/idx.h"
#include "core/models/model.h"
#include "core/base/status.h"
#include "core/backends/xnnpack_infer.h"

namespace ll {

struct TrainSpeed {
  double images_per_s = 0.0;       // median over windows of about 0.25 s
  double images_per_s_best = 0.0;  // the best window (least disturbed by other work)
  int windows = 0;
};

// MNIST's training set when found (data_paths.h), else 2048 images of uniform noise; `source` says which.
Dataset speed_data(std::string* source);

// Trains a fresh model of `config` (seed 1) on `data` at batch B for at least `seconds` after a
// warm-up of 3 steps, with the current GEMM backend.
Status measure_training(const ModelConfig& config, const Dataset& data, int B, double seconds,
                        TrainSpeed* out);

// Median milliseconds of one single-image forward pass (posterior mean / nearest codes) over `runs`, by
// the core: measure_inference with the core alone and no batch figure.
Status measure_reconstruction_ms(const ModelConfig& config, const Dataset& data, int runs, double* ms);

// Forward-only reconstruction of a fresh model of `config` (seed 1) through each of `backends`:
// latency_ms = the median of `runs` single-image reconstructions of the first image (after 10 warm-ups);
// images_per_s = the median over windows of about 0.1 s, `seconds` in all per backend, of reconstructions
// of the first B images at once (skipped when seconds is 0). The core runs Model::forward with
// ZMode::kMean (what every tool reconstructs with, loss terms included); XNNPACK its operators with a
// pool of `threads` (the core's threads are whatever set_num_threads made them). The backends take
// turns (ten rounds of single images, then batch windows in turn), so a drift in the machine's speed
// hits them alike: only such in-run ratios mean much on a shared machine. kXnnpack needs a build with
// XNNPACK and a kind it takes (an error otherwise).
struct InferenceSpeed {
  double latency_ms = 0.0;
  double images_per_s = 0.0;
};
Status measure_inference(const ModelConfig& config, const Dataset& data, const std::vector<InferenceBackend>& backends,
                         int B, double seconds, int runs, int threads, std::vector<InferenceSpeed>* out);

// Records the GEMM calls of one training step of a fresh model at batch B, then times those products
// alone on scratch buffers (best of 5 windows): seconds per step, and the step's GEMM flops.
Status measure_step_gemm_floor(const ModelConfig& config, const Dataset& data, int B, double min_seconds,
                               double* seconds_per_step, double* flops_per_step);

// LATENTLAB_GEMM (scalar, eigen, openblas, avx2, avx512 or auto; unset: auto) forces gemm_f32's backend;
// an unknown name, or one this build or CPU lacks, is an error naming the ones available.
Status apply_gemm_env();
std::string gemm_available_names();  // "auto, scalar, eigen, ..." for this build and CPU
// The GEMM setup as one JSON object: {"mode", "cpu", "isa", "openblas_core", "available": [...],
// "choices": [{"ta", "tb", "m_max", "n_max", "k_max", "threads", "shape": [M, N, K], "backend",
// "gflops": {backend: GFLOP/s, ...}}, ...] (the classes measured so far under auto), "measure_ms"}.
std::string gemm_report_json();
// The same as lines of text (for --version).
std::string gemm_report_text();

// The GEMM choices kept across runs (core/kernels/kernels.h, gemm_choices_to_text): under
// LATENTLAB_GEMM=auto, each run starts from the classes earlier runs on this CPU and build measured
// steadily, and adds those it measured. The file: LATENTLAB_GEMM_CACHE (a path, or "off"), else
// $XDG_CACHE_HOME/latentlab/gemm-choices-<signature hash>.txt, else ~/.cache/...; "" when off.
std::string gemm_cache_path();
// Reads the file if there is one; a file that is malformed or of another CPU or build is ignored with
// one note on stderr (and replaced by save_gemm_cache).
void load_gemm_cache();
// Writes the file (whole, then renamed over the old one) when this run measured a class steadily.
void save_gemm_cache();

}  // namespace ll
