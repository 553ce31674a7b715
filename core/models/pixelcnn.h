// PixelCNN prior over a grid of VQ-VAE codes (van den Oord et al. 2016, "Pixel Recurrent Neural
// Networks"; used as the VQ-VAE's prior in van den Oord et al. 2017). Each cell of the H x W grid holds
// one of K codes; p(grid) = prod_cells p(code_cell | codes of earlier cells in raster order).
//   input: one-hot codes [B, K, H, W]
//   h0 = relu(MaskedConvA(K -> C, kernel_a))                 mask A: strictly earlier cells only
//   h_{i+1} = h_i + relu(MaskedConvB_i(C -> C, kernel_b))     mask B: earlier cells and the cell itself
//   logits = Conv1x1(C -> K)(relu(Conv1x1(C -> C)(h_L)))       per-cell categorical over K codes
// That is the single stack ("stacks" = 1). Its stacked 3x3 masks have a blind spot: cell (i, j) never
// sees (i-1, j+2) and the cells above-right of it, however deep the stack. "stacks" = 2 removes it with
// the vertical and horizontal stacks of van den Oord et al. 2016b ("Conditional Image Generation with
// PixelCNN Decoders"), here with ReLU residual units instead of the gated ones:
//   v0 = relu(MaskedConvV(K -> C, kernel_a))                 mask V: rows strictly above the cell, all columns
//   h0 = relu(MaskedConvA_row(K -> C, kernel_a) + Conv1x1(v0))   mask: the cell's row, left of it only
//   v_{i+1} = v_i + relu(MaskedConvVB_i(v_i))                 mask: rows up to the cell's (v_i at row r only
//                                                             ever saw input rows < r), all columns
//   h_{i+1} = h_i + relu(MaskedConvHB_i(h_i) + Conv1x1_i(v_{i+1}))  mask: the cell's row, up to the cell
//   logits from h_L as above. v reaches every earlier row in a cone widening by kernel/2 per layer.
// Loss per grid: negative log-likelihood in nats (softmax cross-entropy summed over cells).
// Masks are applied by keeping masked weights at zero: zeroed at init and on load, their gradients
// zeroed in backward (so Adam never moves them). Tensor names as a PyTorch module would have them:
// input_conv, layers.<i>, output.0, output.2 (each .weight [OC, C, k, k] and .bias); with two stacks
// also input_vconv, input_v2h [C, C, 1, 1], vlayers.<i>, v2h.<i> [C, C, 1, 1]. In memory every masked
// conv is k x k with its masked taps zero; a file stores its kernel at its true shape, the rows r0..r1
// and columns c0..c1 of the mask that hold taps. Two stacks with 3x3 kernels: input_conv [C, K, 1, 1]
// (the cell to the left), layers.<i> [C, C, 1, 2] (the left cell and the cell), input_vconv [C, K, 1, 3]
// (the row above), vlayers.<i> [C, C, 2, 3] (the row above and the cell's row). In PyTorch each is an
// nn.Conv2d of that kernel, padding 0, applied to F.pad(x, (p - c0, c1 - p, p - r0, r1 - p)), p = k/2.
// (Files from before this hold the whole k x k kernels; they load as they are.)
// Class-conditional ("classes" = N > 0, as in van den Oord et al. 2016b): every pre-activation (each
// layer of each stack and the output head's hidden layer) adds a learned per-class bias, an
// nn.Embedding(N, C) named cond_input_conv, cond_layers.<i>, cond_output and, with two stacks,
// cond_input_vconv, cond_vlayers.<i> (each .weight [N, C]). p(grid) = sum_y p(y) p(grid | y) is then
// a mixture over the classes, still a prior over code grids: sampling draws a class, then the grid.
// A Model kind of the registry ("pixelcnn_prior"), over any grid of categorical cells: its config is the
// hyperparameters K, H, W, channels, layers, kernel_a, kernel_b, stacks, classes (ModelConfig.input =
// H * W); its data are categorical data sets (one byte per cell, the cell's index; Dataset::categorical),
// so Model::forward's input [B, H*W] holds the indices as floats. The grid is the VQ-VAE's 7x7 code grid
// with K = 64 today; a PixelCNN over binarised 28x28 pixels is the same kind with K = 2. Capabilities:
// likelihood (exact NLL per grid, nats), sampler (ancestral, cell by cell), conditioning (class label;
// the Trainer passes the data's labels, Model::set_batch_labels), categorical_input. Its files are the
// registry's model files (model_file.h) with the masked kernels stored at their taps' box (file_shape).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/models/model.h"
#include "core/nn/arena.h"
#include "core/nn/conv.h"
#include "core/base/rng.h"
#include "core/io/safetensors.h"
#include "core/base/status.h"

