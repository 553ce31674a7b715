// The training settings: one table (train_setting_specs) of every common setting's name, default, range
// and help, and TrainSettings, the values the Trainer runs with. Everything that shows, parses or checks a
// training setting derives from the table: the CLI's flags, ranges and --help (tools/cli_train.cpp), the
// page's Train form and URL state (through the bindings' JSON of the table), the JSON of a training
// recipe saved with a model, and the validation here. So a bad value gets the same message everywhere.
// The architecture sizes every kind may use (hidden, latent) live with the kinds (model.h,
// model_size_specs); each kind's own hyperparameters in the registry (model_registry.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/base/status.h"
#include "core/nn/adam.h"

namespace ll {

// One training setting. Its name is the JSON key and the URL key; the CLI flag is --name with '_' -> '-'.
struct SettingSpec {
  enum class Type { kInt, kNumber, kChoice };
  std::string name;
  Type type = Type::kNumber;
  double def = 0.0, lo = 0.0, hi = 0.0;  // kChoice: def is the index of the default choice
  std::vector<std::string> choices;      // kChoice only
  std::string help;
};

// The learning rate over training: constant, or cosine (Loshchilov & Hutter 2017) from lr down to 0 over
// the planned steps, after an optional linear warm-up.
enum class LrSchedule { kConstant, kCosine };
// How a batch's loss is reduced before the gradient: every Model's backward(scale) accumulates scale times
// the gradient of the loss summed over the batch (one convention for all models); the Trainer passes
// scale = 1 for kSum (the autoencoder kinds' recipe, as PyTorch's VAE example) and 1/B for kMean (as
// PyTorch's cross_entropy default: the PixelCNN prior and the judge classifier).
enum class LossReduction { kSum, kMean };

struct TrainSettings {
  int batch = 128;
  AdamConfig adam;  // lr from the table; betas and eps stay PyTorch's defaults (not user settings)
  uint64_t seed = 1;
  int epochs = 10;  // planned length, for schedules and the models' own schedules (0: open-ended)
  LrSchedule schedule = LrSchedule::kConstant;
  int64_t warmup = 0;     // steps of linear warm-up from lr / warmup to lr (0: none)
  double clip = 0.0;      // largest global L2 norm of the gradient; larger ones are scaled down (0: off)
  LossReduction reduction = LossReduction::kSum;

  // Every value against the table; the first bad one gives "name = value is out of range [lo, hi]" (or
  // "must be an integer", "is not one of ...").
  Status validate() const;
  // Sets one setting by its table name from a number (kChoice: the index) or, for choices, a string.
  Status set(const std::string& name, double value);
  Status set(const std::string& name, const std::string& choice);
  // The setting as a number (kChoice: its index); asserts the name is in the table.
  double get(const std::string& name) const;
  // {"lr":0.001,"batch":128,...}: every setting of the table, choices as strings. `extra` members
  // ("\"data\":\"mnist\"", already JSON) are appended, so a recipe is one object.
  std::string to_json(const std::vector<std::string>& extra = {}) const;
  // Reads an object of table keys (absent keys keep their defaults) and validates it. An unknown key, a
  // value of the wrong type or out of range is an error; *out is unchanged on error.
  static Status from_json(const std::string& json, TrainSettings* out);
  // The learning rate of step t (0-based) of `total` planned steps (0: unknown; cosine then stays at lr).
  double lr_at(int64_t t, int64_t total) const;
};

const std::vector<SettingSpec>& train_setting_specs();
const SettingSpec* find_train_setting(const std::string& name);
// Checks one value against its spec, with the message every front end shows:
// "lr = 20 is out of range [1e-08, 10]", "batch = 1.5 must be an integer".
Status check_setting(const SettingSpec& spec, double value);
// The table as JSON, for the page: [{name, type: "int"|"number"|"choice", default, min, max, choices,
// help}], the defaults of choices as strings.
std::string train_settings_json();

}  // namespace ll
