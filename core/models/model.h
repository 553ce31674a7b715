// Model: what the trainer, the command-line tool and the wasm bindings see of an autoencoder.
// A concrete model is a plain struct of named layers whose backward calls them explicitly in reverse
// (mlp_ae.h, mlp_vae.h, ...). All parameters live in one ParamArena; activations are sized once by
// reserve(max_batch); forward/backward never allocate.
// Model kinds are listed in one registry (model_registry.cpp) with their hyperparameters, so the CLI,
// the model files and the bindings learn about a new kind from that one place.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/nn/arena.h"
#include "core/base/rng.h"
#include "core/base/status.h"

namespace ll {

// One kind-specific hyperparameter: its name (JSON key; the CLI flag is --name with '_' -> '-'),
// default, allowed range, whether it must be an integer, and a one-line help.
struct HyperSpec {
  std::string name;
  double def = 0.0, lo = 0.0, hi = 0.0;
  bool integer = false;
  std::string help;
};

// Architecture and regulariser settings; saved in the model file's metadata as flat JSON
// ("latentlab.config"): {"kind": "vae", "input": 784, "hidden": 400, "latent": 20, <hyper>...}.
struct ModelConfig {
  std::string kind = "vae";
  int input = 784;  // pixels per image (28x28); conv kinds require a square image
  int hidden = 400;
  int latent = 20;
  std::map<std::string, double> hyper;  // kind-specific; absent keys take the kind's default

  // The value of a hyperparameter of this kind (the default when unset). Asserts the name is known.
  double get(const std::string& name) const;
  std::string to_json() const;
  // Reads the keys it knows; an unknown key, or a hyperparameter of another kind, is an error.
  static Status from_json(const std::string& json, ModelConfig* out);
  Status validate() const;  // kind known, sizes sane, every hyperparameter in range
};

// How the VAE picks z: a sample from q(z|x) (training, the usual one-sample ELBO) or its mean.
// Models without a stochastic code ignore it.
enum class ZMode { kSample, kMean };

class Model {
 public:
  virtual ~Model() = default;
  const ModelConfig& config() const { return config_; }
  ParamArena& params() { return params_; }
  const ParamArena& params() const { return params_; }

  // Allocate activations for batches of up to max_batch examples (may be called again to grow).
  virtual void reserve(int max_batch) = 0;
  // An upper bound on the floats reserve(B) allocates. The default bounds every MLP kind (each keeps at
  // most 12 vectors of hidden or latent width and 4 of input width per example); conv kinds override.
  // 64-bit, so that a budget check cannot wrap in wasm32.
  virtual uint64_t activation_floats(int B) const {
    const uint64_t H = static_cast<uint64_t>(config_.hidden), Z = static_cast<uint64_t>(config_.latent);
    return static_cast<uint64_t>(B) * (12 * (H + Z) + 4 * static_cast<uint64_t>(config_.input) + 16);
  }
  // Floats the model holds with activations for B examples: its four parameter arenas (weights,
  // gradients, two Adam moments) and activation_floats(B). Valid on a shapes-only model (arena.h).
  uint64_t memory_floats(int B) const;
  int max_batch() const { return max_batch_; }
  // PyTorch's default initialisation of every layer (plus any kind-specific state, e.g. a codebook).
  virtual void init(Rng& rng) = 0;

  // input[B, config.input] in [0, 1] is encoded; the loss compares the reconstruction with
  // target[B, config.input] (the same pointer for a plain autoencoder; the clean image for a denoising
  // one). Computes the reconstruction and the per-example loss terms; keeps what backward needs
  // (the caller keeps input and target alive until backward). rng is used only for random choices
  // inside the model (z samples).
  virtual void forward(const float* input, const float* target, int B, Rng& rng, ZMode mode) = 0;
  // Accumulates scale * d(sum over the batch of the loss)/d(params) into params().grads, where the
  // loss is the sum of all loss terms. Call after forward with the same batch.
  virtual void backward(float scale) = 0;

