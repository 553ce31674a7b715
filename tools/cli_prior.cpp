// The learned prior over VQ-VAE codes on the command line:
//   latentlab train-prior --vqvae V.safetensors --out prior.safetensors   (PixelCNN on the training codes)
//   latentlab eval --model-file prior.safetensors --vqvae V.safetensors   (NLL, recognisable samples)
//   latentlab sample --model-file V.safetensors --prior prior.safetensors (digits decoded from prior codes)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "core/nn/adam.h"
#include "core/eval/classifier.h"
#include "core/io/file_io.h"
#include "core/io/json.h"
#include "core/kernels/kernels.h"
#include "core/models/pixelcnn.h"
#include "core/io/safetensors.h"
#include "core/models/vqvae.h"
#include "core/train/settings.h"
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

// Code grids [n, G] of the first n images of `data` (all if n <= 0) under the code model.
std::vector<int32_t> encode_all(CodeModel& cm, const Dataset& data) {
  const int batch = 500, P = cm.model->config().input, G = cm.level.cells();
  std::vector<float> x(static_cast<size_t>(batch) * P);
  std::vector<int32_t> codes(static_cast<size_t>(data.size()) * G);
  cm.model->reserve(batch);
  for (int first = 0; first < data.size(); first += batch) {
    const int B = std::min(batch, data.size() - first);
    data.to_float(nullptr, first, B, x.data());
    cm.grids->encode_codes(x.data(), B);
    const int32_t* idx = cm.grids->indices(0);
    std::copy(idx, idx + static_cast<size_t>(B) * G, codes.begin() + static_cast<size_t>(first) * G);
  }
  return codes;
}

// The data set's labels as the class-conditional prior's input (empty when the prior is unconditional).
std::vector<int32_t> class_labels(const PixelCnnPrior& prior, const Dataset& data) {
  if (prior.config().classes == 0) return {};
  return std::vector<int32_t>(data.labels.labels.begin(), data.labels.labels.end());
}

// Labels for n samples of a class-conditional prior: each class equally often (i % classes), so 1,000
// samples hold 100 of each digit; empty when the prior is unconditional.
std::vector<int32_t> balanced_labels(const PixelCnnPrior& prior, int n) {
  std::vector<int32_t> labels;
  for (int i = 0; prior.config().classes > 0 && i < n; i++) labels.push_back(i % prior.config().classes);
  return labels;
}

const int32_t* at(const std::vector<int32_t>& labels, size_t first) {
  return labels.empty() ? nullptr : labels.data() + first;
}

// Mean NLL (nats per grid) of code grids under the prior (given their labels if it is conditional).
double prior_nll(PixelCnnPrior& prior, const std::vector<int32_t>& codes, const std::vector<int32_t>& labels, int G) {
  const int n = static_cast<int>(codes.size() / G), batch = 250;
  prior.reserve(batch);
  double sum = 0.0;
  for (int first = 0; first < n; first += batch) {
    const int B = std::min(batch, n - first);
    prior.forward(codes.data() + static_cast<size_t>(first) * G, B, at(labels, first));
    for (int b = 0; b < B; b++) sum += prior.nll()[b];
  }
  return n ? sum / n : 0.0;
}

