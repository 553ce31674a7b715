// Shared pieces of the `latentlab` command-line tool: subcommand registration, loading data and model
// files with messages that name the file, and printing errors as one line. Printing lives in tools/,
// never in core/.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "core/io/idx.h"
#include "core/models/model.h"
#include "core/train/settings.h"
#include "core/train/trainer.h"
#include "core/base/status.h"

namespace ll::cli {

// Each subcommand adds itself to the app and returns the action to run once parsing succeeded.
// The action returns the process exit status.
using Action = std::function<int()>;
Action add_train(CLI::App& app);
Action add_eval(CLI::App& app);
Action add_reconstruct(CLI::App& app);
Action add_sample(CLI::App& app);
Action add_train_prior(CLI::App& app);
Action add_train_classifier(CLI::App& app);
Action add_export(CLI::App& app);
Action add_bench(CLI::App& app);  // cli_bench.cpp

// Models over grids of categories (the PixelCNN prior, cli_prior.cpp), reached from eval and sample.
struct PriorEvalOptions {
  std::string prior_file, vqvae, data = "mnist", judge;
  int samples = 1000;
  int limit = 0;  // only the first N test images (0: all)
  float temperature = 1.0f;
  float threshold = 0.9f;  // the judge's probability that counts as "recognisable"
  uint64_t seed = 1;
  bool json = false;
};
// `prior` is the loaded model of o.prior_file (Model::categorical_input).
int run_eval_prior(const PriorEvalOptions& o, std::unique_ptr<Model> prior);
int run_sample_prior(const std::string& vqvae_file, const std::string& prior_file, bool uniform_codes, int count,
                     int cols, int scale, float temperature, uint64_t seed, const std::string& out);

// The training settings' flags, one per row of the core's table (settings.h): --lr, --batch, ..., with
// `defaults`' values in --help (train-prior's defaults differ from train's). The values given land in
// *numbers and *choices (which must outlive parsing) and are checked by train_settings_from_flags.
void add_train_setting_flags(CLI::App* cmd, std::map<std::string, double>* numbers,
                             std::map<std::string, std::string>* choices, const TrainSettings& defaults);
// `defaults` with the flags' values set; errors name the flag, then give the core's message (the same
// the bindings and the page show).
Status train_settings_from_flags(const std::map<std::string, double>& numbers,
                                 const std::map<std::string, std::string>& choices, const TrainSettings& defaults,
                                 TrainSettings* out);
// "--name" with '_' -> '-'.
std::string flag_of(const std::string& name);
// One line of --log: step, epoch, lr, grad_norm, clipped, loss and each loss term (per example), as JSON.
std::string step_log_line(const Model& model, const LossTotals& batch, const StepMetrics& m);

// An output option checked before any long work: when the option was given (or has a default), its path
// must be writable now (not empty, its directory takes a new file). An absent optional --out is fine.
Status check_out(const CLI::Option* option, const std::string& path);
// The data set's images must have the model's pixel count (train and test sets alike).
Status check_image_size(const Dataset& data, int model_input, const std::string& what);

// "latentlab: error: <message>" on stderr; returns 1 so callers can `return fail(s)`.
int fail(const std::string& message);
inline int fail(const Status& s) { return fail(s.message()); }

// Loads `<data>` ("mnist" | "fashion") split "train" or "test".
Status load_data(const std::string& data, const std::string& split, Dataset* out);
// Reads and parses a .safetensors model file; errors are prefixed with the path.
Status load_model_file(const std::string& path, std::unique_ptr<Model>* out);

// Common option validators.
extern const CLI::Validator kDataNames;
// "--model" choices: every kind in the registry.
CLI::Validator model_kind_validator();
std::string model_kinds_help();
// Prints a LossTotals' model-specific metrics as "  name value" lines.
void print_metrics(const std::vector<std::pair<std::string, double>>& metrics);
void add_threads_option(CLI::App* cmd, int* threads);
}  // namespace ll::cli