namespace ll {

struct PixelCnnConfig {
  int K = 64;  // codes per cell (the VQ-VAE's codebook size)
  int H = 7, W = 7;
  int channels = 64;
  int layers = 5;  // residual type-B layers
  int kernel_a = 5, kernel_b = 3;
  int stacks = 1;  // 1: the single masked stack; 2: vertical + horizontal stacks (no blind spot)
  int classes = 0;  // > 0: conditioned on a class label in [0, classes) (0: unconditional)
  std::string to_json() const;  // the prior's own config JSON (files written before it was a Model kind)
  static Status from_json(const std::string& json, PixelCnnConfig* out);
  Status validate() const;
  // As the registry's ModelConfig (kind "pixelcnn_prior", input H * W), and back.
  ModelConfig to_model_config() const;
  static PixelCnnConfig of(const ModelConfig& config);
};

// The registry's hyperparameters of the kind (defaults: train-prior's), its config check and input size.
std::vector<HyperSpec> pixelcnn_hyper();
Status pixelcnn_check(const ModelConfig& config);
int pixelcnn_input(const ModelConfig& config);

class PixelCnnPrior : public Model, public Likelihood, public Sampler, public Conditioning {
 public:
  explicit PixelCnnPrior(const PixelCnnConfig& config);
  explicit PixelCnnPrior(const ModelConfig& config) : PixelCnnPrior(PixelCnnConfig::of(config)) {}
  PixelCnnPrior(const PixelCnnPrior&) = delete;  // convs_ points into its own members
  PixelCnnPrior& operator=(const PixelCnnPrior&) = delete;
  const PixelCnnConfig& grid_config() const { return pc_; }
  void reserve(int max_batch) override;
  uint64_t activation_floats(int B) const override;
  // PyTorch's default conv init, then the masks.
  void init(Rng& rng) override;

  // ---- Model ----
  // input [B, H*W]: code indices as floats (integers in [0, K)); target is ignored (the same grids).
  // Labels from set_batch_labels (class-conditional: required). Loss term "nll" [B], nats per grid.
  void forward(const float* input, const float* target, int B, Rng& rng, ZMode mode) override;
  bool needs_labels() const override { return pc_.classes > 0; }
  std::vector<std::string> loss_terms() const override { return {"nll"}; }
  const float* term(int index) const override { return nll_.data(); }
  // The most likely code of each cell given the true earlier cells [B, H*W] (as floats).
  const float* reconstruction() const override { return argmax_.data(); }
  const float* code() const override { return nullptr; }
  int code_size() const override { return 0; }
  void decode(const float* z, int B, float* out) override {}
  Likelihood* likelihood() override { return this; }
  Sampler* sampler() override { return this; }
  Conditioning* conditioning() override { return pc_.classes > 0 ? this : nullptr; }
  bool categorical_input(CodeLevel* grid) const override;
  std::vector<int64_t> file_shape(int slot) const override;
  void to_file_layout(int slot, const float* mem, float* file) const override;
  void from_file_layout(int slot, const float* file, float* mem) const override;
  void after_load() override { apply_masks(); }
  // Likelihood: the exact NLL per grid of the last forward.
  bool exact() const override { return true; }
  // Sampler: out [count, H*W] code indices as floats; count <= max_batch.
  void sample(float* out, int count, float temperature, Rng& rng, const int32_t* labels) override;
  // Conditioning: the labels of the next forward (the same pointer as set_batch_labels).
  int classes() const override { return pc_.classes; }
  void set_labels(const int32_t* labels, int B) override { set_batch_labels(labels); }

  // Zero the masked weights (after loading weights from elsewhere).
  void apply_masks();
  // The [k*k] spatial mask of the convolution whose weight is arena slot `slot` (null if none).
  const std::vector<float>* mask_of(int slot) const;

