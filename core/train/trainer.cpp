// Training and evaluation loops; see trainer.h.
#include "core/train/trainer.h"

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <cmath>
#include <numeric>

#include "core/kernels/kernels.h"

namespace ll {

double LossTotals::loss() const {
  double s = 0.0;
  for (double t : terms) s += t;
  return count ? s / count : 0.0;
}

double LossTotals::mean(size_t term) const { return count ? terms[term] / count : 0.0; }

void LossTotals::add(const LossTotals& o) {
  if (terms.size() < o.terms.size()) terms.resize(o.terms.size(), 0.0);
  for (size_t i = 0; i < o.terms.size(); i++) terms[i] += o.terms[i];
  mse += o.mse;
  count += o.count;
}

void accumulate_totals(const Model& model, const float* x, int B, LossTotals* totals) {
  size_t nterms = model.loss_terms().size();
  if (totals->terms.size() < nterms) totals->terms.resize(nterms, 0.0);
  for (size_t t = 0; t < nterms; t++) {
    const float* v = model.term(static_cast<int>(t));
    for (int b = 0; b < B; b++) totals->terms[t] += v[b];
  }
  const float* p = model.reconstruction();
  totals->count += B;
  if (!p) return;
  const size_t n = static_cast<size_t>(B) * model.config().input;
  double se = 0.0;
  for (size_t i = 0; i < n; i++) {
    double d = static_cast<double>(p[i]) - x[i];
    se += d * d;
  }
  totals->mse += se;
}

// The global L2 norm of n gradients, summed in double (order fixed: the same on every machine).
static double global_norm(const float* g, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += static_cast<double>(g[i]) * g[i];
  return std::sqrt(s);
}

Status Trainer::setup(Model* model, const Dataset* train, const TrainSettings& settings) {
  Status s = settings.validate();
  if (!s.ok()) return s;
  if (train->size() < 1) return Status::error("the training set is empty");
  if (train->images.pixels_per_image() != model->config().input)
    return Status::error("the data set has " + std::to_string(train->images.pixels_per_image()) +
                         " pixels per image but the model expects " +
                         std::to_string(model->config().input));
  const bool has_labels = !train->labels.labels.empty();
  if (model->needs_labels() && !has_labels)
    return Status::error("the " + model->config().kind + " model is conditioned on a class label, and the "
                         "training set has no labels");
  if (model->categorical_input(nullptr) != train->categorical)
    return Status::error(std::string("the ") + model->config().kind + " model takes " +
                         (train->categorical ? "images, not grids of categories (code grids)"
                                             : "grids of categories (e.g. a VQ-VAE's code grids), not images"));
  // Before anything of the batch's size is allocated: the model's activations for it fit the budget.
  s = check_memory_budget(*model, settings.batch);
  if (!s.ok()) return s;
  model_ = model;
  data_ = train;
  reference_loss_ = -1.0;
  settings_ = settings;
  adam_ = Adam();
  adam_.config = settings.adam;
  rng_ = Rng(settings.seed, /*stream=*/2);
  order_.resize(static_cast<size_t>(train->size()));
  std::iota(order_.begin(), order_.end(), 0u);
  rng_.shuffle(order_.data(), order_.size());
  x_.assign(static_cast<size_t>(settings.batch) * model->config().input, 0.0f);
  input_.assign(x_.size(), 0.0f);
  labels_.assign(static_cast<size_t>(settings.batch), 0);
  model->reserve(settings.batch);
  cursor_ = 0;
  epoch_ = 0;
  return Status();
}

void Trainer::set_rng(const Rng& rng) {
  assert(adam_.step_count == 0 && cursor_ == 0 && "Trainer::set_rng after the first step");
  rng_ = rng;
  std::iota(order_.begin(), order_.end(), 0u);
  rng_.shuffle(order_.data(), order_.size());
}

int Trainer::steps_per_epoch() const {
  return (data_->size() + settings_.batch - 1) / settings_.batch;
}

int64_t Trainer::planned_steps() const {
  return settings_.epochs > 0 ? int64_t(settings_.epochs) * steps_per_epoch() : 0;
}

Status Trainer::step(LossTotals* batch_totals, StepMetrics* metrics) {
  const int B = std::min(settings_.batch, data_->size() - cursor_);
  data_->to_float(order_.data(), cursor_, B, x_.data());
  const size_t n = static_cast<size_t>(B) * model_->config().input;
  std::copy(x_.begin(), x_.begin() + n, input_.begin());
  model_->corrupt(input_.data(), B, rng_);
  const int64_t total = planned_steps();
  model_->begin_step(adam_.step_count, total);
  const bool has_labels = !data_->labels.labels.empty();
  for (int b = 0; has_labels && b < B; b++) labels_[b] = data_->labels.labels[order_[cursor_ + b]];
  model_->set_batch_labels(has_labels ? labels_.data() : nullptr);
  model_->forward(input_.data(), x_.data(), B, rng_, ZMode::kSample);
  LossTotals totals;
  accumulate_totals(*model_, x_.data(), B, &totals);
  const int64_t step_number = adam_.step_count + 1;
  for (size_t t = 0; t < totals.terms.size(); t++) {
    if (!std::isfinite(totals.terms[t]))
      return Status::error("training diverged at step " + std::to_string(step_number) + ": the " +
                           model_->loss_terms()[t] +
                           " term is not finite; the update was skipped and the weights are "
                           "unchanged (try a lower learning rate)");
  }
  const double loss = totals.loss();
  if (reference_loss_ < 0.0) reference_loss_ = loss;
  const double limit = kDivergenceFactor * std::max(reference_loss_, 1.0);
  if (loss > limit) {
    char buf[240];
    std::snprintf(buf, sizeof buf,
                  "training diverged at step %lld: the loss %.4g per image is more than %g times the "
                  "initial %.4g; the update was skipped and the weights are unchanged (try a lower "
                  "learning rate)",
                  static_cast<long long>(step_number), loss, kDivergenceFactor, reference_loss_);
    return Status::error(buf);
  }
  ParamArena& arena = model_->params();
  arena.zero_grad();
  model_->backward(settings_.reduction == LossReduction::kMean ? 1.0f / static_cast<float>(B) : 1.0f);
  if (!all_finite(arena.grads.data(), arena.size())) {
    std::string name = "?";
    for (const TensorSlot& slot : arena.slots())
      if (!all_finite(arena.grads.data() + slot.offset, slot.size)) { name = slot.name; break; }
    return Status::error("training diverged at step " + std::to_string(step_number) +
                         ": the gradient of '" + name +
                         "' is not finite; the update was skipped and the weights are unchanged "
                         "(try a lower learning rate)");
  }
  StepMetrics m;
  m.grad_norm = global_norm(arena.grads.data(), arena.size());
  if (settings_.clip > 0.0 && m.grad_norm > settings_.clip) {
    // g <- g * clip / norm, as torch.nn.utils.clip_grad_norm_ (without its 1e-6 in the denominator).
    const float f = static_cast<float>(settings_.clip / m.grad_norm);
    float* g = arena.grads.data();
    for (size_t i = 0; i < arena.size(); i++) g[i] *= f;
    m.clipped = true;
  }
  // The constant schedule without warm-up leaves the configured lr untouched (bit-identical recipes).
  m.lr = settings_.lr_at(adam_.step_count, total);
  adam_.config.lr = m.lr;
  adam_.step(arena);
  model_->after_step(rng_);
  cursor_ += B;
  if (cursor_ >= data_->size()) {
    cursor_ = 0;
    epoch_++;
    rng_.shuffle(order_.data(), order_.size());
  }
  if (batch_totals) *batch_totals = totals;
  if (metrics) {
    m.step = adam_.step_count;
    m.epoch = epoch_;
    *metrics = m;
  }
  return Status();
}

TrainerPosition Trainer::position() const {
  return {adam_.step_count, epoch_, cursor_, reference_loss_, rng_.state(), order_};
}

Status Trainer::set_position(const TrainerPosition& p) {
  if (!model_) return Status::error("the trainer is not set up");
  const size_t n = order_.size();
  if (p.order.size() != n)
    return Status::error("the saved order covers " + std::to_string(p.order.size()) +
                         " training images but the data set has " + std::to_string(n));
  std::vector<bool> seen(n, false);
  for (uint32_t i : p.order) {
    if (i >= n || seen[i]) return Status::error("the saved order is not a permutation of the training images");
    seen[i] = true;
  }
  if (p.cursor < 0 || static_cast<size_t>(p.cursor) >= n || p.cursor % settings_.batch != 0)
    return Status::error("the saved position " + std::to_string(p.cursor) + " is not a batch start inside the " +
                         std::to_string(n) + " training images (batch " + std::to_string(settings_.batch) + ")");
  if (p.step < 0 || p.epoch < 0 || (p.step > 0 && p.reference_loss < 0.0) || !std::isfinite(p.reference_loss))
    return Status::error("the saved step count, epoch or reference loss is invalid");
  if (p.step != int64_t(p.epoch) * steps_per_epoch() + p.cursor / settings_.batch)
    return Status::error("the saved step " + std::to_string(p.step) + " does not match epoch " +
                         std::to_string(p.epoch) + " and position " + std::to_string(p.cursor) + " with " +
                         std::to_string(steps_per_epoch()) + " steps per epoch");
  if ((p.rng.inc & 1u) == 0 || !std::isfinite(p.rng.spare))
    return Status::error("the saved random generator state is invalid");
  adam_.step_count = p.step;
  epoch_ = p.epoch;
  cursor_ = p.cursor;
  reference_loss_ = p.reference_loss;
  rng_.set_state(p.rng);
  order_ = p.order;
  return Status();
}

LossTotals evaluate(Model& model, const Dataset& data, ZMode mode, Rng& rng, int batch, int limit,
                    const NoiseSpec& noise) {
  LossTotals totals;
  assert(data.images.pixels_per_image() == model.config().input && "evaluate: image size != model input");
  if (data.images.pixels_per_image() != model.config().input) return totals;
  const int n = limit > 0 && limit < data.size() ? limit : data.size();
  const size_t P = static_cast<size_t>(model.config().input);
  std::vector<float> x(static_cast<size_t>(batch) * P), input;
  std::vector<int32_t> labels(static_cast<size_t>(batch));
  const bool has_labels = !data.labels.labels.empty();
  assert((has_labels || !model.needs_labels()) && "evaluate: the model needs labels and the data have none");
  if (!has_labels && model.needs_labels()) return totals;
  if (noise.type != NoiseType::kNone) input.resize(x.size());
  model.reserve(batch);
  model.metrics_reset();
  for (int first = 0; first < n; first += batch) {
    const int B = std::min(batch, n - first);
    data.to_float(nullptr, first, B, x.data());
    const float* in = x.data();
    if (!input.empty()) {
      std::copy(x.begin(), x.begin() + B * P, input.begin());
      apply_noise(noise, input.data(), B * P, rng);
      in = input.data();
    }
    for (int b = 0; has_labels && b < B; b++) labels[b] = data.labels.labels[first + b];
    model.set_batch_labels(has_labels ? labels.data() : nullptr);
    model.forward(in, x.data(), B, rng, mode);
    accumulate_totals(model, x.data(), B, &totals);
    model.metrics_accumulate(B);
  }
  model.metrics_report(&totals.metrics);
  return totals;
}

}  // namespace ll
