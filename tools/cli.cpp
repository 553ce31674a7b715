// The command-line tool's shared helpers (tools/cli.h): one-line errors, loading data and model files
// with messages that name the file, and the options several subcommands share.
#include "tools/cli.h"

#include <algorithm>
#include <cstdio>

#include "core/io/file_io.h"
#include "core/io/json.h"
#include "core/io/safetensors.h"
#include "core/models/model_file.h"
#include "tools/data_paths.h"

namespace ll::cli {

int fail(const std::string& message) {
  std::fprintf(stderr, "latentlab: error: %s\n", message.c_str());
  return 1;
}

const CLI::Validator kDataNames = CLI::IsMember({"mnist", "fashion"});

CLI::Validator model_kind_validator() {
  std::vector<std::string> names;
  for (const ModelKind& k : model_kinds()) names.push_back(k.name);
  return CLI::IsMember(names);
}

std::string model_kinds_help() {
  std::string s = "Model kind:";
  for (const ModelKind& k : model_kinds()) s += "\n  " + k.name + ": " + k.description;
  return s;
}

void print_metrics(const std::vector<std::pair<std::string, double>>& metrics) {
  for (const auto& [name, value] : metrics) std::printf("  %-21s %.6g\n", name.c_str(), value);
}

void add_threads_option(CLI::App* cmd, int* threads) {
  cmd->add_option("--threads", *threads, "Threads for the matrix products (default 1)")
      ->check(CLI::Range(1, 256));
}

Status check_out(const CLI::Option* option, const std::string& path) {
  if (path.empty() && option->count() == 0) return Status();
  return check_writable(path).with_context(option->get_name() + ": ");
}

Status check_image_size(const Dataset& data, int model_input, const std::string& what) {
  if (data.images.pixels_per_image() == model_input) return Status();
  return Status::error(what + " has " + std::to_string(data.images.rows) + "x" + std::to_string(data.images.cols) +
                       " images (" + std::to_string(data.images.pixels_per_image()) + " pixels) but the model takes " +
                       std::to_string(model_input) + " pixels per image");
}

Status load_data(const std::string& data, const std::string& split, Dataset* out) {
  std::string dir;
  Status s = data_dir(data, &dir);
  if (!s.ok()) return s;
  return load_idx_dataset(dir, split == "train" ? "train" : "t10k", out);
}

Status load_model_file(const std::string& path, std::unique_ptr<Model>* out) {
  std::vector<uint8_t> bytes;
  Status s = read_file(path, &bytes);
  if (!s.ok()) return s;
  return load_model(bytes.data(), bytes.size(), out).with_context(path + ": ");
}

std::string flag_of(const std::string& name) {
  std::string flag = "--" + name;
  std::replace(flag.begin(), flag.end(), '_', '-');
  return flag;
}

void add_train_setting_flags(CLI::App* cmd, std::map<std::string, double>* numbers,
                             std::map<std::string, std::string>* choices, const TrainSettings& defaults) {
  // Help, default and range come from the core's table; the values are checked there when the command runs.
  for (const SettingSpec& spec : train_setting_specs()) {
    const std::string key = spec.name;
    const double def = defaults.get(key);
    if (spec.type == SettingSpec::Type::kChoice) {
      std::string names;
      for (const std::string& c : spec.choices) names += (names.empty() ? "" : ",") + c;
      cmd->add_option_function<std::string>(flag_of(key), [choices, key](const std::string& v) { (*choices)[key] = v; },
                                            spec.help + " (default " + spec.choices[size_t(def)] + ")")
          ->type_name("{" + names + "}");
    } else {
      cmd->add_option_function<double>(flag_of(key), [numbers, key](const double& v) { (*numbers)[key] = v; },
                                       spec.help + " (default " + json_number(def) + ", range [" +
                                           json_number(spec.lo) + ", " + json_number(spec.hi) + "])")
          ->type_name(spec.type == SettingSpec::Type::kInt ? "INT" : "FLOAT");
    }
  }
}

Status train_settings_from_flags(const std::map<std::string, double>& numbers,
                                 const std::map<std::string, std::string>& choices, const TrainSettings& defaults,
                                 TrainSettings* out) {
  TrainSettings t = defaults;
  for (const auto& [name, value] : numbers) {
    Status s = t.set(name, value);
    if (!s.ok()) return s.with_context(flag_of(name) + ": ");
  }
  for (const auto& [name, value] : choices) {
    Status s = t.set(name, value);
    if (!s.ok()) return s.with_context(flag_of(name) + ": ");
  }
  if (t.epochs < 1) return Status::error("--epochs: the command line trains at least 1 epoch");
  *out = t;
  return Status();
}

std::string step_log_line(const Model& model, const LossTotals& batch, const StepMetrics& m) {
  const std::vector<std::string> names = model.loss_terms();
  std::string terms;
  for (size_t t = 0; t < names.size(); t++)
    terms += (t ? "," : "") + json_quote(names[t]) + ":" + json_number(batch.mean(t));
  return "{\"step\":" + std::to_string(m.step) + ",\"epoch\":" + std::to_string(m.epoch) +
         ",\"lr\":" + json_number(m.lr) + ",\"grad_norm\":" + json_number(m.grad_norm) +
         ",\"clipped\":" + (m.clipped ? "true" : "false") + ",\"loss\":" + json_number(batch.loss()) +
         ",\"terms\":{" + terms + "}}";
}

}  // namespace ll::cli
