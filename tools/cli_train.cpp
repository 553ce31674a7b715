// `latentlab train`: train an AE or VAE on MNIST / Fashion-MNIST and save it as .safetensors.
// After every epoch: train loss, test loss with each term separately, and images/second.
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cmath>
#include <algorithm>
#include <cstdio>
#include <map>
#include <string>

#include "core/io/file_io.h"
#include "core/io/json.h"
#include "core/kernels/kernels.h"
#include "core/models/model_file.h"
#include "core/train/checkpoint.h"
#include "core/train/trainer.h"
#include "tools/cli.h"

namespace ll::cli {

namespace {

struct TrainOptions {
  std::string model = "vae", data = "mnist", out, dtype = "f32", log, resume;
  int threads = 1, limit = 0;
  bool quiet = false, save_optimizer = false;
  double checkpoint_minutes = 0.0;
  const CLI::Option* out_option = nullptr;
  // Flags that --resume compares with the file (given or not).
  const CLI::Option *model_option = nullptr, *data_option = nullptr, *limit_option = nullptr;
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

// ---- resuming (--resume, --save-optimizer, --checkpoint-minutes) ----

// Set by SIGINT / SIGTERM while a checkpointing run trains; the loop checks it after every step and
// writes a last checkpoint from there (the handler itself only stores the signal number).
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int sig) { g_stop_signal = sig; }

// What the CLI keeps in a resume file besides the core's state (ResumeState::caller): the data set and
// --limit the order was made for, the current epoch's totals so far (so the epoch's printed train loss
// is the same after a resume) and the training time so far.
struct CallerState {
  std::string data = "mnist";
  int limit = 0;
  LossTotals epoch_totals;
  double train_seconds = 0.0;
};

std::string caller_json(const CallerState& c) {
  std::string terms;
  for (size_t i = 0; i < c.epoch_totals.terms.size(); i++)
    terms += (i ? "," : "") + json_number(c.epoch_totals.terms[i]);
  return "{\"data\":" + json_quote(c.data) + ",\"limit\":" + std::to_string(c.limit) + ",\"epoch_terms\":[" + terms +
         "],\"epoch_mse\":" + json_number(c.epoch_totals.mse) + ",\"epoch_count\":" +
         std::to_string(c.epoch_totals.count) + ",\"train_seconds\":" + json_number(c.train_seconds) + "}";
}

Status parse_caller(const std::string& json, CallerState* out) {
  JsonValue v;
  Status s = parse_json(json.data(), json.size(), &v);
  if (!s.ok()) return s;
  const JsonValue *data = v.get("data"), *limit = v.get("limit"), *terms = v.get("epoch_terms"),
                  *mse = v.get("epoch_mse"), *count = v.get("epoch_count"), *secs = v.get("train_seconds");
  using T = JsonValue::Type;
  if (!data || data->type != T::kString || !limit || limit->type != T::kNumber || !limit->is_integer ||
      limit->integer < 0 || limit->integer > 100000000 || !terms || terms->type != T::kArray || !mse ||
      mse->type != T::kNumber || !count || count->type != T::kNumber || !count->is_integer || count->integer < 0 ||
      !secs || secs->type != T::kNumber)
    return Status::error("metadata 'latentlab.resume': the command line's part (data set, --limit, epoch totals) is "
                         "missing or malformed");
  CallerState c;
  c.data = data->string;
  c.limit = static_cast<int>(limit->integer);
  for (const JsonValue& t : terms->array) {
    if (t.type != T::kNumber) return Status::error("metadata 'latentlab.resume': epoch_terms must be numbers");
    c.epoch_totals.terms.push_back(t.number);
  }
  c.epoch_totals.mse = mse->number;
  c.epoch_totals.count = count->integer;
  c.train_seconds = secs->number;
  *out = c;
  return Status();
}

// The per-step log continues a resumed run: lines of steps after the checkpoint's (the lost part of a
// killed run) and any half-written last line are dropped; the new steps are appended.
Status keep_log_until(const std::string& path, int64_t step) {
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return Status();  // no log yet: a new one
  std::string kept, line;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, f)) {
    line += buf;
    if (line.back() != '\n') continue;  // a long line: read on
    long long n = 0;
    if (std::sscanf(line.c_str(), "{\"step\":%lld,", &n) == 1 && n <= step) kept += line;
    line.clear();
  }
  std::fclose(f);
  return write_file(path, std::vector<uint8_t>(kept.begin(), kept.end())).with_context("--log: ");
}

