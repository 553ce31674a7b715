// Speed measurements; see speed.h.
#include "tools/speed.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <vector>

#include <unistd.h>  // getpid

#include "core/io/file_io.h"
#include "core/io/json.h"
#include "core/kernels/kernels.h"
#include "core/train/trainer.h"
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
  std::vector<InferenceSpeed> speed;
  Status s = measure_inference(config, data, {InferenceBackend::kCore}, 1, 0.0, runs, 1, &speed);
  if (s.ok()) *ms = speed[0].latency_ms;
  return s;
}

Status measure_inference(const ModelConfig& config, const Dataset& data, const std::vector<InferenceBackend>& backends,
                         int B, double seconds, int runs, int threads, std::vector<InferenceSpeed>* out) {
  std::unique_ptr<Model> model;
  Status s = create_model(config, &model);
  if (!s.ok()) return s;
  Rng rng(1);
  model->init(rng);
  model->reserve(B);
  if (data.size() < B) return Status::error("inference speed: batch " + std::to_string(B) + " needs more than the " +
                                  std::to_string(data.size()) + " images here");
  std::vector<float> x(static_cast<size_t>(B) * config.input);
  data.to_float(nullptr, 0, B, x.data());
  // One runner per backend: reconstructs the first `count` images (1 or B).
  const size_t nb = backends.size();
  std::vector<std::function<Status(int)>> run(nb);
#if defined(LATENTLAB_HAVE_XNNPACK)
  // Separate objects for the two batch sizes: switching one object between them would re-set its
  // operators up on every call.
  std::vector<std::unique_ptr<XnnpackInference>> xnn_one(nb), xnn_batch(nb);
#endif
  for (size_t i = 0; i < nb; i++) {
    if (backends[i] == InferenceBackend::kCore) {
      run[i] = [&](int count) {
        model->forward(x.data(), x.data(), count, rng, ZMode::kMean);
        return Status();
      };
      continue;
    }
#if defined(LATENTLAB_HAVE_XNNPACK)
    xnn_one[i] = std::make_unique<XnnpackInference>();
    xnn_batch[i] = std::make_unique<XnnpackInference>();
    if (!(s = xnn_one[i]->setup(*model, 1, threads)).ok() || !(s = xnn_batch[i]->setup(*model, B, threads)).ok())
      return s;
    XnnpackInference* one = xnn_one[i].get();
    XnnpackInference* batch = xnn_batch[i].get();
    run[i] = [&x, one, batch](int count) { return (count == 1 ? one : batch)->run(x.data(), count); };
#else
    return Status::error("inference speed: this build has no XNNPACK backend");
#endif
  }
  // Single images: 10 warm-ups each, then ten rounds in turn.
  std::vector<std::vector<double>> times(nb);
  for (size_t i = 0; i < nb; i++)
    for (int w = 0; w < 10; w++)
      if (!(s = run[i](1)).ok()) return s;
  const int rounds = 10, per_round = std::max(1, runs / rounds);
  for (int r = 0; r < rounds; r++)
    for (size_t i = 0; i < nb; i++)
      for (int k = 0; k < per_round; k++) {
        auto t0 = Clock::now();
        s = run[i](1);
        times[i].push_back(seconds_since(t0) * 1e3);
        if (!s.ok()) return s;
      }
  out->assign(nb, InferenceSpeed());
  for (size_t i = 0; i < nb; i++) {
    auto& t = times[i];
    std::nth_element(t.begin(), t.begin() + t.size() / 2, t.end());
    (*out)[i].latency_ms = t[t.size() / 2];
  }
  if (seconds <= 0.0) return Status();
  // Batches: one warm-up each, then windows of about 0.1 s in turn.
  std::vector<std::vector<double>> rates(nb);
  for (size_t i = 0; i < nb; i++)
    if (!(s = run[i](B)).ok()) return s;
  const int windows = std::max(3, static_cast<int>(seconds / 0.1));
  for (int w = 0; w < windows; w++)
    for (size_t i = 0; i < nb; i++) {
      int reps = 0;
      auto t0 = Clock::now();
      double t = 0.0;
      while (reps < 1 || t < 0.1) {
        if (!(s = run[i](B)).ok()) return s;
        reps++;
        t = seconds_since(t0);
      }
      rates[i].push_back(static_cast<double>(reps) * B / t);
    }
  for (size_t i = 0; i < nb; i++) {
    auto& r = rates[i];
    std::nth_element(r.begin(), r.begin() + r.size() / 2, r.end());
    (*out)[i].images_per_s = r[r.size() / 2];
  }
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

namespace {
constexpr GemmBackend kNamedBackends[] = {GemmBackend::kAuto,     GemmBackend::kScalar, GemmBackend::kEigen,
                                          GemmBackend::kOpenBlas, GemmBackend::kAvx2,   GemmBackend::kAvx512,
                                          GemmBackend::kWasmSimd};
std::string format(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}
}  // namespace

std::string gemm_available_names() {
  std::string s;
  for (GemmBackend b : kNamedBackends)
    if (gemm_backend_available(b)) s += (s.empty() ? "" : ", ") + std::string(gemm_backend_name(b));
  return s;
}

Status apply_gemm_env() {
  const char* value = std::getenv("LATENTLAB_GEMM");
  if (value == nullptr) return Status();
  GemmBackend b = GemmBackend::kAuto;
  if (!gemm_backend_from_name(value, &b))
    return Status::error(std::string("LATENTLAB_GEMM='") + value + "' is not a GEMM backend: expected one of " +
                         gemm_available_names());
  if (!gemm_backend_available(b))
    return Status::error(std::string("LATENTLAB_GEMM='") + value + "': this build or CPU has no such backend (" +
                         cpu_isa_name() + "); available: " + gemm_available_names());
  set_gemm_backend(b);
  return Status();
}

std::string gemm_report_json() {
  std::string s = "{\"mode\": " + json_quote(gemm_backend_name(gemm_backend())) +
                  ", \"cpu\": " + json_quote(cpu_model_name()) + ", \"isa\": " + json_quote(cpu_isa_name()) +
                  ", \"openblas_core\": " + json_quote(openblas_core_name()) + ", \"available\": [";
  bool first = true;
  for (GemmBackend b : kNamedBackends)
    if (gemm_backend_available(b)) {
      s += (first ? "" : ", ") + json_quote(gemm_backend_name(b));
      first = false;
    }
  s += "], \"choices\": [";
  double ms = 0.0;
  first = true;
  for (const GemmChoice& c : gemm_auto_choices()) {
    s += first ? "" : ", ";
    first = false;
    s += "{\"ta\": " + std::to_string(c.trans_a) + ", \"tb\": " + std::to_string(c.trans_b) +
         ", \"m_max\": " + std::to_string(c.m_max) + ", \"n_max\": " + std::to_string(c.n_max) +
         ", \"k_max\": " + std::to_string(c.k_max) + ", \"threads\": " + std::to_string(c.threads) +
         ", \"shape\": [" + std::to_string(c.M) + ", " + std::to_string(c.N) + ", " + std::to_string(c.K) +
         "], \"backend\": " + json_quote(gemm_backend_name(c.backend)) +
         ", \"one_thread\": " + (c.one_thread ? "true" : "false") + ", \"gflops\": {";
    for (size_t i = 0; i < c.gflops.size(); i++)
      s += (i ? ", " : "") + json_quote(gemm_backend_name(c.gflops[i].first)) + ": " +
           format("%.2f", c.gflops[i].second);
    s += "}";
    if (!c.gflops_one_thread.empty()) {
      s += ", \"gflops_one_thread\": {";
      for (size_t i = 0; i < c.gflops_one_thread.size(); i++)
        s += (i ? ", " : "") + json_quote(gemm_backend_name(c.gflops_one_thread[i].first)) + ": " +
             format("%.2f", c.gflops_one_thread[i].second);
      s += "}";
    }
    s += ", \"measure_ms\": " + format("%.3f", c.measure_ms) + ", \"cached\": " + (c.cached ? "true" : "false") + "}";
    ms += c.measure_ms;
  }
  const std::string cache = gemm_cache_path();
  return s + "], \"measure_ms\": " + format("%.2f", ms) + ", \"cache\": " + json_quote(cache.empty() ? "off" : cache) +
         "}";
}

std::string gemm_report_text() {
  std::string s = "CPU: " + (cpu_model_name().empty() ? std::string("unknown") : cpu_model_name()) + " (" +
                  cpu_isa_name() + ")\nGEMM: " + gemm_backend_name(gemm_backend()) + " (available: " +
                  gemm_available_names() + ")";
  if (!openblas_core_name().empty()) s += "\nOpenBLAS core: " + openblas_core_name();
  const std::vector<GemmChoice> choices = gemm_auto_choices();
  if (!choices.empty()) s += "\nMeasured choices (class: M<=, N<=, K<=, transposes, threads -> backend; GFLOP/s):";
  for (const GemmChoice& c : choices) {
    s += "\n  " + std::to_string(c.m_max) + " x " + std::to_string(c.n_max) + " x " + std::to_string(c.k_max) +
         (c.trans_a ? " A^T" : " A") + (c.trans_b ? " B^T" : " B") + ", " + std::to_string(c.threads) + "t -> " +
         gemm_backend_name(c.backend) + (c.one_thread ? " on one thread" : "") + ";";
    for (const auto& [b, g] : c.gflops) s += std::string(" ") + gemm_backend_name(b) + " " + format("%.1f", g);
    for (const auto& [b, g] : c.gflops_one_thread)
      s += std::string(" ") + gemm_backend_name(b) + "(1t) " + format("%.1f", g);
    if (c.cached) s += " (kept from an earlier run)";
  }
  if (gemm_backend() == GemmBackend::kAuto) {
    const std::string cache = gemm_cache_path();
    s += "\nChoices kept in: " + (cache.empty() ? std::string("nothing (LATENTLAB_GEMM_CACHE=off)") : cache);
  }
  return s;
}

}  // namespace ll

