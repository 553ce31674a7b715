// `latentlab train`: train an AE or VAE on MNIST / Fashion-MNIST and save it as .safetensors.
// After every epoch: train loss, test loss with each term separately, and images/second.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <algorithm>
#include <cstdio>
#include <map>
#include <string>

#include "core/io/file_io.h"
#include "core/kernels/kernels.h"
#include "core/models/model_file.h"
#include "core/models/pixelcnn.h"
#include "core/train/trainer.h"
#include "tools/cli.h"

namespace ll::cli {

namespace {

struct TrainOptions {
  std::string model = "vae", data = "mnist", out, dtype = "f32";
  int epochs = 10, batch = 128, hidden = 400, latent = 20, threads = 1, limit = 0;
  double lr = 1e-3;
  uint64_t seed = 1;
  bool quiet = false;
  const CLI::Option* out_option = nullptr;
  std::map<std::string, double> hyper;  // kind-specific settings given on the command line
};

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string terms_str(const Model& m, const LossTotals& t) {
  std::string s;
  auto names = m.loss_terms();
  for (size_t i = 0; i < names.size(); i++) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s%s %.3f", i ? " " : "", names[i].c_str(), t.mean(i));
    s += buf;
  }
  return s;
}

// A one-line progress bar on stderr, redrawn at most ten times a second; only on a terminal.
class ProgressBar {
 public:
  explicit ProgressBar(bool enabled) : enabled_(enabled && isatty(fileno(stderr))) {}
  void update(int epoch, int epochs, int step, int steps, double loss, double ips) {
    if (!enabled_) return;
    auto now = Clock::now();
    if (step != steps && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const int width = 30, filled = steps ? width * step / steps : width;
    std::string bar(filled, '#');
    bar.resize(width, '-');
    std::fprintf(stderr, "\repoch %d/%d [%s] %d/%d  loss %.2f  %.0f img/s ", epoch, epochs, bar.c_str(),
                 step, steps, loss, ips);
    std::fflush(stderr);
  }
  void clear() {
    if (enabled_) std::fprintf(stderr, "\r%*s\r", 100, "");
  }

 private:
  bool enabled_;
  Clock::time_point last_{};
};

int run_train(const TrainOptions& o) {
  set_num_threads(o.threads);
  // The output is checked before training, so an unwritable or empty --out loses no work.
  Status s = check_out(o.out_option, o.out);
  if (!s.ok()) return fail(s);
  Dataset train, test;
  s = load_data(o.data, "train", &train);
  if (!s.ok()) return fail(s);
  s = load_data(o.data, "test", &test);
  if (!s.ok()) return fail(s);
  if (o.limit > 0 && o.limit < train.size()) {
    // Keep only the first `limit` training images (quick experiments).
    train.images.count = train.labels.count = o.limit;
    train.images.pixels.resize(static_cast<size_t>(o.limit) * train.images.pixels_per_image());
    train.labels.labels.resize(o.limit);
  }

  ModelConfig config;
  config.kind = o.model;
  config.input = train.images.pixels_per_image();
  config.hidden = o.hidden;
  config.latent = o.latent;
  const ModelKind* kind = find_model_kind(o.model);
  for (const auto& [name, value] : o.hyper) {
    bool known = false;
    for (const HyperSpec& h : kind->hyper) known = known || h.name == name;
    if (!known) {
      std::string owners;
      for (const ModelKind& k : model_kinds())
        for (const HyperSpec& h : k.hyper)
          if (h.name == name) owners += (owners.empty() ? "" : ", ") + k.name;
      std::string flag = name;
      std::replace(flag.begin(), flag.end(), '_', '-');
      return fail("--" + flag + " is not a setting of model '" + o.model + "' (it applies to: " + owners + ")");
    }
    config.hyper[name] = value;
  }
  // The test set is evaluated after every epoch: its images must be the model's size too.
  s = check_image_size(test, config.input, o.data + " test set");
  if (!s.ok()) return fail(s);
  std::unique_ptr<Model> model;
  s = create_model(config, &model);
  if (!s.ok()) return fail(s);
  Rng init_rng(o.seed, /*stream=*/1);
  model->init(init_rng);

  TrainSettings settings;
  settings.batch = o.batch;
  settings.adam.lr = o.lr;
  settings.seed = o.seed;
  settings.epochs = o.epochs;
  Trainer trainer;
  s = trainer.setup(model.get(), &train, settings);
  if (!s.ok()) return fail(s);

  std::printf("training %s %s on %s: %d train / %d test images, %d epochs, batch %d, lr %g, seed %llu, "
              "%zu parameters\n",
              o.model.c_str(), model->config().to_json().c_str(), o.data.c_str(), train.size(), test.size(),
              o.epochs, o.batch, o.lr, static_cast<unsigned long long>(o.seed), model->params().count());
  std::fflush(stdout);

  ProgressBar bar(!o.quiet);
  const int steps = trainer.steps_per_epoch();
  double train_seconds = 0.0;
  LossTotals test_sample, test_mean;
  const bool is_vae = model->has_gaussian_prior();
  for (int epoch = 1; epoch <= o.epochs; epoch++) {
    LossTotals epoch_totals;
    auto t0 = Clock::now();
    for (int step = 1; step <= steps; step++) {
      LossTotals batch;
      s = trainer.step(&batch);
      if (!s.ok()) {
        bar.clear();
        return fail(s);
      }
      epoch_totals.add(batch);
      bar.update(epoch, o.epochs, step, steps, epoch_totals.loss(), epoch_totals.count / seconds_since(t0));
    }
    const double secs = seconds_since(t0);
    train_seconds += secs;
    bar.clear();
    // Test figures: with a sampled z (the usual one-sample ELBO; a fixed generator so every epoch is
    // measured the same way) and, for the VAE, with z = posterior mean.
    Rng eval_rng(o.seed, /*stream=*/3);
    test_sample = evaluate(*model, test, ZMode::kSample, eval_rng);
    std::printf("epoch %2d/%d  train loss %.3f (%s)  test loss %.3f (%s)", epoch, o.epochs,
                epoch_totals.loss(), terms_str(*model, epoch_totals).c_str(), test_sample.loss(),
                terms_str(*model, test_sample).c_str());
    if (is_vae) {
      test_mean = evaluate(*model, test, ZMode::kMean, eval_rng);
      std::printf("  loss_mean_z %.3f", test_mean.loss());
    }
    for (const auto& [name, value] : test_sample.metrics) std::printf("  %s %.4g", name.c_str(), value);
    std::printf("  %.0f img/s  %.1f s\n", epoch_totals.count / secs, secs);
    std::fflush(stdout);
  }

  if (!o.out.empty()) {
    char train_json[512];
    std::snprintf(train_json, sizeof train_json,
                  "{\"data\":\"%s\",\"epochs\":%d,\"batch\":%d,\"lr\":%g,\"seed\":%llu,\"steps\":%lld,"
                  "\"train_seconds\":%.1f,\"test_loss\":%.4f,\"test_loss_mean_z\":%.4f}",
                  o.data.c_str(), o.epochs, o.batch, o.lr, static_cast<unsigned long long>(o.seed),
                  static_cast<long long>(trainer.steps_done()), train_seconds, test_sample.loss(),
                  is_vae ? test_mean.loss() : test_sample.loss());
    auto bytes = save_model(*model, {{"latentlab.train", train_json}},
                            o.dtype == "f16" ? DType::kF16 : DType::kF32);
    s = write_file(o.out, bytes);
    if (!s.ok()) return fail(s);
    std::printf("saved %s (%zu bytes)\n", o.out.c_str(), bytes.size());
  }
  return 0;
}

}  // namespace

Action add_train(CLI::App& app) {
  auto o = std::make_shared<TrainOptions>();
  CLI::App* cmd = app.add_subcommand("train", "Train a model and save it as .safetensors");
  cmd->add_option("--model", o->model, model_kinds_help())->check(model_kind_validator())->capture_default_str();
  cmd->add_option("--data", o->data, "Data set")->check(kDataNames)->capture_default_str();
  cmd->add_option("--epochs", o->epochs, "Passes over the training set")->check(CLI::Range(1, 100000))->capture_default_str();
  cmd->add_option("--batch", o->batch, "Images per step")->check(CLI::Range(1, 65536))->capture_default_str();
  cmd->add_option("--lr", o->lr, "Adam learning rate")->check(CLI::Range(1e-8, 10.0))->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed of every random choice (init, shuffling, z samples)")->capture_default_str();
  cmd->add_option("--hidden", o->hidden, "Hidden layer width")->check(CLI::Range(1, 16384))->capture_default_str();
  cmd->add_option("--latent", o->latent, "Latent size")->check(CLI::Range(1, 4096))->capture_default_str();
  cmd->add_option("--limit", o->limit, "Use only the first N training images (0 = all)")->check(CLI::Range(0, 100000000));
  cmd->add_option("--dtype", o->dtype, "Weights stored as")->check(CLI::IsMember({"f32", "f16"}))->capture_default_str();
  o->out_option = cmd->add_option("--out", o->out, "Where to save the trained model (.safetensors)");
  cmd->add_flag("--quiet", o->quiet, "No progress bar");
  add_threads_option(cmd, &o->threads);
  // One flag per kind-specific hyperparameter in the registry (--beta, --rho, ...); each is checked
  // against the chosen kind, and its range, when the command runs.
  std::map<std::string, std::string> seen;
  for (const ModelKind& k : model_kinds())
    for (const HyperSpec& h : k.hyper) {
      if (seen.count(h.name)) {
        seen[h.name] += ", " + k.name;
        continue;
      }
      seen[h.name] = k.name;
    }
  for (const auto& [name, owners] : seen) {
    const HyperSpec* spec = nullptr;
    for (const ModelKind& k : model_kinds())
      for (const HyperSpec& h : k.hyper)
        if (h.name == name && !spec) spec = &h;
    std::string flag = name;
    std::replace(flag.begin(), flag.end(), '_', '-');
    char range[96];
    std::snprintf(range, sizeof range, " (default %g, range [%g, %g]; %s)", spec->def, spec->lo, spec->hi,
                  owners.c_str());
    const std::string key = name;
    cmd->add_option_function<double>("--" + flag, [o, key](const double& v) { o->hyper[key] = v; },
                                     spec->help + range);
  }
  return [o] { return run_train(*o); };
}

}  // namespace ll::cli

