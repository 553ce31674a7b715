// Training-speed benchmark (a separate target, never a timed test). Measures, in one run:
//   - images/s of one full MLP training step (forward, backward, Adam) at batch B, for the VAE and AE;
//   - the bare matrix products that one VAE step needs (the same GEMM shapes, nothing else): the floor;
//   - and prints step time / GEMM time, how close the step is to its GEMM floor.
// Ratios are what to compare across machines; raw numbers on these shared machines are noisy.
// Usage: bench_train [--threads=N] [google benchmark flags]
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/kernels/kernels.h"
#include "core/models/model.h"
#include "core/train/trainer.h"

namespace {

using namespace ll;

struct Setup {
  std::unique_ptr<Model> model;
  Adam adam;
  std::vector<float> x;
  Rng rng{1};
};

Setup make(const char* kind, int B) {
  Setup s;
  ModelConfig c;
  c.kind = kind;
  create_model(c, &s.model);
  s.model->reserve(B);
  s.model->init(s.rng);
  s.x.resize(static_cast<size_t>(B) * c.input);
  s.rng.fill_uniform(s.x.data(), s.x.size(), 0.0f, 1.0f);
  return s;
}

void train_step(benchmark::State& state, const char* kind) {
  const int B = static_cast<int>(state.range(0));
  Setup s = make(kind, B);
  for (auto _ : state) {
    s.model->forward(s.x.data(), s.x.data(), B, s.rng, ZMode::kSample);
    s.model->params().zero_grad();
    s.model->backward(1.0f);
    s.adam.step(s.model->params());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * B);
}

void BM_VaeTrainStep(benchmark::State& state) { train_step(state, "vae"); }
void BM_AeTrainStep(benchmark::State& state) { train_step(state, "ae"); }

// Exactly the products of one MLP VAE step: for each Linear(C -> OC) the forward X W^T, the weight
// gradient dY^T X, and the input gradient dY W (all but the first layer).
void BM_VaeStepGemmFloor(benchmark::State& state) {
  const int B = static_cast<int>(state.range(0));
  struct L { int C, OC; bool dinp; };
  const L layers[] = {{784, 400, false}, {400, 20, true}, {400, 20, true}, {20, 400, true}, {400, 784, true}};
  std::vector<float> a(B * 784, 0.5f), w(784 * 400, 0.01f), y(B * 784), dw(784 * 400);
  for (auto _ : state) {
    for (const L& l : layers) {
      gemm_f32(false, true, B, l.OC, l.C, 1.0f, a.data(), l.C, w.data(), l.C, 0.0f, y.data(), l.OC);
      gemm_f32(true, false, l.OC, l.C, B, 1.0f, y.data(), l.OC, a.data(), l.C, 1.0f, dw.data(), l.C);
      if (l.dinp) gemm_f32(false, false, B, l.C, l.OC, 1.0f, y.data(), l.OC, w.data(), l.C, 1.0f, a.data(), l.C);
    }
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * B);
  double flops = 0;
  for (const L& l : layers) flops += 2.0 * B * l.C * l.OC * (l.dinp ? 3 : 2);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}

// Single-image reconstruction latency (posterior mean), the interactive case.
void BM_VaeReconstructOne(benchmark::State& state) {
  Setup s = make("vae", 1);
  for (auto _ : state) {
    s.model->forward(s.x.data(), s.x.data(), 1, s.rng, ZMode::kMean);
    benchmark::DoNotOptimize(s.model->reconstruction());
  }
}

BENCHMARK(BM_VaeTrainStep)->Arg(128)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_VaeStepGemmFloor)->Arg(128)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_AeTrainStep)->Arg(128)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_VaeReconstructOne)->Unit(benchmark::kMicrosecond)->MinTime(1.0);

// Keeps each benchmark's time per iteration so the ratio can be printed after the table.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  std::map<std::string, double> ms;
  std::map<std::string, double> items_per_s;
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      ms[r.benchmark_name()] = r.GetAdjustedRealTime();
      auto it = r.counters.find("items_per_second");
      if (it != r.counters.end()) items_per_s[r.benchmark_name()] = it->second;
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

}  // namespace

int main(int argc, char** argv) {
  int threads = 1;
  std::vector<char*> args;
  for (int i = 0; i < argc; i++) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0) threads = std::atoi(argv[i] + 10);
    else args.push_back(argv[i]);
  }
  int n = static_cast<int>(args.size());
  ll::set_num_threads(threads);
  benchmark::Initialize(&n, args.data());
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  auto find = [](const std::map<std::string, double>& m, const std::string& prefix) {
    for (const auto& [name, v] : m)
      if (name.rfind(prefix, 0) == 0) return v;
    return 0.0;
  };
  const double step = find(reporter.ms, "BM_VaeTrainStep/128");
  const double floor = find(reporter.ms, "BM_VaeStepGemmFloor/128");
  std::printf("\nthreads %d\n", threads);
  if (step > 0 && floor > 0) {
    std::printf("MLP VAE 784-400-20 training, batch 128: %.0f images/s\n",
                find(reporter.items_per_s, "BM_VaeTrainStep/128"));
    std::printf("step time / GEMM floor time = %.3f  (1.0 would be a step that is nothing but its GEMMs)\n",
                step / floor);
  }
  benchmark::Shutdown();
  return 0;
}