namespace ll {

// ---- the GEMM choices kept across runs ----
namespace {
bool g_cache_loaded = false;

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}
}  // namespace

std::string gemm_cache_path() {
  const char* forced = std::getenv("LATENTLAB_GEMM_CACHE");
  if (forced != nullptr && std::string(forced) == "off") return "";
  if (forced != nullptr && *forced != '\0') return forced;
  std::string dir;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg == '/') {
    dir = xdg;
  } else if (const char* home = std::getenv("HOME"); home != nullptr && *home == '/') {
    dir = std::string(home) + "/.cache";
  } else {
    return "";
  }
  uint64_t h = 1469598103934665603ull;  // FNV-1a of the signature: one file per CPU and build
  for (unsigned char c : gemm_choices_signature()) h = (h ^ c) * 1099511628211ull;
  return dir + "/latentlab/gemm-choices-" + hex64(h) + ".txt";
}

void load_gemm_cache() {
  if (g_cache_loaded || gemm_backend() != GemmBackend::kAuto) return;
  g_cache_loaded = true;
  const std::string path = gemm_cache_path();
  std::error_code ec;
  if (path.empty() || !std::filesystem::exists(path, ec)) return;
  std::vector<uint8_t> bytes;
  Status s = read_file(path, &bytes, uint64_t(1) << 20);
  if (s.ok()) s = gemm_choices_from_text(std::string(bytes.begin(), bytes.end()));
  if (!s.ok())
    std::fprintf(stderr, "latentlab: note: ignoring the GEMM choices in %s (%s); measuring again\n", path.c_str(),
                 s.message().c_str());
}

void save_gemm_cache() {
  if (gemm_backend() != GemmBackend::kAuto) return;
  const std::string path = gemm_cache_path();
  if (path.empty()) return;
  bool measured = false;
  for (const GemmChoice& c : gemm_auto_choices()) measured = measured || (c.steady && !c.cached);
  if (!measured) return;
  // Written whole to a temporary file that then replaces the old one, so that a reader (another
  // latentlab started meanwhile) sees the old file or the new one, never half of one. A cache that
  // cannot be written (a read-only home) is no error: the next run measures again.
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  const std::string tmp = path + ".tmp." + std::to_string(static_cast<long>(getpid()));
  const std::string text = gemm_choices_to_text();
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return;
  const bool written = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !written || std::rename(tmp.c_str(), path.c_str()) != 0) std::remove(tmp.c_str());
}

}  // namespace ll
