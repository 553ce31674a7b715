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
#include "core/io/json.h"
#include "core/kernels/kernels.h"
#include "core/models/model_file.h"
#include "core/train/trainer.h"
#include "tools/cli.h"

namespace ll::cli {

namespace {

struct TrainOptions {
  std::string model = "vae", data = "mnist", out, dtype = "f32", log;
  int threads = 1, limit = 0;
  bool quiet = false;
  const CLI::Option* out_option = nullptr;
  // Given on the command line, checked against the core's tables when the command runs (settings.h,
  // model.h): the training settings (numbers, and choices by name), the architecture sizes, and the
  // kind-specific hyperparameters.
  std::map<std::string, double> train;
  std::map<std::string, std::string> train_choices;
  std::map<std::string, double> sizes;
  std::map<std::string, double> hyper;
};

// " (default 0.001, range [1e-08, 10])" for --help, from the core's table.
std::string range_help(double def, double lo, double hi) {
  return " (default " + json_number(def) + ", range [" + json_number(lo) + ", " + json_number(hi) + "])";
}

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
  // The settings first, then the output, before any data is read: a typo loses no time.
  TrainSettings settings;
  Status s = train_settings_from_flags(o.train, o.train_choices, TrainSettings(), &settings);
  if (!s.ok()) return fail(s);
  // The output is checked before training, so an unwritable or empty --out loses no work.
  s = check_out(o.out_option, o.out);
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
  for (const HyperSpec& h : model_size_specs()) {
    auto it = o.sizes.find(h.name);
    const double v = it == o.sizes.end() ? h.def : it->second;
    s = check_model_size(h, v);
    if (!s.ok()) return fail(s.with_context(flag_of(h.name) + ": "));
    (h.name == "hidden" ? config.hidden : config.latent) = static_cast<int>(v);
  }
  const ModelKind* kind = find_model_kind(o.model);
  if (kind->input_of)  // a kind over grids of categories: its data are code grids, not images
    return fail("model '" + o.model + "' takes grids of categories (a VQ-VAE's code grids), not images: train it "
                "with latentlab train-prior --vqvae VQVAE");
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
  Rng init_rng(settings.seed, /*stream=*/1);
  model->init(init_rng);

  Trainer trainer;
  s = trainer.setup(model.get(), &train, settings);
  if (!s.ok()) return fail(s);

  std::printf("training %s %s on %s: %d train / %d test images, %d epochs, batch %d, lr %g, seed %llu, "
              "%zu parameters\n",
              o.model.c_str(), model->config().to_json().c_str(), o.data.c_str(), train.size(), test.size(),
              settings.epochs, settings.batch, settings.adam.lr, static_cast<unsigned long long>(settings.seed),
              model->params().count());
  std::fflush(stdout);
  // Per-step metrics for charts, one JSON object a line (--log).
  std::FILE* log = nullptr;
  if (!o.log.empty() && !(log = std::fopen(o.log.c_str(), "w")))
    return fail("--log: cannot write " + o.log);
  const std::vector<std::string> term_names = model->loss_terms();

  ProgressBar bar(!o.quiet);
  const int steps = trainer.steps_per_epoch();
  double train_seconds = 0.0;
  LossTotals test_sample, test_mean;
  const bool is_vae = model->has_gaussian_prior();
  const int epochs = settings.epochs;
  for (int epoch = 1; epoch <= epochs; epoch++) {
    LossTotals epoch_totals;
    auto t0 = Clock::now();
    for (int step = 1; step <= steps; step++) {
      LossTotals batch;
      StepMetrics m;
      s = trainer.step(&batch, &m);
      if (!s.ok()) {
        bar.clear();
        if (log) std::fclose(log);
        return fail(s);
      }
      if (log) std::fprintf(log, "%s\n", step_log_line(*model, batch, m).c_str());
      epoch_totals.add(batch);
      bar.update(epoch, epochs, step, steps, epoch_totals.loss(), epoch_totals.count / seconds_since(t0));
    }
    const double secs = seconds_since(t0);
    train_seconds += secs;
    bar.clear();
    // Test figures: with a sampled z (the usual one-sample ELBO; a fixed generator so every epoch is
    // measured the same way) and, for the VAE, with z = posterior mean.
    Rng eval_rng(settings.seed, /*stream=*/3);
    test_sample = evaluate(*model, test, ZMode::kSample, eval_rng);
    std::printf("epoch %2d/%d  train loss %.3f (%s)  test loss %.3f (%s)", epoch, epochs,
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

  if (log) std::fclose(log);
  if (!o.out.empty()) {
    // The recipe: every training setting (TrainSettings writes them), plus what this run measured.
    const double round4 = 1e4;
    const std::string train_json = settings.to_json(
        {"\"data\":" + json_quote(o.data), "\"steps\":" + std::to_string(trainer.steps_done()),
         "\"train_seconds\":" + json_number(std::round(train_seconds * 10) / 10),
         "\"test_loss\":" + json_number(std::round(test_sample.loss() * round4) / round4),
         "\"test_loss_mean_z\":" +
             json_number(std::round((is_vae ? test_mean.loss() : test_sample.loss()) * round4) / round4)});
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
  // One flag per training setting and architecture size, from the core's tables: help, default and
  // range come from there, and the values are checked there when the command runs.
  add_train_setting_flags(cmd, &o->train, &o->train_choices, TrainSettings());
  for (const HyperSpec& h : model_size_specs()) {
    const std::string key = h.name;
    std::string unused;
    for (const ModelKind& k : model_kinds())
      if (!(key == "hidden" ? k.uses_hidden : k.uses_latent)) unused += (unused.empty() ? "" : ", ") + k.name;
    cmd->add_option_function<double>(flag_of(key), [o, key](const double& v) { o->sizes[key] = v; },
                                     h.help + range_help(h.def, h.lo, h.hi) + (unused.empty() ? "" : "; unused by " + unused))
        ->type_name("INT");
  }
  cmd->add_option("--limit", o->limit, "Use only the first N training images (0 = all)")->check(CLI::Range(0, 100000000));
  cmd->add_option("--dtype", o->dtype, "Weights stored as")->check(CLI::IsMember({"f32", "f16"}))->capture_default_str();
  o->out_option = cmd->add_option("--out", o->out, "Where to save the trained model (.safetensors)");
  cmd->add_flag("--quiet", o->quiet, "No progress bar");
  cmd->add_option("--log", o->log, "Write per-step metrics to this file, one JSON object a line: step, epoch, lr, "
                                    "grad_norm (before clipping), clipped, loss and each loss term (per image)");
  add_threads_option(cmd, &o->threads);
  // One flag per kind-specific hyperparameter in the registry (--beta, --rho, ...); each is checked
  // against the chosen kind, and its range, when the command runs.
  std::map<std::string, std::string> seen;
  for (const ModelKind& k : model_kinds())
    for (const HyperSpec& h : k.hyper) {
      if (h.from_data) continue;  // set from the data (a grid kind's K, H, W), not a flag
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
  std::vector<uint8_t> bytes;
  if (!(s = read_file(o.model_file, &bytes)).ok()) return fail(s);
  std::unique_ptr<Model> model;
  s = load_model(bytes.data(), bytes.size(), &model, &meta);
  if (!s.ok()) return fail(s.with_context(o.model_file + ": "));
  for (const char* key : {"format", "latentlab.model", "latentlab.config"}) meta.erase(key);
  out = save_model(*model, meta, dtype);
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