  // The loss is the sum of these terms ("bce", "kl", ...); values per example [B] of the last forward.
  virtual std::vector<std::string> loss_terms() const = 0;
  virtual const float* term(int index) const = 0;
  // From the last forward: reconstruction probabilities [B, input], and the code [B, code_size()]
  // (the VAE's posterior mean; the AE's code; the VQ-VAE's quantised grid).
  virtual const float* reconstruction() const = 0;
  virtual const float* code() const = 0;
  virtual int code_size() const { return config_.latent; }
  // Decode codes z[B, code_size()] to pixel probabilities out[B, input]. B <= max_batch. May reuse
  // activation buffers (the last forward's results are then gone).
  virtual void decode(const float* z, int B, float* out) = 0;
  // Whether sampling from a prior N(0, I) over the code makes sense (VAEs).
  virtual bool has_gaussian_prior() const { return false; }
  // The Gaussian posterior q(z|x) = N(mu, exp(logvar)) of the last forward and the z it decoded, each
  // [B, code_size()]; false for models without one. Used by the importance-weighted log p(x) (iwae.h).
  virtual bool posterior(const float** mu, const float** logvar, const float** z) const { return false; }

  // ---- training hooks (the Trainer calls these; defaults do nothing) ----
  // Corrupt a training input in place (denoising autoencoders); the loss target stays clean.
  virtual void corrupt(float* x, int B, Rng& rng) const {}
  // Before each training step: step counts from 0; total_steps is 0 when unknown. For schedules
  // (k-sparse annealing, beta-VAE capacity).
  virtual void begin_step(int64_t step, int64_t total_steps) {}
  // After each optimiser step: non-gradient updates (EMA codebook, dead-code restart).
  virtual void after_step(Rng& rng) {}

  // ---- model-specific figures over an evaluation (defaults: none) ----
  // reset, then accumulate after every forward of B examples, then report name/value pairs
  // (e.g. sparse AE mean activation, VAE active units, VQ-VAE perplexity).
  virtual void metrics_reset() {}
  virtual void metrics_accumulate(int B) {}
  virtual void metrics_report(std::vector<std::pair<std::string, double>>* out) const {}

 protected:
  ModelConfig config_;
  ParamArena params_;
  int max_batch_ = 0;
};

// A model kind in the registry.
struct ModelKind {
  std::string name;         // "vae"
  std::string description;  // one line for --help
  std::vector<HyperSpec> hyper;
  std::unique_ptr<Model> (*create)(const ModelConfig& config);
  // Recognises a file saved without LatentLab metadata (from PyTorch) by its tensor names, and reads
  // the architecture from their shapes; null when the kind cannot be told from names alone.
  bool (*infer)(const std::map<std::string, std::vector<int64_t>>& shapes, ModelConfig* out);
  // Kind-specific consistency of a config beyond each setting's range (e.g. a square image for conv
  // kinds); null when there is none. Runs in ModelConfig::validate, so a bad file never reaches a
  // constructor's asserts.
  Status (*check)(const ModelConfig& config) = nullptr;
  // Which of the architecture sizes (model_size_specs) the kind reads; the page's form and the CLI's
  // help show only those.
  bool uses_hidden = true, uses_latent = true;
};
const std::vector<ModelKind>& model_kinds();
// The architecture sizes every kind may have (hidden, latent): defaults, ranges and help, in one place
// for ModelConfig::validate, the CLI's flags and the page's form.
const std::vector<HyperSpec>& model_size_specs();
// One architecture size against its spec: "latent = 0 is out of range [1, 4096]" (the message the CLI,
// the bindings and the page show); "must be an integer" for a fraction.
Status check_model_size(const HyperSpec& spec, double value);
const ModelKind* find_model_kind(const std::string& name);

// The memory budget of one model: parameters (four arenas) plus the activations of a batch, in floats.
// 2^28 floats (1 GiB) is far beyond every model LatentLab ships or the page trains (with a batch of 128:
// the MLP VAE 3.7 M floats, the conv VAE 11.1 M, the VQ-VAE 4.6 M) and within what a wasm32 module
// (2 GB) can hold.
// Configs or batches beyond it are refused before anything is allocated.
constexpr uint64_t kMaxModelFloats = uint64_t(1) << 28;
// Whether a model of `config` with activations for `batch` examples (0: none yet) fits kMaxModelFloats.
// Allocates nothing of the model's size (its layout is computed under ShapesOnly). `floats` (optional)
// gets the figure.
Status check_memory_budget(const ModelConfig& config, int batch, uint64_t* floats = nullptr);
// The same for an existing model (e.g. before a trainer reserves a batch for it).
Status check_memory_budget(const Model& model, int batch, uint64_t* floats = nullptr);

// Creates a model of config.kind with its arena finalised (weights zero: call init or load) and no
// activations. Refuses configs beyond the memory budget (check_memory_budget) before allocating.
// Under a ShapesOnly scope the model has its layout but no memory: only for reading shapes and sizes.
Status create_model(const ModelConfig& config, std::unique_ptr<Model>* out);

}  // namespace ll
