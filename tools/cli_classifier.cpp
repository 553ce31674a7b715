// `latentlab train-classifier`: trains the judge of generated digits (the "classifier" kind,
// core/models/classifier.h) with the core Trainer, as `train` trains every kind. Its flags come from the
// core's tables: the training settings (core/train/settings.h) and the kind's registry entry
// (hyperparameters: --arch, --channels, --classes, --negatives, --negative-weight; --hidden for mlp);
// only the defaults differ from `train`'s, so that no flag gives the judge's recipe: 5 epochs, batch 128,
// Adam 1e-3, mean reduction (the cross-entropy averaged over the batch), a conv net of 16-32 channels,
// 128 jigsaw non-digits per step at weight 0.5, saved as F16. The outlier exposure is the kind's own
// forward/backward; there is no second training loop.
#include <algorithm>
#include <chrono>
#include <cmath>
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

// The judge's kind in the registry.
constexpr const char* kJudgeKind = "classifier";

// Where train-classifier's defaults differ from the tables' (the shipped judge's recipe).
const std::map<std::string, std::string>& judge_defaults() {
  static const std::map<std::string, std::string> d = {{"epochs", "5"}, {"reduction", "mean"}, {"hidden", "256"}};
  return d;
}

struct ClassifierOptions {
  std::string data = "mnist", out, dtype = "f16", arch = "conv", log;
  int threads = 1, limit = 0;
  const CLI::Option* out_option = nullptr;
  std::map<std::string, std::string> train;  // table settings by name, as given (numbers or choices)
  std::map<std::string, double> hyper;       // the kind's hyperparameters and sizes, as given
};

std::string flag_name(const std::string& name) {
  std::string flag = "--" + name;
  std::replace(flag.begin(), flag.end(), '_', '-');
  return flag;
}

// The value of a setting: given, else train-classifier's default, else the table's.
Status settings_of(const ClassifierOptions& o, TrainSettings* out) {
  TrainSettings t;
  std::map<std::string, std::string> values = judge_defaults();
  for (const auto& [name, value] : o.train) values[name] = value;
  for (const auto& [name, value] : values) {
    const SettingSpec* spec = find_train_setting(name);
    if (!spec) continue;  // a size ("hidden")
    Status s;
    if (spec->type == SettingSpec::Type::kChoice) {
      s = t.set(name, value);
    } else {
      char* end = nullptr;
      const double v = std::strtod(value.c_str(), &end);
      s = end && *end == 0 && !value.empty() ? t.set(name, v) : Status::error(name + " = " + value + " is not a number");
    }
    if (!s.ok()) return s.with_context(flag_name(name) + ": ");
  }
  if (t.epochs < 1) return Status::error("--epochs: the command line trains at least 1 epoch");
  *out = t;
  return Status();
}

using Clock = std::chrono::steady_clock;

