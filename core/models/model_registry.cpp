// The registry of model kinds: name, description, hyperparameters, constructor, and how to recognise a
// PyTorch-saved file of the kind. Adding a kind = one entry here (and its own files), or a call of
// register_model_kind from the kind's own files (tests/toy_kind.cpp).
#include <map>
#include <string>
#include <vector>

#include "core/models/ae_family.h"
#include "core/models/beta_vae.h"
#include "core/models/classifier.h"
#include "core/models/conv_vae.h"
#include "core/models/mlp_ae.h"
#include "core/models/mlp_vae.h"
#include "core/models/pixelcnn.h"
#include "core/models/model.h"
#include "core/models/tdvae.h"
#include "core/models/vqvae.h"

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

// Conv kinds: a square image whose side is a multiple of 4 (two stride-2 convolutions).
Status check_square_image(const ModelConfig& c) {
  int side = 0;
  while ((side + 1) * (side + 1) <= c.input) side++;
  if (side * side != c.input || side % 4 != 0)
    return Status::error("model '" + c.kind + "' needs a square image whose side is a multiple of 4, not " +
                         std::to_string(c.input) + " pixels");
  return Status();
}

// An explicitly given k (or k_start) beyond the code size is an error; the defaults are capped by the
// model (so a small --hidden works without also giving --k).
Status check_ksparse(const ModelConfig& c) {
  for (const char* name : {"k", "k_start"}) {
    auto it = c.hyper.find(name);
    if (it != c.hyper.end() && it->second > c.hidden)
      return Status::error(std::string("k-sparse: ") + name + " = " + std::to_string(static_cast<int>(it->second)) +
                           " exceeds the " + std::to_string(c.hidden) + " code units (--hidden)");
  }
  return Status();
}

template <typename T>
std::unique_ptr<Model> make(const ModelConfig& c) {
  return std::unique_ptr<Model>(new T(c));
}

// LatentLab writes every hyperparameter into its files, so a VQ-VAE file without "sigmoid_output"
// predates it: its decoder's output is raw.
void vqvae_old_file_defaults(ModelConfig* c) {
  if (!c->hyper.count("sigmoid_output")) c->hyper["sigmoid_output"] = 0;
}

// The TD-VAE's sizes (tdvae.h); the defaults are the scale (belief 50, states 8 + 8, decoder
// 200) with 200-wide pre-processing, which keeps a file under 1 MB as F16.
std::vector<HyperSpec> tdvae_hyper() {
  return {{"frames", 20, 2, 100, true, "TD-VAE: frames per moving sequence"},
          {"processed", 200, 1, 4096, true, "TD-VAE: width of the two frame pre-processing layers"},
          {"belief", 50, 1, 4096, true, "TD-VAE: LSTM units of the belief"},
          {"z_size", 8, 1, 1024, true, "TD-VAE: units of each of the two state layers"},
          {"block_hidden", 50, 1, 4096, true, "TD-VAE: hidden width of the D blocks (p_B, q_S, p_T)"},
          {"decoder_hidden", 200, 1, 4096, true, "TD-VAE: hidden width of the frame decoder"},
          {"pairs", 4, 1, 64, true, "TD-VAE: (t1, t2) pairs per sequence in each training step"},
          {"max_jump", 4, 1, 64, true, "TD-VAE: largest jump t2 - t1 (jumps 1..max_jump, below frames)"}};
}

// A square image (the digit moves along its rows) and a jump shorter than the sequence.
Status check_tdvae(const ModelConfig& c) {
  int side = 0;
  while ((side + 1) * (side + 1) <= c.input) side++;
  if (side * side != c.input)
    return Status::error("model 'tdvae' needs a square image, not " + std::to_string(c.input) + " pixels");
  return TdVaeModel::net_config(c).validate();
}

