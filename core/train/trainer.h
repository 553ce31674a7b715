// Training and evaluation loops over an in-memory Dataset (images kept as bytes, converted per batch).
// Shared by the native tool and (later) the browser worker; reports through return values, never prints.
// Each epoch visits the training set in a fresh shuffled order; the last batch may be smaller (as
// PyTorch's DataLoader without drop_last). The loss of a batch is summed over its images (as the
// PyTorch VAE example), so gradients are of the batch sum. The gradient convention: every Model's
// backward(scale) accumulates scale times the gradient of the loss summed over the batch; the Trainer
// picks the scale from TrainSettings::reduction (1 for kSum, 1/B for kMean). Per step it sets the
// learning rate from the schedule, and clips the gradient's global norm when settings.clip > 0.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/nn/adam.h"
#include "core/io/idx.h"
#include "core/models/model.h"
#include "core/nn/noise.h"
#include "core/base/status.h"
#include "core/train/settings.h"

namespace ll {

// Sums of each loss term (in Model::loss_terms() order) and of the per-image squared error of the
// reconstruction probabilities, over `count` images.
struct LossTotals {
  std::vector<double> terms;
  double mse = 0.0;
  int64_t count = 0;
  // Model-specific figures (Model::metrics_report) of an evaluation; empty for training batches.
  std::vector<std::pair<std::string, double>> metrics;
  double loss() const;                     // sum over terms, per image
  double mean(size_t term) const;          // per image
  double mse_mean() const { return count ? mse / count : 0.0; }
  void add(const LossTotals& other);
};

// What one training step did, for charts: the batch's loss terms (LossTotals), the learning rate it
// used, and the global L2 norm of the gradient before clipping (of the reduced loss: sum or mean).
struct StepMetrics {
  int64_t step = 0;  // 1-based: steps done after this one
  int epoch = 0;     // completed epochs after this step
  double lr = 0.0;
  double grad_norm = 0.0;
  bool clipped = false;
};

// Where a Trainer is in its run, beyond the model's arenas (Adam's moments live there): what a resume
// file holds (core/train/checkpoint.h) so that a stopped run continues bit-identically.
struct TrainerPosition {
  int64_t step = 0;               // Adam's step count: steps done
  int epoch = 0;                  // completed epochs
  int cursor = 0;                 // images of the current epoch done
  double reference_loss = -1.0;   // the divergence guard's reference (< 0: no step yet)
  RngState rng;                   // the trainer's generator (shuffles, corruption, z samples, restarts)
  std::vector<uint32_t> order;    // the current epoch's order of the training images
};

class Trainer {
 public:
  // `model` must be initialised; `train` must outlive the trainer. Validates settings and shapes.
  Status setup(Model* model, const Dataset* train, const TrainSettings& settings);
  // One optimisation step on the next batch. On a non-finite loss or gradient, or a batch loss beyond
  // kDivergenceFactor times the reference loss (below), the update is skipped, the parameters are
  // unchanged, and the error says what went bad at which step.
  Status step(LossTotals* batch_totals, StepMetrics* metrics = nullptr);
  // Divergence: a batch's mean loss per image above kDivergenceFactor * max(reference, 1), where the
  // reference is the loss of the model as it was set up, on the first training batch. Training lowers
  // the loss well below its start (MNIST AE: 543 -> 70, VAE: 550 -> 105), and warm-up bumps stay within
  // a few times it; a run whose loss is 100 times its start (an AE at lr 10 reaches 1.6e12) has blown
  // up and would only save a broken model. The floor of 1 keeps a near-zero start from making every
  // later fluctuation look like divergence.
  static constexpr double kDivergenceFactor = 100.0;
  double reference_loss() const { return reference_loss_; }
  int64_t steps_done() const { return adam_.step_count; }
  int epoch() const { return epoch_; }                       // completed epochs
  int steps_per_epoch() const;
  // The planned steps: settings.epochs * steps_per_epoch() (0 when open-ended).
  int64_t planned_steps() const;
  int step_in_epoch() const { return (cursor_ + settings_.batch - 1) / settings_.batch; }
  const Adam& optimizer() const { return adam_; }
  const TrainSettings& settings() const { return settings_; }
  // The position, and setting it back after setup() with the same data (checkpoint.cpp): the order must
  // be a permutation of the data's images and the cursor a batch boundary inside it; else an error and
  // nothing changes.
  TrainerPosition position() const;
  Status set_position(const TrainerPosition& p);
  // Replaces the generator of the batch order and the model's random choices (setup seeds it from
  // settings.seed, stream 2) and redraws the first epoch's order with it. Before the first step only.
  // For a recipe whose order came from another generator: train-prior continues the one that
  // initialised the prior, as its own loop did before it moved onto the Trainer (same order, same run).
  void set_rng(const Rng& rng);

 private:
  Model* model_ = nullptr;
  const Dataset* data_ = nullptr;
  TrainSettings settings_;
  Adam adam_;
  Rng rng_;
  std::vector<uint32_t> order_;
  std::vector<float> x_;      // clean batch: the target
  std::vector<float> input_;  // what the model sees (corrupted for denoising models)
  std::vector<int32_t> labels_;  // the batch's labels, in its order (Model::set_batch_labels)
  int cursor_ = 0;
  int epoch_ = 0;
  double reference_loss_ = -1.0;  // < 0 until the first step
};

// Mean loss terms over the first `limit` images of `data` (all if limit <= 0), in batches of `batch`,
// plus the model's own metrics. The data's images must have model.config().input pixels (callers check
// it; a mismatch asserts and, in release builds, gives empty totals rather than reading out of bounds),
// mode kMean gives the deterministic figure (z = posterior mean);
// kSample draws z with rng. With `noise`, inputs are corrupted (with rng) and the targets stay clean.
LossTotals evaluate(Model& model, const Dataset& data, ZMode mode, Rng& rng, int batch = 500,
                    int limit = 0, const NoiseSpec& noise = NoiseSpec());

// Accumulate one forward's per-example terms and reconstruction MSE (none for a model without a
// reconstruction: a classifier) into totals.
void accumulate_totals(const Model& model, const float* x, int B, LossTotals* totals);

}  // namespace ll