namespace ll::cli {

namespace {
struct ExportOptions {
  std::string model_file, out, dtype = "f16";
};

// Re-save a model file with another dtype, keeping its metadata (e.g. F32 -> F16 halves the size).
int run_export(const ExportOptions& o) {
  const DType dtype = o.dtype == "f16" ? DType::kF16 : DType::kF32;
  std::map<std::string, std::string> meta;
  std::vector<uint8_t> out;
  Status s = check_writable(o.out).with_context("--out: ");
  if (!s.ok()) return fail(s);
  if (is_prior_file(o.model_file)) {  // the PixelCNN prior has its own files (and kernel shapes)
    std::unique_ptr<PixelCnnPrior> prior;
    if (!(s = load_prior_file(o.model_file, &prior, &meta)).ok()) return fail(s);
    for (const char* key : {"format", "latentlab.model", "latentlab.config"}) meta.erase(key);
    out = save_prior(*prior, meta, dtype);
  } else {
    std::vector<uint8_t> bytes;
    if (!(s = read_file(o.model_file, &bytes)).ok()) return fail(s);
    std::unique_ptr<Model> model;
    s = load_model(bytes.data(), bytes.size(), &model, &meta);
    if (!s.ok()) return fail(s.with_context(o.model_file + ": "));
    for (const char* key : {"format", "latentlab.model", "latentlab.config"}) meta.erase(key);
    out = save_model(*model, meta, dtype);
  }
  s = write_file(o.out, out);
  if (!s.ok()) return fail(s);
  std::printf("wrote %s (%s, %zu bytes)\n", o.out.c_str(), o.dtype.c_str(), out.size());
  return 0;
}
}  // namespace

Action add_export(CLI::App& app) {
  auto o = std::make_shared<ExportOptions>();
  CLI::App* cmd = app.add_subcommand("export", "Re-save a model or prior file with another dtype (metadata kept)");
  cmd->add_option("--model-file", o->model_file, "Model file (.safetensors)")->required();
  cmd->add_option("--dtype", o->dtype, "Weights stored as")->check(CLI::IsMember({"f32", "f16"}))->capture_default_str();
  cmd->add_option("--out", o->out, "Output file")->required();
  return [o] { return run_export(*o); };
}

}  // namespace ll::cli
