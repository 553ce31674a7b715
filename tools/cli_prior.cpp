// The learned prior over VQ-VAE codes on the command line:
//   latentlab train-prior --vqvae V.safetensors --out prior.safetensors   (PixelCNN on the training codes)
//   latentlab eval --model-file prior.safetensors --vqvae V.safetensors   (NLL, recognisable samples)
//   latentlab sample --model-file V.safetensors --prior prior.safetensors (digits decoded from prior codes)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "core/nn/adam.h"
#include "core/eval/classifier.h"
#include "core/io/file_io.h"
#include "core/io/json.h"
#include "core/kernels/kernels.h"
#include "core/models/model_file.h"
#include "core/io/safetensors.h"
#include "core/models/vqvae.h"
#include "core/train/code_data.h"
#include "core/train/settings.h"
#include "core/train/trainer.h"
#include "tools/cli.h"
#include "tools/png.h"

namespace ll::cli {

namespace {

using Clock = std::chrono::steady_clock;

// A model whose codes the prior models: one level of code grids (CodeGrids, model.h), e.g. a VQ-VAE.
struct CodeModel {
  std::unique_ptr<Model> model;
  CodeGrids* grids = nullptr;
  CodeLevel level;  // its one level
};

Status load_code_model(const std::string& path, CodeModel* out) {
  Status s = load_model_file(path, &out->model);
  if (!s.ok()) return s;
  out->grids = out->model->code_grids();
  if (!out->grids || out->grids->levels() != 1)
    return Status::error(path + " holds a '" + out->model->config().kind +
                         "' model, not a vqvae: it has no single grid of discrete codes for a prior to model");
  out->level = out->grids->level(0);
  return Status();
}

// The prior: a model of the registry over grids of categories (Model::categorical_input), here the
// grids of a code model's codes. Its capabilities give the NLL (likelihood), samples (sampler) and
// the class condition (conditioning).
const char* const kPriorKind = "pixelcnn_prior";


Status check_grid(const Model& prior, const CodeModel& vq, const std::string& vq_file) {
  CodeLevel g;
  if (!prior.categorical_input(&g))
    return Status::error("a '" + prior.config().kind + "' model is not a prior over code grids");
  if (g.K != vq.level.K || g.H != vq.level.H || g.W != vq.level.W)
    return Status::error("the prior models " + std::to_string(g.K) + " codes on a " + std::to_string(g.H) + "x" +
                         std::to_string(g.W) + " grid but " + vq_file + " has " + std::to_string(vq.level.K) +
                         " codes on a " + std::to_string(vq.level.H) + "x" + std::to_string(vq.level.W) + " grid");
  return Status();
}

int classes_of(Model& prior) { return prior.conditioning() ? prior.conditioning()->classes() : 0; }

// Labels for n samples of a class-conditional prior: each class equally often (i % classes), so 1,000
// samples hold 100 of each digit; empty when the prior is unconditional.
std::vector<int32_t> balanced_labels(Model& prior, int n) {
  std::vector<int32_t> labels;
  for (int i = 0; classes_of(prior) > 0 && i < n; i++) labels.push_back(i % classes_of(prior));
  return labels;
}

const int32_t* at(const std::vector<int32_t>& labels, size_t first) {
  return labels.empty() ? nullptr : labels.data() + first;
}

// Mean NLL (nats per grid) of the code grids under the prior (given their labels if it is conditional).
double prior_nll(Model& prior, const Dataset& codes) {
  Rng unused(1);
  return evaluate(prior, codes, ZMode::kMean, unused, 250).mean(0);
}

// A class-conditional prior's marginal NLL, -log sum_y p(y) p(grid | y) with p(y) uniform over the
// classes, averaged over the grids (nats per grid): comparable with an unconditional prior's NLL.
double prior_marginal_nll(Model& prior, const Dataset& codes) {
  const int n = codes.size(), batch = 250, classes = classes_of(prior), G = codes.images.pixels_per_image();
  prior.reserve(batch);
  std::vector<double> logp(static_cast<size_t>(batch) * classes);
  std::vector<int32_t> labels(batch);
  std::vector<float> x(static_cast<size_t>(batch) * G);
  const float* nll = prior.likelihood()->nll();
  Rng unused(1);
  double sum = 0.0;
  for (int first = 0; first < n; first += batch) {
    const int B = std::min(batch, n - first);
    codes.to_float(nullptr, first, B, x.data());
    for (int y = 0; y < classes; y++) {
      std::fill(labels.begin(), labels.end(), y);
      prior.set_batch_labels(labels.data());
      prior.forward(x.data(), x.data(), B, unused, ZMode::kMean);
      for (int b = 0; b < B; b++) logp[static_cast<size_t>(b) * classes + y] = -nll[b];
    }
    for (int b = 0; b < B; b++) {
      const double* l = logp.data() + static_cast<size_t>(b) * classes;
      const double mx = *std::max_element(l, l + classes);
      double e = 0.0;
      for (int y = 0; y < classes; y++) e += std::exp(l[y] - mx);
      sum += -(mx + std::log(e / classes));
    }
  }
  return n ? sum / n : 0.0;
}

// `count` grids [count, G] drawn from the prior in chunks of 100 (labels[count] when it is conditional).
std::vector<int32_t> sample_grids(Model& prior, int count, int G, float temperature, Rng& rng,
                                  const std::vector<int32_t>& labels) {
  const int chunk = 100;
  prior.reserve(chunk);
  std::vector<float> out(static_cast<size_t>(std::min(chunk, count)) * G);
  std::vector<int32_t> grids(static_cast<size_t>(count) * G);
  for (int first = 0; first < count; first += chunk) {
    const int B = std::min(chunk, count - first);
    prior.sampler()->sample(out.data(), B, temperature, rng, at(labels, first));
    for (size_t i = 0; i < static_cast<size_t>(B) * G; i++)
      grids[static_cast<size_t>(first) * G + i] = static_cast<int32_t>(out[i]);
  }
  return grids;
}

// Decodes code grids [n, G] to images [n, P] with the code model.
std::vector<float> decode_codes(CodeModel& cm, const std::vector<int32_t>& codes) {
  const int G = cm.level.cells(), P = cm.model->config().input, n = static_cast<int>(codes.size() / G), batch = 250;
  std::vector<float> out(static_cast<size_t>(n) * P);
  cm.model->reserve(batch);
  for (int first = 0; first < n; first += batch) {
    const int B = std::min(batch, n - first);
    const int32_t* grids[1] = {codes.data() + static_cast<size_t>(first) * G};
    cm.grids->decode_codes(grids, B, out.data() + static_cast<size_t>(first) * P);
  }
  return out;
}

// ---- train-prior ----
struct PriorOptions {
  std::string vqvae, data = "mnist", out, dtype = "f32", log;
  int threads = 1, limit = 0;
  bool quiet = false;
  // Given on the command line, checked against the core's tables when the command runs: the training
  // settings (settings.h) and the prior kind's hyperparameters (the registry).
  std::map<std::string, double> train;
  std::map<std::string, std::string> train_choices;
  std::map<std::string, double> hyper;
  const CLI::Option* out_option = nullptr;
};

// train-prior's defaults where they differ from train's: 64 grids per step, the mean loss over the batch.
TrainSettings prior_defaults() {
  TrainSettings t;
  t.batch = 64;
  t.reduction = LossReduction::kMean;
  return t;
}

int run_train_prior(const PriorOptions& o) {
  set_num_threads(o.threads);
  TrainSettings settings;
  Status s = train_settings_from_flags(o.train, o.train_choices, prior_defaults(), &settings);
  if (!s.ok()) return fail(s);
  if (!(s = check_out(o.out_option, o.out)).ok()) return fail(s);
  CodeModel vq;
  if (!(s = load_code_model(o.vqvae, &vq)).ok()) return fail(s);
  Dataset train, test;
  if (!(s = load_data(o.data, "train", &train)).ok() || !(s = load_data(o.data, "test", &test)).ok()) return fail(s);
  if (!(s = check_image_size(train, vq.model->config().input, o.data + " training set")).ok() ||
      !(s = check_image_size(test, vq.model->config().input, o.data + " test set")).ok())
    return fail(s);
  ModelConfig config;
  config.kind = kPriorKind;
  for (const auto& [name, value] : o.hyper) config.hyper[name] = value;
  // The hyperparameters set from the data: the code grid's K, H and W.
  config.hyper["K"] = vq.level.K, config.hyper["H"] = vq.level.H, config.hyper["W"] = vq.level.W;
  config.input = vq.level.cells();
  if (!(s = config.validate()).ok()) return fail(s);
  const int classes = static_cast<int>(config.get("classes"));
  for (const Dataset* d : {&train, &test})  // before the encoding, which takes seconds
    for (uint8_t y : d->labels.labels)
      if (y >= classes && classes > 0)
        return fail("--classes " + std::to_string(classes) + " but the data hold label " + std::to_string(y));
  auto t0 = Clock::now();
  Dataset train_codes, test_codes;
  if (!(s = encode_code_grids(*vq.model, train, &train_codes, 0, o.limit)).ok() ||
      !(s = encode_code_grids(*vq.model, test, &test_codes)).ok())
    return fail(s.with_context(o.vqvae + ": "));
  std::printf("encoded %d training and %d test images to %dx%d code grids (K = %d) in %.1f s\n", train_codes.size(),
              test_codes.size(), vq.level.H, vq.level.W, vq.level.K,
              std::chrono::duration<double>(Clock::now() - t0).count());

  std::unique_ptr<Model> prior;
  if (!(s = create_model(config, &prior)).ok()) return fail(s);
  // One generator initialises the prior and then orders the batches (the prior's recipe before it moved
  // onto the Trainer, kept so that a seed trains the same prior).
  Rng rng(settings.seed, 1);
  prior->init(rng);
  Trainer trainer;
  if (!(s = trainer.setup(prior.get(), &train_codes, settings)).ok()) return fail(s);
  trainer.set_rng(rng);
  const double uniform = vq.level.cells() * std::log(static_cast<double>(vq.level.K));
  std::printf("PixelCNN prior %s: %zu parameters; a uniform prior scores %.2f nats per grid\n",
              prior->config().to_json().c_str(), prior->params().size(), uniform);
  std::printf("training: %s\n", settings.to_json().c_str());
  std::fflush(stdout);
  std::FILE* log = nullptr;
  if (!o.log.empty() && !(log = std::fopen(o.log.c_str(), "w"))) return fail("--log: cannot write " + o.log);
  double seconds = 0.0, test_nll = 0.0;
  for (int e = 1; e <= settings.epochs; e++) {
    auto te = Clock::now();
    LossTotals epoch;
    for (int step = 0; step < trainer.steps_per_epoch(); step++) {
      LossTotals batch;
      StepMetrics m;
      if (!(s = trainer.step(&batch, &m)).ok()) {
        if (log) std::fclose(log);
        return fail(s.with_context("prior training: "));
      }
      if (log) std::fprintf(log, "%s\n", step_log_line(*prior, batch, m).c_str());
      epoch.add(batch);
    }
    const double secs = std::chrono::duration<double>(Clock::now() - te).count();
    seconds += secs;
    test_nll = prior_nll(*prior, test_codes);
    std::printf("epoch %2d/%d  train nll %.3f  test nll %.3f nats per grid  %.0f grids/s  %.1f s\n", e, settings.epochs,
                epoch.loss(), test_nll, train_codes.size() / secs, secs);
    std::fflush(stdout);
  }
  if (log) std::fclose(log);
  if (!o.out.empty()) {
    const std::string meta =
        settings.to_json({"\"vqvae\":" + json_quote(o.vqvae), "\"data\":" + json_quote(o.data),
                          "\"train_seconds\":" + json_number(std::round(seconds * 10) / 10),
                          "\"test_nll\":" + json_number(std::round(test_nll * 1e4) / 1e4)});
    auto bytes = save_model(*prior, {{"latentlab.train", meta}}, o.dtype == "f16" ? DType::kF16 : DType::kF32);
    if (!(s = write_file(o.out, bytes)).ok()) return fail(s);
    std::printf("saved %s (%zu bytes)\n", o.out.c_str(), bytes.size());
  }
  return 0;
}

}  // namespace
int run_eval_prior(const PriorEvalOptions& o, std::unique_ptr<Model> prior) {
  Status s;
  if (o.vqvae.empty()) return fail("evaluating a prior needs --vqvae (the VQ-VAE whose codes it models)");
  CodeModel vq;
  if (!(s = load_code_model(o.vqvae, &vq)).ok()) return fail(s);
  if (!(s = check_grid(*prior, vq, o.vqvae)).ok()) return fail(s);
  // The judge: any model with class probabilities (the classifier capability, core/models/model.h).
  std::unique_ptr<Model> judge;
  if (!(s = load_model_file(o.judge, &judge)).ok()) return fail(s.message() + " (train one with latentlab train-classifier)");
  if (!judge->classifier())
    return fail(o.judge + " holds a '" + judge->config().kind + "' model, not a classifier file (the judge needs class probabilities)");
  if (judge->config().input != vq.model->config().input)
    return fail(o.judge + ": the judge expects " + std::to_string(judge->config().input) + " pixels per image but the VQ-VAE decodes " +
                std::to_string(vq.model->config().input));
  Dataset test;
  if (!(s = load_data(o.data, "test", &test)).ok()) return fail(s);
  if (!(s = check_image_size(test, vq.model->config().input, o.data + " test set")).ok()) return fail(s);
  if (o.limit > 0 && o.limit < test.size()) {  // only the first `limit` test images
    test.images.count = test.labels.count = o.limit;
    test.images.pixels.resize(static_cast<size_t>(o.limit) * test.images.pixels_per_image());
    test.labels.labels.resize(o.limit);
  }
  const int G = vq.level.cells();
  const double judge_acc = classifier_accuracy(*judge, test);

  Dataset test_codes;
  if (!(s = encode_code_grids(*vq.model, test, &test_codes)).ok()) return fail(s.with_context(o.vqvae + ": "));
  const int classes = classes_of(*prior), K = vq.level.K;
  const double nll = prior_nll(*prior, test_codes);
  const double marginal_nll = classes > 0 ? prior_marginal_nll(*prior, test_codes) : nll;
  const double uniform_nll = G * std::log(static_cast<double>(K));
  if (!std::isfinite(nll) || !std::isfinite(marginal_nll))
    return fail("the prior's test NLL is not finite: its outputs overflow on these codes");
  // Samples from the prior, from uniformly random codes (contrast), and real test digits through the
  // VQ-VAE (what a perfect prior would approach).
  Rng rng(o.seed, 5);
  const std::vector<int32_t> labels = balanced_labels(*prior, o.samples);
  const std::vector<int32_t> sampled = sample_grids(*prior, o.samples, G, o.temperature, rng, labels);
  std::vector<int32_t> uniform(sampled.size());
  for (int32_t& c : uniform) c = static_cast<int32_t>(rng.below(static_cast<uint32_t>(K)));
  const size_t real_n = static_cast<size_t>(std::min(o.samples, test.size())) * G;
  std::vector<int32_t> real(test_codes.images.pixels.begin(), test_codes.images.pixels.begin() + real_n);
  double matched = 0.0;
  const double rec_prior = judge_confident(*judge, decode_codes(vq, sampled), o.threshold, labels, &matched);
  const double rec_uniform = judge_confident(*judge, decode_codes(vq, uniform), o.threshold);
  const double rec_real = judge_confident(*judge, decode_codes(vq, real), o.threshold);
  std::printf("%s (prior over %s codes) on %s test\n", o.prior_file.c_str(), o.vqvae.c_str(), o.data.c_str());
  if (classes > 0)
    std::printf("  test NLL                %.3f nats per grid given the label; %.3f marginal over %d equally likely "
                "classes (uniform codes: %.3f)\n", nll, marginal_nll, classes, uniform_nll);
  else
    std::printf("  test NLL                %.3f nats per grid (uniform codes: %.3f)\n", nll, uniform_nll);
  std::printf("  recognisable digits     %.1f%% of %d prior samples at temperature %g\n", 100 * rec_prior, o.samples, o.temperature);
  if (!labels.empty())
    std::printf("                          %.1f%% recognised as the class they were sampled for (%d classes, equally often)\n",
                100 * matched, classes);
  std::printf("                          %.1f%% of uniformly random code grids\n", 100 * rec_uniform);
  std::printf("                          %.1f%% of real test digits through the VQ-VAE\n", 100 * rec_real);
  std::printf("  judge                   %s (%s), MNIST test accuracy %.4f; recognisable = probability >= %g\n",
              o.judge.c_str(), judge->classifier()->arch().c_str(), judge_acc, o.threshold);
  if (o.json) {
    std::printf("{\"model\":\"%s\",\"nll\":%.6f,\"nll_uniform\":%.6f,\"recognisable\":%.4f,"
                "\"recognisable_uniform\":%.4f,\"recognisable_real\":%.4f,\"judge_arch\":\"%s\",\"judge_accuracy\":%.4f,\"samples\":%d,"
                "\"temperature\":%g,\"threshold\":%g,\"images\":%d,\"classes\":%d,\"nll_marginal\":%.6f",
                prior->config().kind.c_str(), nll, uniform_nll, rec_prior, rec_uniform, rec_real, judge->classifier()->arch().c_str(), judge_acc, o.samples, o.temperature, o.threshold,
                test.size(), classes, marginal_nll);
    if (!labels.empty()) std::printf(",\"recognisable_as_label\":%.4f", matched);
    std::printf("}\n");
  }
  return 0;
}

int run_sample_prior(const std::string& vqvae_file, const std::string& prior_file, bool uniform_codes, int count,
                     int cols, int scale, float temperature, uint64_t seed, const std::string& out) {
  CodeModel vq;
  Status s = load_code_model(vqvae_file, &vq);
  if (!s.ok()) return fail(s);
  const int G = vq.level.cells(), side = static_cast<int>(std::lround(std::sqrt(double(vq.model->config().input))));
  std::vector<int32_t> codes(static_cast<size_t>(count) * G);
  Rng rng(seed, 5);
  if (uniform_codes) {
    for (int32_t& c : codes) c = static_cast<int32_t>(rng.below(static_cast<uint32_t>(vq.level.K)));
  } else {
    std::unique_ptr<Model> prior;
    if (!(s = load_model_file(prior_file, &prior)).ok()) return fail(s);
    if (!(s = check_grid(*prior, vq, vqvae_file)).ok()) return fail(prior_file + ": " + s.message());
    // A class-conditional prior draws the classes in turn (0, 1, ..., 9, 0, ...: one per column of a 10-wide grid).
    const std::vector<int32_t> labels = balanced_labels(*prior, count);
    prior->reserve(count);
    codes = sample_grids(*prior, count, G, temperature, rng, labels);
  }
  std::vector<float> images = decode_codes(vq, codes);
  if (!(s = write_png_grid(out, images.data(), count, side, side, cols, scale)).ok()) return fail(s);
  std::printf("wrote %s: %d digits decoded from %s code grids\n", out.c_str(), count,
              uniform_codes ? "uniformly random" : "PixelCNN-prior");
  return 0;
}

Action add_train_prior(CLI::App& app) {
  auto o = std::make_shared<PriorOptions>();
  CLI::App* cmd = app.add_subcommand("train-prior", "Train a PixelCNN prior over a VQ-VAE's code grids (the core's Trainer)");
  cmd->add_option("--vqvae", o->vqvae, "The trained VQ-VAE (.safetensors) whose codes the prior models")->required();
  cmd->add_option("--data", o->data, "Data set")->check(kDataNames)->capture_default_str();
  // The training settings' flags from the core's table (train-prior's defaults: batch 64, reduction mean);
  // --lr-schedule, the name the shipped prior's recipe used, is --schedule.
  add_train_setting_flags(cmd, &o->train, &o->train_choices, prior_defaults());
  cmd->add_option_function<std::string>("--lr-schedule", [o](const std::string& v) { o->train_choices["schedule"] = v; },
                                        "The same as --schedule");
  // The prior kind's hyperparameters from the registry; those set from the data (K, H and W: the
  // VQ-VAE's code grid) are not flags.
  for (const HyperSpec& h : find_model_kind(kPriorKind)->hyper) {
    if (h.from_data) continue;
    const std::string key = h.name;
    cmd->add_option_function<double>(flag_of(key), [o, key](const double& v) { o->hyper[key] = v; },
                                     h.help + " (default " + json_number(h.def) + ", range [" + json_number(h.lo) +
                                         ", " + json_number(h.hi) + "])")
        ->type_name("INT");
  }
  cmd->add_option("--limit", o->limit, "Use only the first N training images (0 = all)")->check(CLI::Range(0, 100000000));
  o->out_option = cmd->add_option("--out", o->out, "Where to save the prior (.safetensors)");
  cmd->add_option("--dtype", o->dtype, "Weights stored as")->check(CLI::IsMember({"f32", "f16"}))->capture_default_str();
  cmd->add_option("--log", o->log, "Write per-step metrics to this file, one JSON object a line (as train's --log)");
  add_threads_option(cmd, &o->threads);
  return [o] { return run_train_prior(*o); };
}

}  // namespace ll::cli