int run_train_classifier(const ClassifierOptions& o) {
  set_num_threads(o.threads);
  TrainSettings settings;
  Status s = settings_of(o, &settings);
  if (!s.ok()) return fail(s);
  if (!(s = check_out(o.out_option, o.out)).ok()) return fail(s);
  Dataset train, test;
  if (!(s = load_data(o.data, "train", &train)).ok() || !(s = load_data(o.data, "test", &test)).ok()) return fail(s);
  if (o.limit > 0 && o.limit < train.size()) {  // the first `limit` training images (quick experiments)
    train.images.count = train.labels.count = o.limit;
    train.images.pixels.resize(static_cast<size_t>(o.limit) * train.images.pixels_per_image());
    train.labels.labels.resize(o.limit);
  }
  ModelConfig config;
  config.kind = kJudgeKind;
  config.input = train.images.pixels_per_image();
  config.hidden = std::stoi(judge_defaults().at("hidden"));
  config.hyper["arch"] = o.arch == "mlp" ? 1 : 0;
  for (const auto& [name, value] : o.hyper) {
    if (name == "hidden") {
      const HyperSpec& h = model_size_specs()[0];
      if (!(s = check_model_size(h, value)).ok()) return fail(s.with_context("--hidden: "));
      config.hidden = static_cast<int>(value);
    } else {
      config.hyper[name] = value;
    }
  }
  if (!(s = config.validate()).ok()) return fail(s);
  if (!(s = check_image_size(test, config.input, o.data + " test set")).ok()) return fail(s);
  std::unique_ptr<Model> model;
  if (!(s = create_model(config, &model)).ok()) return fail(s);
  Rng init_rng(settings.seed, /*stream=*/1);
  model->init(init_rng);
  Trainer trainer;
  if (!(s = trainer.setup(model.get(), &train, settings)).ok()) return fail(s);
  const std::string arch = model->classifier()->arch();
  std::printf("training the judge: classifier %s (%s, %zu parameters) on %s, %d epochs, batch %d, lr %g, %s "
              "reduction, seed %llu\n", config.to_json().c_str(), arch.c_str(), model->params().count(), o.data.c_str(),
              settings.epochs, settings.batch, settings.adam.lr,
              settings.reduction == LossReduction::kMean ? "mean" : "sum", static_cast<unsigned long long>(settings.seed));
  std::fflush(stdout);
  std::FILE* log = nullptr;
  if (!o.log.empty() && !(log = std::fopen(o.log.c_str(), "w"))) return fail("--log: cannot write " + o.log);
  const std::vector<std::string> terms = model->loss_terms();
  double seconds = 0.0, accuracy = 0.0;
  LossTotals test_totals;
  for (int e = 1; e <= settings.epochs; e++) {
    const auto t0 = Clock::now();
    LossTotals epoch;
    for (int step = 0; step < trainer.steps_per_epoch(); step++) {
      LossTotals batch;
      StepMetrics m;
      if (!(s = trainer.step(&batch, &m)).ok()) {
        if (log) std::fclose(log);
        return fail(s);
      }
      if (log) {
        std::string t;
        for (size_t i = 0; i < terms.size(); i++)
          t += (i ? "," : "") + json_quote(terms[i]) + ":" + json_number(batch.mean(i));
        std::fprintf(log, "{\"step\":%lld,\"epoch\":%d,\"lr\":%s,\"grad_norm\":%s,\"clipped\":%s,\"loss\":%s,\"terms\":{%s}}\n",
                     static_cast<long long>(m.step), m.epoch, json_number(m.lr).c_str(), json_number(m.grad_norm).c_str(),
                     m.clipped ? "true" : "false", json_number(batch.loss()).c_str(), t.c_str());
      }
      epoch.add(batch);
    }
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    seconds += secs;
    Rng eval_rng(settings.seed, /*stream=*/3);
    test_totals = evaluate(*model, test, ZMode::kMean, eval_rng);
    for (const auto& [name, value] : test_totals.metrics)
      if (name == "accuracy") accuracy = value;
    std::printf("epoch %2d/%d  train ce %.4f outlier %.4f  test ce %.4f outlier %.4f", e, settings.epochs, epoch.mean(0),
                epoch.mean(1), test_totals.mean(0), test_totals.mean(1));
    for (const auto& [name, value] : test_totals.metrics) std::printf("  %s %.4f", name.c_str(), value);
    std::printf("  %.0f img/s  %.1f s\n", epoch.count / secs, secs);
    std::fflush(stdout);
  }
  if (log) std::fclose(log);
  std::printf("classifier %s (%zu parameters) on %s, %d epochs, %g jigsaw negatives per step (weight %g), %.1f s: "
              "test accuracy %.4f\n", arch.c_str(), model->params().count(), o.data.c_str(), settings.epochs,
              model->config().get("negatives"), model->config().get("negative_weight"), seconds, accuracy);
  if (!o.out.empty()) {
    const double round4 = 1e4;
    const std::string meta = settings.to_json(
        {"\"data\":" + json_quote(o.data), "\"steps\":" + std::to_string(trainer.steps_done()),
         "\"train_seconds\":" + json_number(std::round(seconds * 10) / 10),
         "\"test_ce\":" + json_number(std::round(test_totals.mean(0) * round4) / round4),
         "\"test_accuracy\":" + json_number(std::round(accuracy * round4) / round4)});
    auto bytes = save_model(*model, {{"latentlab.train", meta}}, o.dtype == "f16" ? DType::kF16 : DType::kF32);
    if (!(s = write_file(o.out, bytes)).ok()) return fail(s);
    std::printf("saved %s (%zu bytes)\n", o.out.c_str(), bytes.size());
  }
  return 0;
}

}  // namespace