// A flag given with --resume must agree with the file: a resumed run keeps the file's model and settings.
Status check_agrees(const std::string& name, double given, double saved, const std::string& file) {
  if (given == saved) return Status();
  return Status::error(flag_of(name) + " " + json_number(given) + " contradicts the resume file " + file + " (" + name +
                       " = " + json_number(saved) + "); a resumed run keeps the file's model and settings: drop the "
                       "flag, or start a new run");
}

Status check_resume_flags(const TrainOptions& o, const Model& model, const ResumeState& st, const CallerState& c) {
  const std::string& f = o.resume;
  const ModelConfig& config = model.config();
  if (o.model_option->count() && o.model != config.kind)
    return Status::error("--model " + o.model + " contradicts the resume file " + f + " (its model is " + config.kind +
                         "); a resumed run keeps the file's model: drop the flag, or start a new run");
  if (o.data_option->count() && o.data != c.data)
    return Status::error("--data " + o.data + " contradicts the resume file " + f + " (trained on " + c.data +
                         "); a resumed run keeps its data set: drop the flag");
  if (o.limit_option->count() && o.limit != c.limit)
    return Status::error("--limit " + std::to_string(o.limit) + " contradicts the resume file " + f + " (--limit " +
                         std::to_string(c.limit) + "); a resumed run keeps its data set: drop the flag");
  Status s;
  for (const auto& [name, value] : o.sizes)
    if (!(s = check_agrees(name, value, name == "hidden" ? config.hidden : config.latent, f)).ok()) return s;
  const ModelKind* kind = find_model_kind(config.kind);
  for (const auto& [name, value] : o.hyper) {
    bool known = false;
    for (const HyperSpec& h : kind->hyper) known = known || h.name == name;
    if (!known) return Status::error(flag_of(name) + " is not a setting of the resume file's " + config.kind + " model");
    if (!(s = check_agrees(name, value, config.get(name), f)).ok()) return s;
  }
  for (const auto& [name, value] : o.train)
    if (name != "epochs" && !(s = check_agrees(name, value, st.settings.get(name), f)).ok()) return s;
  for (const auto& [name, value] : o.train_choices) {
    const SettingSpec* spec = find_train_setting(name);
    const std::string saved = spec->choices[static_cast<size_t>(st.settings.get(name))];
    if (value != saved)
      return Status::error(flag_of(name) + " " + value + " contradicts the resume file " + f + " (" + name + " = " + saved +
                           "); a resumed run keeps the file's model and settings: drop the flag, or start a new run");
  }
  return Status();
}