// A class-conditional prior's marginal NLL, -log sum_y p(y) p(grid | y) with p(y) uniform over the
// classes, averaged over the grids (nats per grid): comparable with an unconditional prior's NLL.
double prior_marginal_nll(PixelCnnPrior& prior, const std::vector<int32_t>& codes, int G) {
  const int n = static_cast<int>(codes.size() / G), batch = 250, classes = prior.config().classes;
  prior.reserve(batch);
  std::vector<double> logp(static_cast<size_t>(batch) * classes);
  std::vector<int32_t> labels(batch);
  double sum = 0.0;
  for (int first = 0; first < n; first += batch) {
    const int B = std::min(batch, n - first);
    for (int y = 0; y < classes; y++) {
      std::fill(labels.begin(), labels.end(), y);
      prior.forward(codes.data() + static_cast<size_t>(first) * G, B, labels.data());
      for (int b = 0; b < B; b++) logp[static_cast<size_t>(b) * classes + y] = -prior.nll()[b];
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
  std::string vqvae, data = "mnist", out, dtype = "f32", lr_schedule = "constant";
  int epochs = 10, batch = 64, channels = 64, layers = 5, threads = 1, stacks = 2, kernel_a = 5, kernel_b = 3, classes = 0;
  double lr = 1e-3;
  uint64_t seed = 1;
  const CLI::Option* out_option = nullptr;
};

int run_train_prior(const PriorOptions& o) {
  set_num_threads(o.threads);
  Status s = check_out(o.out_option, o.out);
  if (!s.ok()) return fail(s);
  CodeModel vq;
  if (!(s = load_code_model(o.vqvae, &vq)).ok()) return fail(s);
  Dataset train, test;
  if (!(s = load_data(o.data, "train", &train)).ok() || !(s = load_data(o.data, "test", &test)).ok()) return fail(s);
  if (!(s = check_image_size(train, vq.model->config().input, o.data + " training set")).ok() ||
      !(s = check_image_size(test, vq.model->config().input, o.data + " test set")).ok())
    return fail(s);
  for (const Dataset* d : {&train, &test})  // before the encoding, which takes seconds
    for (uint8_t y : d->labels.labels)
      if (y >= o.classes && o.classes > 0)
        return fail("--classes " + std::to_string(o.classes) + " but the data hold label " + std::to_string(y));
  const int G = vq.level.cells();
  auto t0 = Clock::now();
  std::vector<int32_t> train_codes = encode_all(vq, train), test_codes = encode_all(vq, test);
  std::printf("encoded %d training and %d test images to %dx%d code grids (K = %d) in %.1f s\n", train.size(),
              test.size(), vq.level.H, vq.level.W, vq.level.K,
              std::chrono::duration<double>(Clock::now() - t0).count());

  PixelCnnConfig pc;
  pc.K = vq.level.K;
  pc.H = vq.level.H;
  pc.W = vq.level.W;
  pc.channels = o.channels;
  pc.layers = o.layers;
  pc.stacks = o.stacks;
  pc.kernel_a = o.kernel_a;
  pc.kernel_b = o.kernel_b;
  pc.classes = o.classes;
  if (!(s = pc.validate()).ok()) return fail(s);
  PixelCnnPrior prior(pc);
  Rng rng(o.seed, 1);
  prior.init(rng);
  prior.reserve(o.batch);
  const std::vector<int32_t> train_labels = class_labels(prior, train), test_labels = class_labels(prior, test);
  std::vector<int32_t> batch_labels(static_cast<size_t>(o.batch));
  Adam adam;
  adam.config.lr = o.lr;
  std::vector<uint32_t> order(train.size());
  std::iota(order.begin(), order.end(), 0u);
  std::vector<int32_t> batch(static_cast<size_t>(o.batch) * G);
  const double uniform = G * std::log(static_cast<double>(pc.K));
  std::printf("PixelCNN prior %s: %zu parameters; a uniform prior scores %.2f nats per grid\n", pc.to_json().c_str(),
              prior.params().size(), uniform);
  double seconds = 0.0, test_nll = 0.0;
  const int steps_per_epoch = (train.size() + o.batch - 1) / o.batch, total_steps = steps_per_epoch * o.epochs;
  int step = 0;
  // The prior's recipe as TrainSettings (the core's table): its schedule function, and the JSON saved.
  TrainSettings recipe;
  recipe.batch = o.batch;
  recipe.adam.lr = o.lr;
  recipe.epochs = o.epochs;
  recipe.seed = o.seed;
  recipe.schedule = o.lr_schedule == "cosine" ? LrSchedule::kCosine : LrSchedule::kConstant;
  recipe.reduction = LossReduction::kMean;  // backward(1 / B) below
  const bool cosine = recipe.schedule == LrSchedule::kCosine;
  for (int e = 1; e <= o.epochs; e++) {
    auto te = Clock::now();
    rng.shuffle(order.data(), order.size());
    double sum = 0.0;
    for (int first = 0; first < train.size(); first += o.batch) {
      const int B = std::min(o.batch, train.size() - first);
      for (int b = 0; b < B; b++) {
        std::copy_n(train_codes.begin() + static_cast<size_t>(order[first + b]) * G, G, batch.begin() + static_cast<size_t>(b) * G);
        if (!train_labels.empty()) batch_labels[b] = train_labels[order[first + b]];
      }
      prior.forward(batch.data(), B, train_labels.empty() ? nullptr : batch_labels.data());
      double batch_sum = 0.0;
      for (int b = 0; b < B; b++) batch_sum += prior.nll()[b];
      if (!std::isfinite(batch_sum)) return fail("prior training diverged (non-finite NLL) in epoch " + std::to_string(e));
      sum += batch_sum;
      prior.params().zero_grad();
      prior.backward(1.0f / B);
      // cosine: lr * (1 + cos(pi t / T)) / 2 over the T steps of training (Loshchilov & Hutter 2017), rounded
      // to float as the shipped prior was trained.
      if (cosine) adam.config.lr = static_cast<float>(recipe.lr_at(step, total_steps));
      step++;
      adam.step(prior.params());
    }
    const double secs = std::chrono::duration<double>(Clock::now() - te).count();
    seconds += secs;
    test_nll = prior_nll(prior, test_codes, test_labels, G);
    std::printf("epoch %2d/%d  train nll %.3f  test nll %.3f nats per grid  %.0f grids/s  %.1f s\n", e, o.epochs,
                sum / train.size(), test_nll, train.size() / secs, secs);
    std::fflush(stdout);
  }
  if (!o.out.empty()) {
    const std::string meta =
        recipe.to_json({"\"vqvae\":" + json_quote(o.vqvae), "\"data\":" + json_quote(o.data),
                        "\"train_seconds\":" + json_number(std::round(seconds * 10) / 10),
                        "\"test_nll\":" + json_number(std::round(test_nll * 1e4) / 1e4)});
    auto bytes = save_prior(prior, {{"latentlab.train", meta}}, o.dtype == "f16" ? DType::kF16 : DType::kF32);
    if (!(s = write_file(o.out, bytes)).ok()) return fail(s);
    std::printf("saved %s (%zu bytes)\n", o.out.c_str(), bytes.size());
  }
  return 0;
}

}  // namespace

bool is_prior_file(const std::string& path) {
  std::vector<uint8_t> bytes;
  SafetensorsFile f;
  if (!read_file(path, &bytes).ok() || !parse_safetensors(bytes.data(), bytes.size(), &f).ok()) return false;
  return is_prior_metadata(f.metadata);
}

int run_eval_prior(const PriorEvalOptions& o) {
  std::unique_ptr<PixelCnnPrior> prior;
  Status s = load_prior_file(o.prior_file, &prior);
  if (!s.ok()) return fail(s);
  if (o.vqvae.empty()) return fail("evaluating a prior needs --vqvae (the VQ-VAE whose codes it models)");
  CodeModel vq;
  if (!(s = load_code_model(o.vqvae, &vq)).ok()) return fail(s);
  if (vq.level.K != prior->config().K || vq.level.H != prior->config().H || vq.level.W != prior->config().W)
    return fail("the prior models " + std::to_string(prior->config().K) + " codes on a " +
                std::to_string(prior->config().H) + "x" + std::to_string(prior->config().W) + " grid but " + o.vqvae +
                " has " + std::to_string(vq.level.K) + " codes on a " + std::to_string(vq.level.H) + "x" +
                std::to_string(vq.level.W) + " grid");
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

  auto test_codes = encode_all(vq, test);
  const double nll = prior_nll(*prior, test_codes, class_labels(*prior, test), G);
  const double marginal_nll = prior->config().classes > 0 ? prior_marginal_nll(*prior, test_codes, G) : nll;
  const double uniform_nll = G * std::log(static_cast<double>(prior->config().K));
  if (!std::isfinite(nll) || !std::isfinite(marginal_nll))
    return fail("the prior's test NLL is not finite: its outputs overflow on these codes");
  // Samples from the prior, from uniformly random codes (contrast), and real test digits through the
  // VQ-VAE (what a perfect prior would approach).
  Rng rng(o.seed, 5);
  std::vector<int32_t> sampled(static_cast<size_t>(o.samples) * G), uniform(sampled.size());
  const std::vector<int32_t> labels = balanced_labels(*prior, o.samples);
  const int chunk = 100;
  prior->reserve(chunk);
  for (int first = 0; first < o.samples; first += chunk)
    prior->sample(sampled.data() + static_cast<size_t>(first) * G, std::min(chunk, o.samples - first), o.temperature, rng,
                  at(labels, first));
  for (int32_t& c : uniform) c = static_cast<int32_t>(rng.below(static_cast<uint32_t>(prior->config().K)));
  std::vector<int32_t> real(test_codes.begin(), test_codes.begin() + static_cast<size_t>(std::min(o.samples, test.size())) * G);
  double matched = 0.0;
  const double rec_prior = judge_confident(*judge, decode_codes(vq, sampled), o.threshold, labels, &matched);
  const double rec_uniform = judge_confident(*judge, decode_codes(vq, uniform), o.threshold);
  const double rec_real = judge_confident(*judge, decode_codes(vq, real), o.threshold);
  std::printf("%s (prior over %s codes) on %s test\n", o.prior_file.c_str(), o.vqvae.c_str(), o.data.c_str());
  if (prior->config().classes > 0)
    std::printf("  test NLL                %.3f nats per grid given the label; %.3f marginal over %d equally likely "
                "classes (uniform codes: %.3f)\n", nll, marginal_nll, prior->config().classes, uniform_nll);
  else
    std::printf("  test NLL                %.3f nats per grid (uniform codes: %.3f)\n", nll, uniform_nll);
  std::printf("  recognisable digits     %.1f%% of %d prior samples at temperature %g\n", 100 * rec_prior, o.samples, o.temperature);
  if (!labels.empty())
    std::printf("                          %.1f%% recognised as the class they were sampled for (%d classes, equally often)\n",
                100 * matched, prior->config().classes);
  std::printf("                          %.1f%% of uniformly random code grids\n", 100 * rec_uniform);
  std::printf("                          %.1f%% of real test digits through the VQ-VAE\n", 100 * rec_real);
  std::printf("  judge                   %s (%s), MNIST test accuracy %.4f; recognisable = probability >= %g\n",
              o.judge.c_str(), judge->classifier()->arch().c_str(), judge_acc, o.threshold);
  if (o.json) {
    std::printf("{\"model\":\"pixelcnn_prior\",\"nll\":%.6f,\"nll_uniform\":%.6f,\"recognisable\":%.4f,"
                "\"recognisable_uniform\":%.4f,\"recognisable_real\":%.4f,\"judge_arch\":\"%s\",\"judge_accuracy\":%.4f,\"samples\":%d,"
                "\"temperature\":%g,\"threshold\":%g,\"images\":%d,\"classes\":%d,\"nll_marginal\":%.6f",
                nll, uniform_nll, rec_prior, rec_uniform, rec_real, judge->classifier()->arch().c_str(), judge_acc, o.samples, o.temperature, o.threshold,
                test.size(), prior->config().classes, marginal_nll);
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
    std::unique_ptr<PixelCnnPrior> prior;
    if (!(s = load_prior_file(prior_file, &prior)).ok()) return fail(s);
    if (prior->config().K != vq.level.K || prior->config().H * prior->config().W != G)
      return fail(prior_file + " was not trained on codes of this VQ-VAE (codebook or grid size differ)");
    prior->reserve(count);
    // A class-conditional prior draws the classes in turn (0, 1, ..., 9, 0, ...: one per column of a 10-wide grid).
    const std::vector<int32_t> labels = balanced_labels(*prior, count);
    prior->sample(codes.data(), count, temperature, rng, at(labels, 0));
  }
  std::vector<float> images = decode_codes(vq, codes);
  if (!(s = write_png_grid(out, images.data(), count, side, side, cols, scale)).ok()) return fail(s);
  std::printf("wrote %s: %d digits decoded from %s code grids\n", out.c_str(), count,
              uniform_codes ? "uniformly random" : "PixelCNN-prior");
  return 0;
}

Action add_train_prior(CLI::App& app) {
  auto o = std::make_shared<PriorOptions>();
  CLI::App* cmd = app.add_subcommand("train-prior", "Train a PixelCNN prior over a VQ-VAE's code grids");
  cmd->add_option("--vqvae", o->vqvae, "The trained VQ-VAE (.safetensors) whose codes the prior models")->required();
  cmd->add_option("--data", o->data, "Data set")->check(kDataNames)->capture_default_str();
  cmd->add_option("--epochs", o->epochs, "Passes over the training codes")->check(CLI::Range(1, 10000))->capture_default_str();
  cmd->add_option("--batch", o->batch, "Grids per step")->check(CLI::Range(1, 4096))->capture_default_str();
  cmd->add_option("--lr", o->lr, "Adam learning rate")->check(CLI::Range(1e-8, 10.0))->capture_default_str();
  cmd->add_option("--lr-schedule", o->lr_schedule, "constant, or cosine: decayed to 0 over training")
      ->check(CLI::IsMember({"constant", "cosine"}))->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed")->capture_default_str();
  cmd->add_option("--channels", o->channels, "Feature channels")->check(CLI::Range(1, 1024))->capture_default_str();
  cmd->add_option("--layers", o->layers, "Residual masked layers (type B)")->check(CLI::Range(0, 64))->capture_default_str();
  cmd->add_option("--stacks", o->stacks, "1: one masked stack (has a blind spot above-right); 2: vertical + horizontal stacks (none)")
      ->check(CLI::IsMember({1, 2}))->capture_default_str();
  cmd->add_option("--kernel-a", o->kernel_a, "Kernel of the first (type A) masked convolution, odd")->check(CLI::Range(3, 15))->capture_default_str();
  cmd->add_option("--kernel-b", o->kernel_b, "Kernel of the residual (type B) masked convolutions, odd")->check(CLI::Range(1, 15))->capture_default_str();
  cmd->add_option("--classes", o->classes,
                  "Class-conditional prior over this many classes, trained on the images' labels (0: unconditional)")
      ->check(CLI::Range(0, 1024))->capture_default_str();
  o->out_option = cmd->add_option("--out", o->out, "Where to save the prior (.safetensors)");
  cmd->add_option("--dtype", o->dtype, "Weights stored as")->check(CLI::IsMember({"f32", "f16"}))->capture_default_str();
  add_threads_option(cmd, &o->threads);
  return [o] { return run_train_prior(*o); };
}

Status load_prior_file(const std::string& path, std::unique_ptr<PixelCnnPrior>* out,
                       std::map<std::string, std::string>* meta) {
  std::vector<uint8_t> bytes;
  Status s = read_file(path, &bytes);
  if (!s.ok()) return s;
  return load_prior(bytes.data(), bytes.size(), out, meta).with_context(path + ": ");
}

}  // namespace ll::cli
