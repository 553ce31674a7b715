// Resume files: a model file (core/models/model_file.h) that also holds what a Trainer needs to continue
// its run bit-identically after a stop: Adam's two moments, the trainer's position (steps done, epoch,
// place in the epoch, the epoch's shuffled order, the trainer's random generator, the divergence guard's
// reference loss), the model's own training state (Model::training_state: the VQ-VAE's EMA codebook
// state and dead-code counters) and the run's training settings. One file, written in one piece (the
// caller writes it atomically), so the weights and their optimiser state can never come from different
// steps. Works on byte buffers only (the browser could use it); never prints.
//
// Layout, beside the model's own tensors and metadata:
//   metadata "latentlab.resume"        {"version": 1, "settings": {TrainSettings}, "step", "epoch",
//                                       "cursor", "reference_loss", "rng": {"state", "inc" (hex strings),
//                                       "has_spare", "spare"}, "caller": {whatever the caller keeps}}
//   latentlab.resume.exp_avg.<name>    F32, the shape of parameter <name>: Adam's first moment
//   latentlab.resume.exp_avg_sq.<name> F32: Adam's second moment (PyTorch's names for the two)
//   latentlab.resume.order             F64 [N]: the current epoch's order of the N training images
//   latentlab.resume.model.<state>     F64: each of the model's training_state() tensors
// load_model skips the latentlab.resume.* tensors of such a file, so `eval` and the page load it as the
// model it is; PyTorch's strict load_state_dict needs them filtered out (tools/pytorch/latentlab_torch.py
// does). Weights are always F32 here: a resumed run continues from the exact weights.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/base/status.h"
#include "core/models/model.h"
#include "core/train/settings.h"
#include "core/train/trainer.h"

namespace ll {

// Everything a resume file holds besides the model.
struct ResumeState {
  TrainSettings settings;   // the run's settings (epochs: the total planned)
  TrainerPosition position;
  std::vector<float> adam_m, adam_v;     // in the model arena's layout (size() floats each)
  std::vector<StateTensor> model_state;  // exactly the model's training_state() names and shapes
  std::string caller = "{}";             // the caller's own JSON object, as saved
};

// The resume file of `model` as `trainer` (set up on it) has trained it so far: the model file bytes
// (weights F32, `metadata` added, e.g. the recipe) plus the state above. `caller_json` is a JSON object
// the caller gets back from load_resume_file (the CLI keeps its data set and epoch totals there).
std::vector<uint8_t> save_resume_file(const Model& model, const Trainer& trainer,
                                      const std::map<std::string, std::string>& metadata,
                                      const std::string& caller_json = "{}");

// Reads a resume file: the model (as load_model: weights loaded, no activations) and its state, all
// checked (every tensor present with its shape, finite, the order a list of image indices, the settings
// valid). A model file without the state, a truncated file, or state of another model is one error; on
// error *model and *state are untouched.
Status load_resume_file(const uint8_t* bytes, size_t size, std::unique_ptr<Model>* model, ResumeState* state,
                        std::map<std::string, std::string>* metadata = nullptr);

// After trainer->setup(model, data, settings) with the file's model and settings (only epochs may
// differ): sets Adam's moments, the model's training state and the trainer's position. Fails (changing
// nothing) when the data set is not the one the order was made for (another size) or the position does
// not fit the settings.
Status resume_training(const ResumeState& state, Model* model, Trainer* trainer);

}  // namespace ll