int run_train(const TrainOptions& o) {
  set_num_threads(o.threads);
  // The settings first, then the output, before any data is read: a typo loses no time.
  TrainSettings settings;
  Status s;
  // --resume: the model, its settings and the trainer's position come from the file.
  std::unique_ptr<Model> model;
  ResumeState resume;
  CallerState caller;
  caller.data = o.data;
  caller.limit = o.limit;
  const bool resuming = !o.resume.empty();
  if (resuming) {
    std::vector<uint8_t> bytes;
    s = read_file(o.resume, &bytes);
    if (!s.ok()) return fail(s.with_context("--resume: "));
    s = load_resume_file(bytes.data(), bytes.size(), &model, &resume);
    if (s.ok()) s = parse_caller(resume.caller, &caller);
    if (!s.ok()) return fail(s.with_context("--resume " + o.resume + ": "));
    s = check_resume_flags(o, *model, resume, caller);
    if (!s.ok()) return fail(s);
    settings = resume.settings;
    const TrainerPosition& p = resume.position;
    auto epochs_flag = o.train.find("epochs");
    if (epochs_flag != o.train.end()) {
      s = settings.set("epochs", epochs_flag->second);
      if (!s.ok()) return fail(s.with_context("--epochs: "));
      if (settings.epochs < p.epoch + (p.cursor > 0 ? 1 : 0))
        return fail("--epochs " + std::to_string(settings.epochs) + " is below the " +
                    std::to_string(p.epoch + (p.cursor > 0 ? 1 : 0)) + " epochs the resume file " + o.resume +
                    " has started (--epochs is the run's total)");
    }
    if (p.epoch >= settings.epochs) {
      std::printf("%s: the run is already done: %d of %d epochs (%lld steps); give --epochs above %d to train on\n",
                  o.resume.c_str(), p.epoch, settings.epochs, static_cast<long long>(p.step), settings.epochs);
      return 0;
    }
  } else {
    s = train_settings_from_flags(o.train, o.train_choices, TrainSettings(), &settings);
    if (!s.ok()) return fail(s);
  }
  // A resumed run writes back to its file unless --out says otherwise; runs that can be resumed again
  // keep the optimiser state in what they write (F32 weights: a resumed run starts from them exactly).
  const std::string out = o.out.empty() && resuming ? o.resume : o.out;
  const bool save_state = o.save_optimizer || resuming || o.checkpoint_minutes > 0;
  if (save_state && o.dtype != "f32")
    return fail("--dtype " + o.dtype + " cannot keep the optimiser state (--save-optimizer, --checkpoint-minutes and "
                "--resume write F32 weights, so that a resumed run continues from them exactly); use latentlab "
                "export for a smaller copy");
  if (o.checkpoint_minutes > 0 && out.empty()) return fail("--checkpoint-minutes needs --out (the file checkpoints go to)");
  // The output is checked before training, so an unwritable or empty --out loses no work.
  s = resuming ? (out.empty() ? Status() : check_writable(out).with_context("--out: ")) : check_out(o.out_option, o.out);
  if (!s.ok()) return fail(s);
  Dataset train, test;
  s = load_data(caller.data, "train", &train);
  if (!s.ok()) return fail(s);
  s = load_data(caller.data, "test", &test);
  if (!s.ok()) return fail(s);
  if (caller.limit > 0 && caller.limit < train.size()) {
    // Keep only the first `limit` training images (quick experiments).
    train.images.count = train.labels.count = caller.limit;
    train.images.pixels.resize(static_cast<size_t>(caller.limit) * train.images.pixels_per_image());
    train.labels.labels.resize(caller.limit);
  }

  if (!resuming) {
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
    s = create_model(config, &model);
    if (!s.ok()) return fail(s);
    Rng init_rng(settings.seed, /*stream=*/1);
    model->init(init_rng);
  } else {
    s = check_image_size(train, model->config().input, caller.data + " training set");
    if (s.ok()) s = check_image_size(test, model->config().input, caller.data + " test set");
    if (!s.ok()) return fail(s.with_context("--resume " + o.resume + ": "));
  }

  Trainer trainer;
  s = trainer.setup(model.get(), &train, settings);
  if (!s.ok()) return fail(s);
  if (resuming) {
    s = resume_training(resume, model.get(), &trainer);
    if (!s.ok()) return fail(s.with_context("--resume " + o.resume + ": "));
  }
  const std::string& kind_name = model->config().kind;

  if (resuming) {
    std::printf("resuming %s %s from %s at epoch %d/%d, step %lld (%d of %d in the epoch), %.1f s trained so far\n",
                kind_name.c_str(), model->config().to_json().c_str(), o.resume.c_str(), trainer.epoch() + 1,
                settings.epochs, static_cast<long long>(trainer.steps_done()), trainer.step_in_epoch(),
                trainer.steps_per_epoch(), caller.train_seconds);
    if (resume.settings.epochs != settings.epochs)
      std::printf("note: the planned length changes from %d to %d epochs: schedules over the planned steps (a "
                  "cosine lr, a kind's annealing) change shape from here\n", resume.settings.epochs, settings.epochs);
  } else {
    std::printf("training %s %s on %s: %d train / %d test images, %d epochs, batch %d, lr %g, seed %llu, "
                "%zu parameters\n",
                kind_name.c_str(), model->config().to_json().c_str(), o.data.c_str(), train.size(), test.size(),
                settings.epochs, settings.batch, settings.adam.lr, static_cast<unsigned long long>(settings.seed),
                model->params().count());
  }
  std::fflush(stdout);
  // Per-step metrics for charts, one JSON object a line (--log); a resumed run continues its log.
  std::FILE* log = nullptr;
  if (!o.log.empty()) {
    if (resuming && !(s = keep_log_until(o.log, trainer.steps_done())).ok()) return fail(s);
    if (!(log = std::fopen(o.log.c_str(), resuming ? "a" : "w"))) return fail("--log: cannot write " + o.log);
    setvbuf(log, nullptr, _IOLBF, 0);  // a line per step as it happens (tail -f, live charts)
  }
  const std::vector<std::string> term_names = model->loss_terms();

  // Checkpoints: the --out file with the optimiser state, every --checkpoint-minutes and on SIGINT /
  // SIGTERM (a second signal ends the process at once: SA_RESETHAND).
  if (o.checkpoint_minutes > 0) {
    struct sigaction sa = {};
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
  }
  auto last_checkpoint = Clock::now();
  double train_seconds = caller.train_seconds;  // over every sitting
  LossTotals epoch_totals;
  auto write_checkpoint = [&](double seconds_so_far) {
    CallerState c = caller;
    c.epoch_totals = epoch_totals;
    c.train_seconds = seconds_so_far;
    const std::string recipe = settings.to_json(
        {"\"data\":" + json_quote(caller.data), "\"steps\":" + std::to_string(trainer.steps_done()),
         "\"train_seconds\":" + json_number(std::round(seconds_so_far * 10) / 10)});
    if (log) std::fflush(log);
    Status w = write_file(out, save_resume_file(*model, trainer, {{"latentlab.train", recipe}}, caller_json(c)));
    last_checkpoint = Clock::now();
    return w;
  };
  // A checkpoint (periodic, or the last one after SIGINT / SIGTERM): the exit status when the run must
  // stop here (stopped by a signal, or its last checkpoint failed), else -1 and training goes on.
  auto checkpoint_or_stop = [&](double seconds_so_far) -> int {
    const int sig = g_stop_signal;
    Status w = write_checkpoint(seconds_so_far);
    if (sig) {
      if (log) std::fclose(log);
      if (!w.ok())
        return fail(w.with_context("stopped by signal " + std::to_string(sig) + "; the last checkpoint was not written: "));
      std::printf("stopped by signal %d at step %lld: saved %s; continue with --resume %s\n", sig,
                  static_cast<long long>(trainer.steps_done()), out.c_str(), out.c_str());
      return 128 + sig;
    }
    if (!w.ok())
      std::fprintf(stderr, "latentlab: warning: checkpoint not written: %s\n", w.message().c_str());
    else
      std::printf("checkpoint: step %lld saved to %s\n", static_cast<long long>(trainer.steps_done()), out.c_str());
    std::fflush(stdout);
    return -1;
  };

  ProgressBar bar(!o.quiet);
  const int steps = trainer.steps_per_epoch();
  LossTotals test_sample, test_mean;
  const bool is_vae = model->has_gaussian_prior();
  const int epochs = settings.epochs;
  const int first_epoch = trainer.epoch() + 1;
  for (int epoch = first_epoch; epoch <= epochs; epoch++) {
    // A run resumed inside an epoch goes on with that epoch's totals so far.
    epoch_totals = epoch == first_epoch && trainer.step_in_epoch() > 0 ? caller.epoch_totals : LossTotals();
    int64_t images_here = 0;  // trained in this sitting, for images/s
    auto t0 = Clock::now();
    for (int step = trainer.step_in_epoch() + 1; step <= steps; step++) {
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
      images_here += batch.count;
      bar.update(epoch, epochs, step, steps, epoch_totals.loss(), images_here / seconds_since(t0));
      // Inside an epoch (the epoch's last step checkpoints after its test figures, below).
      if (o.checkpoint_minutes > 0 && step < steps &&
          (g_stop_signal || seconds_since(last_checkpoint) >= 60.0 * o.checkpoint_minutes)) {
        bar.clear();
        if (const int rc = checkpoint_or_stop(train_seconds + seconds_since(t0)); rc >= 0) return rc;
      }
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
    std::printf("  %.0f img/s  %.1f s\n", images_here / secs, secs);
    std::fflush(stdout);
    epoch_totals = LossTotals();
    if (o.checkpoint_minutes > 0 && epoch < epochs &&
        (g_stop_signal || seconds_since(last_checkpoint) >= 60.0 * o.checkpoint_minutes)) {
      if (const int rc = checkpoint_or_stop(train_seconds); rc >= 0) return rc;
    }
  }

  if (log) std::fclose(log);
  if (!out.empty()) {
    // The recipe: every training setting (TrainSettings writes them), plus what this run measured.
    const double round4 = 1e4;
    const std::string train_json = settings.to_json(
        {"\"data\":" + json_quote(caller.data), "\"steps\":" + std::to_string(trainer.steps_done()),
         "\"train_seconds\":" + json_number(std::round(train_seconds * 10) / 10),
         "\"test_loss\":" + json_number(std::round(test_sample.loss() * round4) / round4),
         "\"test_loss_mean_z\":" +
             json_number(std::round((is_vae ? test_mean.loss() : test_sample.loss()) * round4) / round4)});
    CallerState c = caller;
    c.epoch_totals = LossTotals();
    c.train_seconds = train_seconds;
    auto bytes = save_state ? save_resume_file(*model, trainer, {{"latentlab.train", train_json}}, caller_json(c))
                            : save_model(*model, {{"latentlab.train", train_json}},
                                         o.dtype == "f16" ? DType::kF16 : DType::kF32);
    s = write_file(out, bytes);
    if (!s.ok()) return fail(s);
    std::printf("saved %s (%zu bytes%s)\n", out.c_str(), bytes.size(),
                save_state ? ", with the optimiser state: --resume continues it" : "");
  }
  return 0;
}

}  // namespace

