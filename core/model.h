// Model: what the trainer, the command-line tool and (later) the wasm bindings see of an autoencoder.
// A concrete model is a plain struct of named layers whose backward calls them explicitly in reverse
// (mlp_ae.h, mlp_vae.h). All parameters live in one ParamArena; activations are sized once by
// reserve(max_batch); forward/backward never allocate.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/rng.h"
#include "core/status.h"

namespace ll {

// Architecture settings; saved in the model file's metadata as JSON ("latentlab.config").
struct ModelConfig {
  std::string kind = "vae";  // "ae" | "vae"
  int input = 784;           // pixels per image (28x28)
  int hidden = 400;
  int latent = 20;

  std::string to_json() const;
  // Reads the keys it knows; unknown keys are an error (they would be silently ignored otherwise).
  static Status from_json(const std::string& json, ModelConfig* out);
  Status validate() const;  // sizes positive and sane, kind known
};

// How the VAE picks z: a sample from q(z|x) (training, the usual one-sample ELBO) or its mean.
enum class ZMode { kSample, kMean };

class Model {
 public:
  virtual ~Model() = default;
  const ModelConfig& config() const { return config_; }
  ParamArena& params() { return params_; }
  const ParamArena& params() const { return params_; }

  // Allocate activations for batches of up to max_batch examples (may be called again to grow).
  virtual void reserve(int max_batch) = 0;
  int max_batch() const { return max_batch_; }
  // PyTorch's default initialisation of every layer.
  virtual void init(Rng& rng) = 0;

  // x[B, input] in [0, 1]. Computes reconstruction logits and the per-example loss terms.
  // rng is used only for ZMode::kSample.
  virtual void forward(const float* x, int B, Rng& rng, ZMode mode) = 0;
  // Accumulates scale * d(sum over the batch of the loss)/d(params) into params().grads, where the
  // loss is the sum of all loss terms. Call after forward with the same batch.
  virtual void backward(float scale) = 0;

  // The loss is the sum of these terms ("bce", "kl"); values per example [B] from the last forward.
  virtual std::vector<std::string> loss_terms() const = 0;
  virtual const float* term(int index) const = 0;
  // From the last forward: reconstruction probabilities sigmoid(logits) [B, input], and the code
  // [B, latent] (the VAE's posterior mean; the AE's code).
  virtual const float* reconstruction() const = 0;
  virtual const float* code() const = 0;
  // Decode codes z[B, latent] to pixel probabilities out[B, input]. B <= max_batch.
  virtual void decode(const float* z, int B, float* out) = 0;

 protected:
  ModelConfig config_;
  ParamArena params_;
  int max_batch_ = 0;
};

// Creates an initialised-to-zero model of config.kind with its arena finalised and no activations.
Status create_model(const ModelConfig& config, std::unique_ptr<Model>* out);

}  // namespace ll
