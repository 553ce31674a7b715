// The registry of model kinds: name, description, hyperparameters, constructor, and how to recognise a
// PyTorch-saved file of the kind. Adding a kind = one entry here (and its own files).
#include <map>
#include <string>
#include <vector>

#include "core/mlp_ae.h"
#include "core/mlp_vae.h"
#include "core/model.h"

namespace ll {

namespace {

using Shapes = std::map<std::string, std::vector<int64_t>>;

// Reads input/hidden/latent from a first layer [hidden, input] and a code layer [latent, hidden].
bool infer_mlp(const Shapes& shapes, const char* first, const char* code, const char* kind,
               ModelConfig* out) {
  auto a = shapes.find(first), b = shapes.find(code);
  if (a == shapes.end() || b == shapes.end() || a->second.size() != 2 || b->second.size() != 2)
    return false;
  out->kind = kind;
  out->hidden = static_cast<int>(a->second[0]);
  out->input = static_cast<int>(a->second[1]);
  out->latent = static_cast<int>(b->second[0]);
  return true;
}

template <typename T>
std::unique_ptr<Model> make(const ModelConfig& c) {
  return std::unique_ptr<Model>(new T(c));
}

}  // namespace

const std::vector<ModelKind>& model_kinds() {
  static const std::vector<ModelKind> kinds = {
      {"ae", "MLP autoencoder: input-hidden-latent-hidden-input, ReLU, linear code, BCE", {},
       make<MlpAutoencoder>,
       [](const Shapes& s, ModelConfig* c) { return infer_mlp(s, "encoder.0.weight", "encoder.2.weight", "ae", c); }},
      {"vae", "MLP VAE (Kingma & Welling): Gaussian encoder, Bernoulli decoder, BCE + KL", {},
       make<MlpVae>,
       [](const Shapes& s, ModelConfig* c) { return infer_mlp(s, "fc1.weight", "fc21.weight", "vae", c); }},
  };
  return kinds;
}

}  // namespace ll
