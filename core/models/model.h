// Model: what the trainer, the command-line tool and the wasm bindings see of an autoencoder.
// A concrete model is a plain struct of named layers whose backward calls them explicitly in reverse
// (mlp_ae.h, mlp_vae.h, ...). All parameters live in one ParamArena; activations are sized once by
// reserve(max_batch); forward/backward never allocate.
// Model kinds are listed in one registry (model_registry.cpp) with their hyperparameters, so the CLI,
// the model files and the bindings learn about a new kind from that one place.
#pragma once
#include <cstdint>
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
  // Set from the data, not by the user: a grid kind's K, H and W (the code model's grid). train-prior and
  // the page's form fill these from the data instead of offering them.
  bool from_data = false;
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
  // kind_if_absent: the kind when the JSON has no "kind" (a file whose "latentlab.model" names it).
  static Status from_json(const std::string& json, ModelConfig* out, const std::string& kind_if_absent = "");
  Status validate() const;  // kind known, sizes sane, every hyperparameter in range
};

// How the VAE picks z: a sample from q(z|x) (training, the usual one-sample ELBO) or its mean.
// Models without a stochastic code ignore it.
enum class ZMode { kSample, kMean };

// ---- capabilities ----
// What a model can do beyond "images in, reconstruction and loss terms out" is asked, never cast for:
// each capability is an interface a kind implements, and Model has one query per capability returning
// the interface or null (code_grids(), conditioning(), likelihood(), sampler(), sequence(), classifier(),
// inference_graph()).
// Callers (CLI, bindings, backends, page through the bindings' info()) branch on these answers, never
// on a kind's name or its class (scripts/check_protocol.sh holds every file outside the registry and
// the kinds' own files to that). Vector codes (Model::code), decoding a vector (Model::decode) and
// sampling a Gaussian prior (has_gaussian_prior) are part of Model itself.

// One level of discrete codes: an H x W grid of indices into a codebook of K vectors of size D.
struct CodeLevel {
  int H = 0, W = 0, K = 0, D = 0;
  int cells() const { return H * W; }
};

// Encoding to grids of code indices, and decoding from them: a VQ-VAE (one level), a VQ-VAE-2 (two:
// level 0 the top, coarse grid; level 1 the bottom, fine grid; issue 12). Indices, z_e rows and
// codebooks are the model's own buffers, valid until its next forward / encode / decode.
class CodeGrids {
 public:
  virtual ~CodeGrids() = default;
  virtual int levels() const = 0;
  virtual CodeLevel level(int l) const = 0;  // 0 <= l < levels()
  // Encodes x[B, input] (B <= max_batch) to every level's indices; no loss, no reconstruction.
  virtual void encode_codes(const float* x, int B) = 0;
  // From the last forward or encode_codes: indices [B, cells] in raster order (row = h * W + w), the
  // encoder's output before quantisation as rows [B * cells, D] (cell by cell), and the codebook [K, D].
  virtual const int32_t* indices(int l) const = 0;
  virtual const float* z_e_rows(int l) const = 0;
  virtual const float* codebook(int l) const = 0;
  // Decodes codes[l] ([B, cells of level l], each in [0, K)) to out[B, input]. B <= max_batch.
  virtual void decode_codes(const int32_t* const* codes, int B, float* out) = 0;
  // Training state of level l's codebook for the page: EMA updates on, per-code training steps since a
  // cell last chose it [K] (null when not tracked), restarts of dead codes so far, and the dead-code
  // window in steps (0: no restarts).
  virtual bool ema(int l) const { return false; }
  virtual const int32_t* steps_since_used(int l) const { return nullptr; }
  virtual int64_t restarts(int l) const { return 0; }
  virtual int dead_code_steps(int l) const { return 0; }
};

// A condition per example (a class label): set before forward / sampling. Declared for the
// class-conditional kinds of issue 12 (PixelCNN over pixels); no kind has it yet.
class Conditioning {
 public:
  virtual ~Conditioning() = default;
  virtual int classes() const = 0;
  // labels[B] in [0, classes()), or null for none; the model keeps the pointer until the next call.
  virtual void set_labels(const int32_t* labels, int B) = 0;
};

// An exact (or bounded) negative log-likelihood per example of the last forward, in nats: the density
// models of issue 12 (PixelCNN over pixels: exact; VQ-VAE-2 priors over codes). Declared; no kind has
// it yet (the VAEs' bound is their loss; iwae.h estimates log p(x) through Model::posterior).
class Likelihood {
 public:
  virtual ~Likelihood() = default;
  virtual bool exact() const = 0;
  virtual const float* nll() const = 0;  // [B]
};