// The kinds shipped with LatentLab, then any added by register_model_kind.
std::vector<ModelKind>& registry() {
  static std::vector<ModelKind> kinds = {
      {"ae", "MLP autoencoder: input-hidden-latent-hidden-input, ReLU, linear code, BCE", {},
       make<MlpAutoencoder>,
       [](const Shapes& s, ModelConfig* c) { return infer_mlp(s, "encoder.0.weight", "encoder.2.weight", "ae", c); }},
      {"vae", "MLP VAE (Kingma & Welling): Gaussian encoder, Bernoulli decoder, BCE + KL", {},
       make<MlpVae>,
       [](const Shapes& s, ModelConfig* c) { return infer_mlp(s, "fc1.weight", "fc21.weight", "vae", c); }},
      {"beta_vae", "beta-VAE (Higgins et al. 2017): the MLP VAE with BCE + beta * KL; with gamma > 0 the capacity form (Burgess et al. 2018), BCE + gamma * |KL - C|, C raised linearly to capacity_max",
       {{"beta", 4.0, 0.0, 1000.0, false, "beta-VAE: weight of the KL term (when gamma = 0)"},
        {"gamma", 0.0, 0.0, 100000.0, false, "beta-VAE capacity form: weight of |KL - C| (0: the plain beta form)"},
        {"capacity_max", 25.0, 0.0, 10000.0, false, "beta-VAE capacity form: final capacity C in nats"},
        {"capacity_steps", 0, 0, 1e9, true, "beta-VAE capacity form: training steps over which C rises from 0 to capacity_max (0: the whole training)"}},
       make<BetaVae>, nullptr},
      {"conv_vae", "Convolutional VAE: Conv(1->32->64, k4 s2 p1) encoder, Gaussian latent, ConvTranspose decoder, BCE + KL (square images, side a multiple of 4; --hidden unused)",
       {}, make<ConvVae>, ConvVae::infer, check_square_image, /*old_file_defaults=*/nullptr, /*uses_hidden=*/false},
      {"dae", "Denoising MLP autoencoder (Vincent et al. 2008): the ae trained on masked / noisy inputs, BCE against the clean image",
       {{"mask", 0.25, 0.0, 1.0, false, "Denoising: probability that a training pixel is set to 0"},
        {"gaussian", 0.0, 0.0, 10.0, false, "Denoising: standard deviation of Gaussian noise added to training inputs"}},
       make<DenoisingAutoencoder>, nullptr},
      {"sparse_ae", "Sparse autoencoder (Ng): one sigmoid hidden layer as the code, BCE + beta * sum_j KL(rho || mean activation)",
       {{"rho", 0.05, 0.001, 0.999, false, "Sparse AE: target mean activation of each code unit"},
        {"sparsity_beta", 20.0, 0.0, 1000.0, false, "Sparse AE: weight of the KL sparsity penalty"},
        {"tied", 0, 0, 1, true, "Single-layer AEs: 1 = tied weights, the decoder weight is encoder.0.weight transposed (no decoder.0.weight tensor)"}},
       make<SparseAutoencoder>, nullptr},
      {"ksparse_ae", "k-sparse autoencoder (Makhzani & Frey): one linear hidden layer as the code, only the k largest kept",
       {{"k", 25, 1, 4096, true, "k-sparse AE: code units kept per example (at most --hidden)"},
        {"k_start", 0, 0, 4096, true, "k-sparse AE: code units kept at the start of training, annealed to k (0: all)"},
        {"anneal_fraction", 0.5, 0.0, 1.0, false, "k-sparse AE: fraction of training over which k_start anneals to k"},
        {"tied", 0, 0, 1, true, "Single-layer AEs: 1 = tied weights, the decoder weight is encoder.0.weight transposed (no decoder.0.weight tensor)"}},
       make<KSparseAutoencoder>, nullptr, check_ksparse},
      {"contractive_ae", "Contractive autoencoder (Rifai et al.): one sigmoid hidden layer as the code, BCE + lambda * ||dh/dx||_F^2",
       {{"contractive_lambda", 0.1, 0.0, 1000.0, false, "Contractive AE: weight of the squared Frobenius norm of the encoder Jacobian"},
        {"tied", 0, 0, 1, true, "Single-layer AEs: 1 = tied weights, the decoder weight is encoder.0.weight transposed (no decoder.0.weight tensor)"}},
       make<ContractiveAutoencoder>, nullptr},
      {"vqvae", "Convolutional VQ-VAE (van den Oord et al. 2017): 7x7 grid of K codes of size D, MSE + codebook + commitment, EMA codebook and dead-code restart (square images, side a multiple of 4; --hidden, --latent unused)",
       vqvae_hyper(), make<VqVae>, vqvae_infer, check_square_image, vqvae_old_file_defaults,
       /*uses_hidden=*/false, /*uses_latent=*/false},
      {"tdvae", "TD-VAE (Gregor et al. 2019): each digit becomes a moving sequence (one pixel per frame, left or right, binarised per frame); belief LSTM, two layers of stochastic state, jumpy transitions; loss bce + kl_t1 + kl_t2 per sequence (square images; --hidden, --latent unused)",
       tdvae_hyper(), make<TdVaeModel>, TdVaeModel::infer, check_tdvae, /*old_file_defaults=*/nullptr,
       /*uses_hidden=*/false, /*uses_latent=*/false},
      {"classifier", "Digit classifier, the judge of generated digits: conv (Conv 1->C->2C, k5 s2, Linear) or mlp (--arch 1: Linear(input, hidden) ReLU Linear), softmax cross-entropy with the label, plus outlier exposure: jigsaw non-digits trained towards the uniform distribution (needs labels; train with --reduction mean, as train-classifier does; --latent unused)",
       classifier_hyper(), make<DigitClassifier>, classifier_infer, classifier_check, /*old_file_defaults=*/nullptr,
       /*uses_hidden=*/true, /*uses_latent=*/false},
      {"pixelcnn_prior", "PixelCNN over grids of categorical cells (van den Oord et al. 2016): the prior over a VQ-VAE's code grids, trained by train-prior; exact NLL per grid, ancestral sampling, optional class label (--hidden, --latent unused)",
       pixelcnn_hyper(), make<PixelCnnPrior>, /*infer=*/nullptr, pixelcnn_check, /*old_file_defaults=*/nullptr,
       /*uses_hidden=*/false, /*uses_latent=*/false, pixelcnn_input},
  };
  return kinds;
}

}  // namespace

const std::vector<ModelKind>& model_kinds() { return registry(); }

Status register_model_kind(ModelKind kind) {
  if (kind.name.empty()) return Status::error("register_model_kind: the kind has no name");
  for (char ch : kind.name)
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_'))
      return Status::error("register_model_kind: kind name '" + kind.name + "' may hold only a-z, 0-9 and _");
  if (!kind.create) return Status::error("register_model_kind: kind '" + kind.name + "' has no constructor");
  if (find_model_kind(kind.name)) return Status::error("register_model_kind: kind '" + kind.name + "' exists already");
  registry().push_back(std::move(kind));
  return Status();
}

const std::vector<HyperSpec>& model_size_specs() {
  // The defaults are the MLP VAE of Kingma & Welling's MNIST recipe (as PyTorch's example).
  static const std::vector<HyperSpec> specs = {
      {"hidden", 400, 1, 1 << 14, true, "Hidden layer width"},
      {"latent", 20, 1, 1 << 12, true, "Latent size"},
  };
  return specs;
}

}  // namespace ll
