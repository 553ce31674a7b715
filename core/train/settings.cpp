// The table of training settings and TrainSettings' checks and JSON; see settings.h.
#include "core/train/settings.h"

#include <cassert>
#include <cmath>

#include "core/io/json.h"

namespace ll {

namespace {

using Type = SettingSpec::Type;

// 2^53 - 1: the largest seed a JavaScript number holds exactly, so a seed means the same on the page.
constexpr double kMaxSeed = 9007199254740991.0;

const char* const kSchedules[] = {"constant", "cosine"};
const char* const kReductions[] = {"sum", "mean"};

std::string names_of(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

const std::vector<SettingSpec>& train_setting_specs() {
  // The defaults are the shipped models' recipes (models/README.md): Adam at 1e-3, batch 128, seed 1.
  static const std::vector<SettingSpec> specs = {
      {"lr", Type::kNumber, 1e-3, 1e-8, 10.0, {}, "Adam learning rate (the peak, with a schedule)"},
      {"batch", Type::kInt, 128, 1, 65536, {}, "Images per step"},
      {"epochs", Type::kInt, 10, 0, 100000, {},
       "Passes over the training set: the planned length of schedules (0: open-ended, the page)"},
      {"seed", Type::kInt, 1, 0, kMaxSeed, {}, "Seed of every random choice (init, shuffling, z samples)"},
      {"schedule", Type::kChoice, 0, 0, 1, {kSchedules[0], kSchedules[1]},
       "Learning rate schedule: constant, or cosine from lr to 0 over the planned steps"},
      {"warmup", Type::kInt, 0, 0, 1e9, {}, "Steps of linear learning-rate warm-up before the schedule (0: none)"},
      {"clip", Type::kNumber, 0, 0, 1e6, {},
       "Largest global L2 norm of the gradient; larger gradients are scaled down to it (0: no clipping)"},
      {"reduction", Type::kChoice, 0, 0, 1, {kReductions[0], kReductions[1]},
       "The batch's loss: sum over its images (the autoencoders' recipe) or their mean"},
  };
  return specs;
}

const SettingSpec* find_train_setting(const std::string& name) {
  for (const SettingSpec& s : train_setting_specs())
    if (s.name == name) return &s;
  return nullptr;
}

Status check_setting(const SettingSpec& spec, double value) {
  const std::string v = json_number(value);
  if (spec.type == Type::kChoice) {
    if (!(value >= 0 && value < spec.choices.size() && value == std::floor(value)))
      return Status::error(spec.name + " = " + v + " is not one of " + names_of(spec.choices));
    return Status();
  }
  if (!std::isfinite(value) || value < spec.lo || value > spec.hi)
    return Status::error(spec.name + " = " + v + " is out of range [" + json_number(spec.lo) + ", " +
                         json_number(spec.hi) + "]");
  if (spec.type == Type::kInt && value != std::floor(value))
    return Status::error(spec.name + " = " + v + " must be an integer");
  return Status();
}

double TrainSettings::get(const std::string& name) const {
  if (name == "lr") return adam.lr;
  if (name == "batch") return batch;
  if (name == "epochs") return epochs;
  if (name == "seed") return static_cast<double>(seed);
  if (name == "schedule") return static_cast<double>(schedule);
  if (name == "warmup") return static_cast<double>(warmup);
  if (name == "clip") return clip;
  if (name == "reduction") return static_cast<double>(reduction);
  assert(false && "TrainSettings::get of a name not in the table");
  return 0.0;
}

Status TrainSettings::set(const std::string& name, double value) {
  const SettingSpec* spec = find_train_setting(name);
  if (!spec) {
    std::string names;
    for (const SettingSpec& s : train_setting_specs()) names += (names.empty() ? "" : ", ") + s.name;
    return Status::error("unknown training setting '" + name + "' (expected " + names + ")");
  }
  Status s = check_setting(*spec, value);
  if (!s.ok()) return s;
  if (name == "lr") adam.lr = value;
  else if (name == "batch") batch = static_cast<int>(value);
  else if (name == "epochs") epochs = static_cast<int>(value);
  else if (name == "seed") seed = static_cast<uint64_t>(value);
  else if (name == "schedule") schedule = static_cast<LrSchedule>(static_cast<int>(value));
  else if (name == "warmup") warmup = static_cast<int64_t>(value);
  else if (name == "clip") clip = value;
  else if (name == "reduction") reduction = static_cast<LossReduction>(static_cast<int>(value));
  return Status();
}

Status TrainSettings::set(const std::string& name, const std::string& choice) {
  const SettingSpec* spec = find_train_setting(name);
  if (spec && spec->type == Type::kChoice) {
    for (size_t i = 0; i < spec->choices.size(); i++)
      if (spec->choices[i] == choice) return set(name, static_cast<double>(i));
    return Status::error(spec->name + " = " + json_quote(choice) + " is not one of " + names_of(spec->choices));
  }
  if (spec) return Status::error(spec->name + " = " + json_quote(choice) + " must be a number");
  return set(name, 0.0);  // the unknown-name message
}

Status TrainSettings::validate() const {
  for (const SettingSpec& spec : train_setting_specs()) {
    Status s = check_setting(spec, get(spec.name));
    if (!s.ok()) return s;
  }
  if (!(adam.beta1 >= 0.0 && adam.beta1 < 1.0) || !(adam.beta2 >= 0.0 && adam.beta2 < 1.0))
    return Status::error("Adam betas must be in [0, 1)");
  if (!(adam.eps > 0.0)) return Status::error("Adam eps must be positive");
  return Status();
}

std::string TrainSettings::to_json(const std::vector<std::string>& extra) const {
  std::string s = "{";
  for (const SettingSpec& spec : train_setting_specs()) {
    const double v = get(spec.name);
    s += (s.size() > 1 ? "," : "") + json_quote(spec.name) + ":" +
         (spec.type == Type::kChoice ? json_quote(spec.choices[static_cast<size_t>(v)]) : json_number(v));
  }
  for (const std::string& member : extra) s += "," + member;
  return s + "}";
}

Status TrainSettings::from_json(const std::string& json, TrainSettings* out) {
  JsonValue v;
  Status s = parse_json(json.data(), json.size(), &v);
  if (!s.ok()) return s;
  if (v.type != JsonValue::Type::kObject) return Status::error("expected a JSON object");
  TrainSettings t;
  for (const auto& [key, val] : v.object) {
    if (val.type == JsonValue::Type::kString) {
      s = t.set(key, val.string);
    } else if (val.type == JsonValue::Type::kNumber) {
      const SettingSpec* spec = find_train_setting(key);
      s = spec && spec->type == Type::kChoice  // a choice by name only: an index would mean nothing to a reader
              ? Status::error(key + " = " + json_number(val.number) + " is not one of " + names_of(spec->choices))
              : t.set(key, val.number);
    } else {
      const SettingSpec* spec = find_train_setting(key);
      s = spec ? Status::error(key + " must be " + (spec->type == Type::kChoice ? "a string" : "a number"))
               : t.set(key, 0.0);
    }
    if (!s.ok()) return s;
  }
  s = t.validate();
  if (!s.ok()) return s;
  *out = t;
  return Status();
}

double TrainSettings::lr_at(int64_t t, int64_t total) const {
  const double lr = adam.lr;
  if (warmup > 0 && t < warmup) return lr * static_cast<double>(t + 1) / static_cast<double>(warmup);
  if (schedule == LrSchedule::kConstant || total <= 0) return lr;
  // cosine: lr * (1 + cos(pi u / U)) / 2 over the U steps after the warm-up (u from 0).
  const double U = static_cast<double>(total - warmup), u = static_cast<double>(t - warmup);
  if (U <= 0 || u >= U) return 0.0;
  return 0.5 * lr * (1.0 + std::cos(M_PI * u / U));
}

std::string train_settings_json() {
  std::string s = "[";
  for (const SettingSpec& spec : train_setting_specs()) {
    const char* type = spec.type == Type::kInt ? "int" : spec.type == Type::kNumber ? "number" : "choice";
    std::string choices;
    for (const std::string& c : spec.choices) choices += (choices.empty() ? "" : ",") + json_quote(c);
    s += (s.size() > 1 ? "," : "") + std::string("{\"name\":") + json_quote(spec.name) + ",\"type\":\"" + type +
         "\",\"default\":" +
         (spec.type == Type::kChoice ? json_quote(spec.choices[static_cast<size_t>(spec.def)]) : json_number(spec.def)) +
         ",\"min\":" + json_number(spec.lo) + ",\"max\":" + json_number(spec.hi) + ",\"choices\":[" + choices +
         "],\"help\":" + json_quote(spec.help) + "}";
  }
  return s + "]";
}

}  // namespace ll
