// Speed measurements; see speed.h.
#include "tools/speed.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

#include "core/file_io.h"
#include "core/kernels.h"
#include "core/trainer.h"
#include "tools/data_paths.h"

namespace ll {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

Status make_trainer(const ModelConfig& config, const Dataset& data, int B, std::unique_ptr<Model>* model,
                    Trainer* trainer) {
  Status s = create_model(config, model);
  if (!s.ok()) return s;
  Rng rng(1);
  (*model)->init(rng);
  TrainSettings settings;
  settings.batch = B;
  return trainer->setup(model->get(), &data, settings);
}

struct GemmCall {
  bool ta, tb;
  int M, N, K;
  float beta;
};

void record_gemm(void* ctx, bool ta, bool tb, int M, int N, int K, float beta) {
  static_cast<std::vector<GemmCall>*>(ctx)->push_back({ta, tb, M, N, K, beta});
}

}  // namespace

Dataset speed_data(std::string* source) {
  Dataset d;
  std::string dir;
  if (data_dir("mnist", &dir).ok() && load_idx_dataset(dir, "train", &d).ok()) {
    *source = "mnist";
    return d;
  }
  ImageSet images;
  images.count = 2048, images.rows = 28, images.cols = 28;
  images.pixels.resize(static_cast<size_t>(images.count) * 28 * 28);
  LabelSet labels;
  labels.count = images.count;
  labels.labels.assign(images.count, 0);
  Rng rng(3);
  for (auto& p : images.pixels) p = static_cast<uint8_t>(rng.below(256));
  make_dataset(std::move(images), std::move(labels), &d);
  *source = "synthetic";
  return d;
}

Status measure_training(const ModelConfig& config, const Dataset& data, int B, double seconds,
                        TrainSpeed* out) {
  std::unique_ptr<Model> model;
  Trainer trainer;
  Status s = make_trainer(config, data, B, &model, &trainer);
  if (!s.ok()) return s;
  LossTotals totals;
  for (int i = 0; i < 3; i++) {  // warm up (and let a wasm engine compile its optimised tier)
    s = trainer.step(&totals);
    if (!s.ok()) return s;
  }
  std::vector<double> windows;
  auto start = Clock::now();
  while (windows.size() < 3 || seconds_since(start) < seconds) {
    int steps = 0;
    auto t0 = Clock::now();
    double t = 0.0;
    while (steps < 1 || t < 0.25) {
      s = trainer.step(&totals);
      if (!s.ok()) return s;
      steps++;
      t = seconds_since(t0);
    }
    windows.push_back(static_cast<double>(steps) * B / t);
  }
  std::sort(windows.begin(), windows.end());
  out->images_per_s = windows[windows.size() / 2];
  out->images_per_s_best = windows.back();
  out->windows = static_cast<int>(windows.size());
  return Status();
}

Status measure_reconstruction_ms(const ModelConfig& config, const Dataset& data, int runs, double* ms) {
  std::unique_ptr<Model> model;
  Status s = create_model(config, &model);
  if (!s.ok()) return s;
  Rng rng(1);
  model->init(rng);
  model->reserve(1);
  std::vector<float> x(config.input);
  data.to_float(nullptr, 0, 1, x.data());
  for (int i = 0; i < 10; i++) model->forward(x.data(), x.data(), 1, rng, ZMode::kMean);
  std::vector<double> times;
  for (int i = 0; i < runs; i++) {
    auto t0 = Clock::now();
    model->forward(x.data(), x.data(), 1, rng, ZMode::kMean);
    times.push_back(seconds_since(t0) * 1e3);
  }
  std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
  *ms = times[times.size() / 2];
  return Status();
}

Status measure_step_gemm_floor(const ModelConfig& config, const Dataset& data, int B, double min_seconds,
                               double* seconds_per_step, double* flops_per_step) {
  std::unique_ptr<Model> model;
  Trainer trainer;
  Status s = make_trainer(config, data, B, &model, &trainer);
  if (!s.ok()) return s;
  std::vector<GemmCall> calls;
  LossTotals totals;
  set_gemm_trace(record_gemm, &calls);
  s = trainer.step(&totals);
  set_gemm_trace(nullptr, nullptr);
  if (!s.ok()) return s;
  // Scratch operands as large as the largest call needs; contents do not matter (finite values).
  size_t na = 1, nb = 1, nc = 1;
  double flops = 0.0;
  for (const GemmCall& c : calls) {
    na = std::max(na, static_cast<size_t>(c.M) * c.K);
    nb = std::max(nb, static_cast<size_t>(c.K) * c.N);
    nc = std::max(nc, static_cast<size_t>(c.M) * c.N);
    flops += 2.0 * c.M * c.N * c.K;
  }
  std::vector<float> a(na, 0.01f), b(nb, 0.01f), c(nc, 0.0f);
  auto step = [&] {
    for (const GemmCall& g : calls)
      gemm_f32(g.ta, g.tb, g.M, g.N, g.K, 1.0f, a.data(), g.ta ? g.M : g.K, b.data(), g.tb ? g.K : g.N,
               g.beta, c.data(), g.N);
  };
  step();
  double best = 0.0;
  for (int w = 0; w < 5; w++) {
    int reps = 0;
    auto t0 = Clock::now();
    double t = 0.0;
    while (reps < 1 || t < min_seconds / 5) {
      step();
      reps++;
      t = seconds_since(t0);
    }
    best = best == 0.0 ? t / reps : std::min(best, t / reps);
  }
  *seconds_per_step = best;
  *flops_per_step = flops;
  return Status();
}

}  // namespace ll