Action add_train(CLI::App& app) {
  auto o = std::make_shared<TrainOptions>();
  CLI::App* cmd = app.add_subcommand("train", "Train a model and save it as .safetensors");
  o->model_option = cmd->add_option("--model", o->model, model_kinds_help())->check(model_kind_validator())->capture_default_str();
  o->data_option = cmd->add_option("--data", o->data, "Data set")->check(kDataNames)->capture_default_str();
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
  o->limit_option = cmd->add_option("--limit", o->limit, "Use only the first N training images (0 = all)")->check(CLI::Range(0, 100000000));
  cmd->add_option("--dtype", o->dtype, "Weights stored as")->check(CLI::IsMember({"f32", "f16"}))->capture_default_str();
  o->out_option = cmd->add_option("--out", o->out, "Where to save the trained model (.safetensors)");
  cmd->add_flag("--quiet", o->quiet, "No progress bar");
  cmd->add_option("--log", o->log, "Write per-step metrics to this file, one JSON object a line: step, epoch, lr, "
                                    "grad_norm (before clipping), clipped, loss and each loss term (per image)");
  cmd->add_option("--resume", o->resume,
                  "Continue the run saved in this file (written with --save-optimizer or --checkpoint-minutes): its "
                  "model, settings, data and position come from the file; --epochs is the run's total; the result "
                  "goes back to the file unless --out says otherwise");
  cmd->add_flag("--save-optimizer", o->save_optimizer,
                "Keep Adam's moments, the trainer's position and the model's training state in --out (F32), so "
                "--resume can continue the run exactly");
  cmd->add_option("--checkpoint-minutes", o->checkpoint_minutes,
                  "Every this many minutes (and on Ctrl-C / SIGTERM) save --out with the optimiser state, atomically "
                  "(implies --save-optimizer)")
      ->check(CLI::Range(0.0, 1e6));
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
  // A resume file's state stays behind (save_model writes the model alone).
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