Action add_train_classifier(CLI::App& app) {
  auto o = std::make_shared<ClassifierOptions>();
  CLI::App* cmd = app.add_subcommand("train-classifier", "Train the digit classifier that judges generated digits "
                                                         "(the classifier kind, on the core Trainer)");
  cmd->add_option("--data", o->data, "Data set")->check(kDataNames)->capture_default_str();
  const auto& defaults = judge_defaults();
  // The training settings, from the core's table (train-classifier's own defaults where it has them).
  for (const SettingSpec& spec : train_setting_specs()) {
    const std::string key = spec.name;
    auto d = defaults.find(key);
    std::string help = spec.help + " (default ";
    if (spec.type == SettingSpec::Type::kChoice) {
      std::string names;
      for (const std::string& c : spec.choices) names += (names.empty() ? "" : ",") + c;
      help += (d != defaults.end() ? d->second : spec.choices[size_t(spec.def)]) + ")";
      cmd->add_option_function<std::string>(flag_name(key), [o, key](const std::string& v) { o->train[key] = v; }, help)
          ->type_name("{" + names + "}");
    } else {
      help += (d != defaults.end() ? d->second : json_number(spec.def)) + ", range [" + json_number(spec.lo) + ", " +
              json_number(spec.hi) + "])";
      cmd->add_option_function<std::string>(flag_name(key), [o, key](const std::string& v) { o->train[key] = v; }, help)
          ->type_name(spec.type == SettingSpec::Type::kInt ? "INT" : "FLOAT");
    }
  }
  // The kind's hyperparameters, from its registry entry; "arch" by name.
  for (const HyperSpec& h : find_model_kind(kJudgeKind)->hyper) {
    const std::string key = h.name;
    if (key == "arch") {
      cmd->add_option("--arch", o->arch, "conv: Conv(1->C, k5 s2) ReLU Conv(C->2C, k5 s2) ReLU Linear; mlp: Linear ReLU Linear")
          ->check(CLI::IsMember({"conv", "mlp"}))->capture_default_str();
      continue;
    }
    cmd->add_option_function<double>(flag_name(key), [o, key](const double& v) { o->hyper[key] = v; },
                                     h.help + " (default " + json_number(h.def) + ", range [" + json_number(h.lo) + ", " +
                                         json_number(h.hi) + "])")
        ->type_name(h.integer ? "INT" : "FLOAT");
  }
  const HyperSpec& hidden = model_size_specs()[0];
  cmd->add_option_function<double>("--hidden", [o](const double& v) { o->hyper["hidden"] = v; },
                                   "mlp: hidden units (default " + defaults.at("hidden") + ", range [" +
                                       json_number(hidden.lo) + ", " + json_number(hidden.hi) + "])")
      ->type_name("INT");
  cmd->add_option("--limit", o->limit, "Use only the first N training images (0 = all)")->check(CLI::Range(0, 100000000));
  cmd->add_option("--dtype", o->dtype, "Weights stored as")->check(CLI::IsMember({"f32", "f16"}))->capture_default_str();
  cmd->add_option("--log", o->log, "Write per-step metrics to this file, one JSON object a line (as train --log)");
  o->out_option = cmd->add_option("--out", o->out, "Where to save it (.safetensors)");
  add_threads_option(cmd, &o->threads);
  return [o] { return run_train_classifier(*o); };
}

}  // namespace ll::cli