// Drawing examples from the model's own distribution (the autoregressive kinds of issues 12 and 13;
// the VAEs' Gaussian prior is has_gaussian_prior() + decode). Declared; no kind has it yet.
class Sampler {
 public:
  virtual ~Sampler() = default;
  // count examples out[count, input] (temperature scales the logits); labels[count] when the model is
  // conditional, else null.
  virtual void sample(float* out, int count, float temperature, Rng& rng, const int32_t* labels) = 0;
};

// Stepping through a sequence with a state carried between steps: the TD-VAE's belief
// b_t = RNN(b_{t-1}, x_t) (issue 13).
class SequenceStepper {
 public:
  virtual ~SequenceStepper() = default;
  virtual int state_size() const = 0;                  // floats of state per sequence
  virtual void reset_state(int B) = 0;                 // B sequences, each at its start
  virtual void step(const float* x, int B) = 0;        // one frame x[B, input] per sequence
  virtual const float* state() const = 0;              // [B, state_size()]
  virtual int max_jump() const = 0;                    // the largest jump rollout() takes
  // From the current state: `steps` predictions, each `jump` frames after the one before (jump in
  // 1..max_jump()), drawn from the model: frames out[B, steps, input] (pixel probabilities). The state
  // is unchanged; the last forward's activations are not kept.
  virtual void rollout(int steps, int jump, float* out, int B, Rng& rng) = 0;
};

// Class probabilities of images: a classifier (the judge of generated digits, core/eval/classifier.h;
// the "classifier" kind). Its probabilities are the model's own buffer, valid until its next forward or
// classify.
class ClassProbabilities {
 public:
  virtual ~ClassProbabilities() = default;
  virtual int classes() const = 0;
  // A short name of the architecture for reports ("conv", "mlp").
  virtual std::string arch() const = 0;
  // x [B, input] in [0, 1] (B <= max_batch) -> probabilities [B, classes()]; no labels, no loss.
  virtual const float* classify(const float* x, int B) = 0;
};

// A forward-only reconstruction as a chain of standard layers, for inference backends (XNNPACK): the
// model exports its weights (PyTorch layouts, the model's own memory) and shapes; the backend builds its
// operators from them and never needs the model's class. Each layer reads the previous one's output.
//   kLinear           x [B, C] -> [B, OC]; weight [OC, C], bias [OC]
//   kConv2d           [B, C, H, W] -> [B, OC, ...]; weight [OC, C, kernel, kernel], bias [OC]
//   kConvTranspose2d  weight [C, OC, kernel, kernel], bias [OC]
//   kQuantise         each cell's C-vector replaced by its nearest row of the codebook `weight`
//                     [codes, C] (vq_nearest: ties to the lowest index)
// Activations between convolutions are images of H x W (the layer's input size) with C channels.
struct InferenceLayer {
  enum class Type { kLinear, kConv2d, kConvTranspose2d, kQuantise };
  Type type = Type::kLinear;
  std::string name;  // the tensors' prefix ("fc1", "encoder.0")
  const float* weight = nullptr;
  const float* bias = nullptr;
  int C = 0, OC = 0;
  int kernel = 1, stride = 1, pad = 0;
  int H = 1, W = 1;  // input size of a convolution or quantisation
  int codes = 0;     // kQuantise: codebook rows
  // kQuantise: the model's nearest-code search, idx[n] = argmin_k ||z_n - e_k||^2 for rows z [N, C] and
  // the codebook [codes, C]; dist is scratch of min(N, 256) * codes floats (vq_nearest, vqvae.h).
  void (*nearest)(int32_t* idx, const float* z, const float* codebook, int N, int K, int D, float* dist) = nullptr;
  bool relu = false;  // a ReLU after the layer
};
struct InferenceGraph {
  std::vector<InferenceLayer> layers;
  bool sigmoid_output = false;  // a sigmoid after the last layer (pixel probabilities)
};
// A kLinear layer (the MLP kinds' graphs are four of them).
InferenceLayer linear_inference_layer(const std::string& name, const float* weight, const float* bias, int C,
                                      int OC, bool relu);