  // codes [B, H*W] in [0, K); labels [B] in [0, classes) when the prior is class-conditional (else
  // ignored, may be null). Computes logits [B, K, H*W] and nll() [B] (nats per grid, given the label).
  void forward(const int32_t* codes, int B, const int32_t* labels = nullptr);
  // Accumulates scale * d(sum_b nll_b)/d(params); masked weights get zero gradient.
  void backward(float scale) override;
  const float* nll() const override { return nll_.data(); }
  const float* logits() const { return logits_.data(); }

  // Ancestral sampling of whole grids, cell by cell in raster order; p ∝ exp(logit / temperature).
  // labels as in forward().
  void sample(int32_t* codes, int B, float temperature, Rng& rng, const int32_t* labels = nullptr);
  // Samples only cell `cell` of each grid given its earlier cells (later cells are ignored): the
  // one-cell-at-a-time step a page animates. Cells are raster indices in [0, H*W).
  void sample_cell(int32_t* codes, int B, int cell, float temperature, Rng& rng, const int32_t* labels = nullptr);

 private:
  // forward() over the first `rows` rows of each grid only (codes still [B, H*W]); the loss only when
  // rows == H. Logits are then [B, K, rows*W].
  void forward_rows(const int32_t* codes, const int32_t* labels, int B, int rows);
  // Class-conditional: pre[b, :, n] += E[labels[b], :] for every cell n; and its gradient into E.
  void add_class_bias(float* pre, int embedding, int B, int HW) const;
  void class_bias_backward(const float* dpre, int embedding, int B, int HW);

  PixelCnnConfig pc_;
  int B_ = 0;
  Conv2d in_conv_;
  std::vector<Conv2d> res_;
  Conv2d out0_, out2_;
  // Two stacks: the vertical stack's convs and the 1x1 links from v to h (empty with one stack).
  Conv2d in_vconv_, in_v2h_;
  std::vector<Conv2d> vres_, v2h_;
  std::vector<float> mask_a_, mask_b_;    // [k*k] spatial masks of the h stack, 1 = connection allowed
  std::vector<float> mask_va_, mask_vb_;  // [k*k] of the v stack
  // Every convolution in init order with its mask (null: the 1x1 links and the output head), so init,
  // workspace sizing and masking each loop over one list.
  struct ConvRef {
    const Conv2d* conv;
    const std::vector<float>* mask;
  };
  std::vector<ConvRef> convs_;
  // Class embeddings [classes, C] (slot ids; -1 when unconditional): h stack per level, v stack per
  // level (two stacks), output head.
  std::vector<int> cond_h_, cond_v_;
  int cond_out_ = -1;
  int cond_h(size_t level) const { return cond_h_.empty() ? -1 : cond_h_[level]; }
  int cond_v(size_t level) const { return cond_v_.empty() ? -1 : cond_v_[level]; }
  const int32_t* codes_ = nullptr;
  const int32_t* labels_ = nullptr;
  std::vector<float> workspace_;
  // Activations [B, C, HW] (h_[0..layers], pre-activations pre_[0..layers]), output head, their grads.
  std::vector<float> onehot_;
  std::vector<std::vector<float>> h_, pre_, dh_, dpre_;
  std::vector<std::vector<float>> v_, vpre_, dv_, dvpre_;  // two stacks: the v stack [B, C, HW] per level
  std::vector<float> link_;                                 // two stacks: Conv1x1(v) before it joins h
  std::vector<float> o_pre_, o_, logits_, probs_, nll_;
  std::vector<float> do_pre_, do_, dlogits_;
  std::vector<int32_t> input_codes_, sample_codes_;  // Model::forward's and sample's grids as indices
  std::vector<float> argmax_;                        // reconstruction()
};

// Model files for the prior: the registry's (save_model / load_model, model_file.h), holding a
// PixelCnnPrior; the caller's extra metadata keys are kept. dtype: F32, or F16 to halve the file (masked
// weights stay exactly zero). load_prior refuses a file of another kind.
std::vector<uint8_t> save_prior(const PixelCnnPrior& prior, const std::map<std::string, std::string>& extra,
                                DType dtype = DType::kF32);
Status load_prior(const uint8_t* bytes, size_t size, std::unique_ptr<PixelCnnPrior>* out,
                  std::map<std::string, std::string>* metadata = nullptr);

}  // namespace ll