// One named piece of a model's training state beyond its parameters (Model::training_state): values as
// doubles, so float state and integer counters alike round-trip exactly (integers up to 2^53).
struct StateTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<double> values;  // product of shape
};

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
  // Labels [B] (classes 0..9) of the batch the next forward() sees, or null when the data have none.
  // The Trainer and evaluate() set them before every forward(); a kind that needs them says so, and
  // the Trainer refuses data without labels for it.
  void set_batch_labels(const int32_t* labels) { batch_labels_ = labels; }
  virtual bool needs_labels() const { return false; }

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

  // ---- capabilities (see above): null / false when the model has none ----
  virtual CodeGrids* code_grids() { return nullptr; }
  const CodeGrids* code_grids() const { return const_cast<Model*>(this)->code_grids(); }
  virtual Conditioning* conditioning() { return nullptr; }
  virtual Likelihood* likelihood() { return nullptr; }
  virtual Sampler* sampler() { return nullptr; }
  virtual SequenceStepper* sequence() { return nullptr; }
  virtual ClassProbabilities* classifier() { return nullptr; }
  // Whether the model's forward-only reconstruction (ZMode::kMean) is a chain of standard layers; fills
  // *out when out is not null (pointers into the model's weights, valid while it lives and is unchanged).
  // Valid on a shapes-only model with out == null (the answer depends on the kind and config only).
  virtual bool inference_graph(InferenceGraph* out) const { return false; }
  // Whether the model's inputs are grids of category indices rather than pixel intensities: each example
  // is grid->H x grid->W cells (config.input = H * W floats), each an integer in [0, grid->K) (grid->D
  // unused). Its data sets are categorical (Dataset::categorical: the bytes are the indices). The
  // PixelCNN over VQ codes (K codes on the code grid) or over binarised pixels (K = 2) has it.
  virtual bool categorical_input(CodeLevel* grid) const { return false; }

  // ---- file layout (defaults: every tensor stored as in memory) ----
  // The shape of parameter slot `slot` in model files when the kind stores it differently (the PixelCNN
  // keeps only the taps a masked kernel's mask allows); loading accepts this shape or the memory's.
  // Valid on a shapes-only model.
  virtual std::vector<int64_t> file_shape(int slot) const { return params_.slots()[static_cast<size_t>(slot)].shape; }
  // Converts slot `slot` between the memory layout and file_shape (called only where they differ).
  virtual void to_file_layout(int slot, const float* mem, float* file) const {}
  virtual void from_file_layout(int slot, const float* file, float* mem) const {}
  // After a file's weights were read (e.g. re-zero masked taps).
  virtual void after_load() {}

  // ---- training hooks (the Trainer calls these; defaults do nothing) ----
  // Corrupt a training input in place (denoising autoencoders); the loss target stays clean.
  virtual void corrupt(float* x, int B, Rng& rng) const {}
  // Before each training step: step counts from 0; total_steps is 0 when unknown. For schedules
  // (k-sparse annealing, beta-VAE capacity).
  virtual void begin_step(int64_t step, int64_t total_steps) {}
  // After each optimiser step: non-gradient updates (EMA codebook, dead-code restart).
  virtual void after_step(Rng& rng) {}

  // ---- training state beyond the parameters (resume files: core/train/checkpoint.h) ----
  // What a run must carry, besides the weights and Adam's moments, to continue bit-identically after a
  // stop (the VQ-VAE's EMA counts and sums, steps since each code was used, restarts). Schedules driven
  // by begin_step's step number (k-sparse annealing, beta-VAE capacity) need nothing here. Defaults: none.
  virtual std::vector<StateTensor> training_state() const { return {}; }
  // Sets it back from tensors with exactly training_state()'s names and shapes (the caller checks them);
  // a value outside its domain (a negative count, a non-finite sum) is an error and changes nothing.
  virtual Status set_training_state(const std::vector<StateTensor>& state) { return Status(); }

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
  const int32_t* batch_labels_ = nullptr;  // set_batch_labels(); valid during forward/backward
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
  // Fills in what a file of this kind written by an older LatentLab left out (a hyperparameter added
  // later, whose old behaviour differs from its default); runs on the config read from a file's
  // metadata, before validation. Null when there is nothing to fill.
  void (*old_file_defaults)(ModelConfig* config) = nullptr;
  // Which of the architecture sizes (model_size_specs) the kind reads; the page's form and the CLI's
  // help show only those.
  bool uses_hidden = true, uses_latent = true;
  // Kinds whose input size follows from their hyperparameters (a grid kind: H * W cells); null for the
  // image kinds. ModelConfig::from_json fills a missing "input" from it, and validation requires it.
  int (*input_of)(const ModelConfig& config) = nullptr;
};
const std::vector<ModelKind>& model_kinds();
// The architecture sizes every kind may have (hidden, latent): defaults, ranges and help, in one place
// for ModelConfig::validate, the CLI's flags and the page's form.
const std::vector<HyperSpec>& model_size_specs();
// One architecture size against its spec: "latent = 0 is out of range [1, 4096]" (the message the CLI,
// the bindings and the page show); "must be an integer" for a fraction.
Status check_model_size(const HyperSpec& spec, double value);
const ModelKind* find_model_kind(const std::string& name);
// Adds a kind to the registry (e.g. a test's toy kind, from its own file). Refused when the name is
// empty, not [a-z0-9_], or taken, or the kind has no constructor. Not thread-safe: register before
// models are created from other threads (it may move the registry's entries).
Status register_model_kind(ModelKind kind);

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
