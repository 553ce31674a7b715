// PixelCNN prior: forward, backward, masks, sampling and its model files; see pixelcnn.h.
#include "core/models/pixelcnn.h"

#include <algorithm>
#include <cassert>
#include <cmath>

#include "core/nn/categorical.h"
#include "core/io/json.h"
#include "core/nn/layers.h"
#include "core/io/safetensors.h"
#include "core/models/model_file.h"

namespace ll {

std::string PixelCnnConfig::to_json() const {
  return "{\"K\":" + std::to_string(K) + ",\"H\":" + std::to_string(H) + ",\"W\":" + std::to_string(W) +
         ",\"channels\":" + std::to_string(channels) + ",\"layers\":" + std::to_string(layers) +
         ",\"kernel_a\":" + std::to_string(kernel_a) + ",\"kernel_b\":" + std::to_string(kernel_b) +
         ",\"stacks\":" + std::to_string(stacks) + ",\"classes\":" + std::to_string(classes) + "}";
}

Status PixelCnnConfig::from_json(const std::string& json, PixelCnnConfig* out) {
  JsonValue v;
  Status s = parse_json(json.data(), json.size(), &v);
  if (!s.ok()) return s.with_context("prior config: ");
  if (v.type != JsonValue::Type::kObject) return Status::error("prior config: expected a JSON object");
  PixelCnnConfig c;
  for (const auto& [key, val] : v.object) {
    int* f = key == "K" ? &c.K : key == "H" ? &c.H : key == "W" ? &c.W : key == "channels" ? &c.channels
           : key == "layers" ? &c.layers : key == "kernel_a" ? &c.kernel_a : key == "kernel_b" ? &c.kernel_b
           : key == "stacks" ? &c.stacks : key == "classes" ? &c.classes : nullptr;
    if (!f) return Status::error("prior config: unknown key '" + key + "'");
    if (val.type != JsonValue::Type::kNumber || !val.is_integer || val.integer < 0 || val.integer > 4096)
      return Status::error("prior config: '" + key + "' must be an integer in [0, 4096]");
    *f = static_cast<int>(val.integer);
  }
  s = c.validate();
  if (!s.ok()) return s.with_context("prior config: ");
  *out = c;
  return Status();
}

Status PixelCnnConfig::validate() const {
  if (K < 2 || K > 4096) return Status::error("K (codes per cell) must be in [2, 4096]");
  if (H < 1 || W < 1 || H * W > 4096) return Status::error("grid must be at least 1x1 and at most 4096 cells");
  if (channels < 1 || channels > 1024) return Status::error("channels must be in [1, 1024]");
  if (layers < 0 || layers > 64) return Status::error("layers must be in [0, 64]");
  if (kernel_a < 3 || kernel_a % 2 == 0 || kernel_b < 1 || kernel_b % 2 == 0 || kernel_a > 15 || kernel_b > 15)
    return Status::error("kernels must be odd: kernel_a in [3, 15], kernel_b in [1, 15]");
  if (stacks != 1 && stacks != 2) return Status::error("stacks must be 1 (single masked stack) or 2 (vertical + horizontal)");
  if (classes < 0 || classes > 1024) return Status::error("classes must be in [0, 1024] (0: unconditional)");
  if (stacks == 2 && kernel_b < 3) return Status::error("two stacks need kernel_b >= 3 (the vertical stack grows by kernel_b/2 rows per layer)");
  return Status();
}

ModelConfig PixelCnnConfig::to_model_config() const {
  ModelConfig m;
  m.kind = "pixelcnn_prior";
  m.input = H * W;
  m.hyper = {{"K", K}, {"H", H}, {"W", W}, {"channels", channels}, {"layers", layers}, {"kernel_a", kernel_a},
             {"kernel_b", kernel_b}, {"stacks", stacks}, {"classes", classes}};
  return m;
}

PixelCnnConfig PixelCnnConfig::of(const ModelConfig& m) {
  PixelCnnConfig c;
  auto get = [&](const char* name) { return static_cast<int>(m.get(name)); };
  c.K = get("K"), c.H = get("H"), c.W = get("W"), c.channels = get("channels"), c.layers = get("layers");
  c.kernel_a = get("kernel_a"), c.kernel_b = get("kernel_b"), c.stacks = get("stacks"), c.classes = get("classes");
  return c;
}

std::vector<HyperSpec> pixelcnn_hyper() {
  // Defaults: train-prior's (two stacks, 64 channels, 5 residual layers, kernels 5 and 3, unconditional);
  // K, H and W come from the data (the VQ-VAE's codebook and code grid; 2 and 28x28 for binarised pixels).
  return {{"K", 64, 2, 4096, true, "PixelCNN: categories per cell (a VQ-VAE's codebook size; 2 for binary pixels)", true},
          {"H", 7, 1, 4096, true, "PixelCNN: grid rows (at most 4096 cells)", true},
          {"W", 7, 1, 4096, true, "PixelCNN: grid columns", true},
          {"channels", 64, 1, 1024, true, "PixelCNN: feature channels"},
          {"layers", 5, 0, 64, true, "PixelCNN: residual masked layers (type B)"},
          {"kernel_a", 5, 3, 15, true, "PixelCNN: kernel of the first (type A) masked convolution, odd"},
          {"kernel_b", 3, 1, 15, true, "PixelCNN: kernel of the residual (type B) masked convolutions, odd"},
          {"stacks", 2, 1, 2, true, "PixelCNN: 1 = one masked stack (blind spot above-right); 2 = vertical + horizontal stacks (none)"},
          {"classes", 0, 0, 1024, true, "PixelCNN: conditioned on a class label in [0, classes), trained on the data's labels (0: unconditional)"}};
}

Status pixelcnn_check(const ModelConfig& config) { return PixelCnnConfig::of(config).validate(); }

int pixelcnn_input(const ModelConfig& config) {
  return static_cast<int>(config.get("H")) * static_cast<int>(config.get("W"));
}

namespace {
// Spatial mask of a k x k kernel (1 = connection allowed). rows_above: every column of the rows above
// the centre. centre_row: which of the centre row, kNone, kLeft (left of the centre), kLeftAndCentre,
// kWhole. Single stack: type A = (rows above, kLeft), type B = (rows above, kLeftAndCentre) -- B also
// allows the cell's own features, which never saw its code. Two stacks: v = (rows above, kNone) then
// (rows above, kWhole); h = (none above, kLeft) then (none above, kLeftAndCentre).
enum CentreRow { kNone, kLeft, kLeftAndCentre, kWhole };
std::vector<float> causal_mask(int k, bool rows_above, CentreRow centre_row) {
  std::vector<float> m(static_cast<size_t>(k) * k, 0.0f);
  const int c = k / 2;
  for (int r = 0; r < k; r++)
    for (int col = 0; col < k; col++) {
      bool on = false;
      if (r < c) on = rows_above;
      if (r == c)
        on = centre_row == kWhole || (centre_row == kLeft && col < c) || (centre_row == kLeftAndCentre && col <= c);
      m[r * k + col] = on ? 1.0f : 0.0f;
    }
  return m;
}

// The rows [r0, r1] and columns [c0, c1] of a k x k mask that hold its allowed taps: the kernel a file
// stores. The taps outside it are always zero.
struct MaskBox {
  int r0, r1, c0, c1;
  int rows() const { return r1 - r0 + 1; }
  int cols() const { return c1 - c0 + 1; }
};
MaskBox mask_box(const std::vector<float>& mask) {
  const int k = static_cast<int>(std::lround(std::sqrt(static_cast<double>(mask.size()))));
  MaskBox b{k, -1, k, -1};
  for (int r = 0; r < k; r++)
    for (int c = 0; c < k; c++)
      if (mask[r * k + c] != 0.0f) b = {std::min(b.r0, r), std::max(b.r1, r), std::min(b.c0, c), std::max(b.c1, c)};
  assert(b.r1 >= 0);
  return b;
}

void mask_weights(float* w, int OC, int C, const std::vector<float>& mask) {
  const size_t kk = mask.size();
  for (size_t i = 0; i < static_cast<size_t>(OC) * C; i++)
    for (size_t j = 0; j < kk; j++) w[i * kk + j] *= mask[j];
}
}  // namespace

PixelCnnPrior::PixelCnnPrior(const PixelCnnConfig& c) : pc_(c) {
  config_ = c.to_model_config();
  in_conv_.add_to(params_, "input_conv", c.K, c.channels, c.kernel_a, 1, c.kernel_a / 2);
  res_.resize(static_cast<size_t>(c.layers));
  for (int i = 0; i < c.layers; i++)
    res_[i].add_to(params_, "layers." + std::to_string(i), c.channels, c.channels, c.kernel_b, 1, c.kernel_b / 2);
  out0_.add_to(params_, "output.0", c.channels, c.channels, 1, 1, 0);
  out2_.add_to(params_, "output.2", c.channels, c.K, 1, 1, 0);
  const bool two = c.stacks == 2;
  if (two) {
    in_vconv_.add_to(params_, "input_vconv", c.K, c.channels, c.kernel_a, 1, c.kernel_a / 2);
    in_v2h_.add_to(params_, "input_v2h", c.channels, c.channels, 1, 1, 0);
    vres_.resize(static_cast<size_t>(c.layers));
    v2h_.resize(static_cast<size_t>(c.layers));
    for (int i = 0; i < c.layers; i++) {
      vres_[i].add_to(params_, "vlayers." + std::to_string(i), c.channels, c.channels, c.kernel_b, 1, c.kernel_b / 2);
      v2h_[i].add_to(params_, "v2h." + std::to_string(i), c.channels, c.channels, 1, 1, 0);
    }
  }
  if (c.classes > 0) {
    auto embedding = [&](const std::string& name) { return params_.add(name + ".weight", {c.classes, c.channels}); };
    cond_h_.push_back(embedding("cond_input_conv"));
    for (int i = 0; i < c.layers; i++) cond_h_.push_back(embedding("cond_layers." + std::to_string(i)));
    cond_out_ = embedding("cond_output");
    if (two) {
      cond_v_.push_back(embedding("cond_input_vconv"));
      for (int i = 0; i < c.layers; i++) cond_v_.push_back(embedding("cond_vlayers." + std::to_string(i)));
    }
  }
  params_.finalize();
  mask_a_ = causal_mask(c.kernel_a, !two, kLeft);
  mask_b_ = causal_mask(c.kernel_b, !two, kLeftAndCentre);
  if (two) {
    mask_va_ = causal_mask(c.kernel_a, true, kNone);
    mask_vb_ = causal_mask(c.kernel_b, true, kWhole);
  }
  // Every convolution in init order, each with its mask if it has one.
  convs_.push_back({&in_conv_, &mask_a_});
  for (const Conv2d& l : res_) convs_.push_back({&l, &mask_b_});
  convs_.push_back({&out0_, nullptr});
  convs_.push_back({&out2_, nullptr});
  if (!two) return;
  convs_.push_back({&in_vconv_, &mask_va_});
  convs_.push_back({&in_v2h_, nullptr});
  for (int i = 0; i < c.layers; i++) {
    convs_.push_back({&vres_[i], &mask_vb_});
    convs_.push_back({&v2h_[i], nullptr});
  }
}

void PixelCnnPrior::reserve(int max_batch) {
  if (max_batch <= max_batch_) return;
  max_batch_ = max_batch;
  const size_t HW = static_cast<size_t>(pc_.H) * pc_.W, B = max_batch;
  const size_t BCHW = B * pc_.channels * HW, BKHW = B * pc_.K * HW;
  onehot_.assign(BKHW, 0.0f);
  const size_t L = static_cast<size_t>(pc_.layers) + 1;
  for (auto* v : {&h_, &pre_, &dh_, &dpre_}) v->assign(L, std::vector<float>(BCHW, 0.0f));
  if (pc_.stacks == 2) {
    for (auto* v : {&v_, &vpre_, &dv_, &dvpre_}) v->assign(L, std::vector<float>(BCHW, 0.0f));
    link_.assign(BCHW, 0.0f);
  }
  for (auto* v : {&o_pre_, &o_, &do_pre_, &do_}) v->assign(BCHW, 0.0f);
  for (auto* v : {&logits_, &probs_, &dlogits_}) v->assign(BKHW, 0.0f);
  nll_.assign(B, 0.0f);
  input_codes_.assign(B * HW, 0);
  sample_codes_.assign(B * HW, 0);
  argmax_.assign(B * HW, 0.0f);
  size_t ws = 0;
  for (const ConvRef& l : convs_) ws = std::max(ws, conv2d_workspace_floats(l.conv->shape(max_batch, pc_.H, pc_.W)));
  workspace_.assign(ws, 0.0f);
  for (Conv2d* c : {&in_conv_, &out0_, &out2_, &in_vconv_, &in_v2h_}) c->workspace = workspace_.data();
  for (auto* layers : {&res_, &vres_, &v2h_})
    for (Conv2d& c : *layers) c.workspace = workspace_.data();
}

uint64_t PixelCnnPrior::activation_floats(int B) const {
  // What reserve(B) allocates, per grid cell: the one-hot input, 4 maps per level of each stack (and
  // the link), the head's 4, logits, probabilities and their gradient, the indices; per grid the NLL;
  // and the largest convolution's workspace, as reserve sizes it.
  const uint64_t C = uint64_t(pc_.channels), L = uint64_t(pc_.layers) + 1, K = uint64_t(pc_.K);
  const uint64_t per_cell = K + C * (8 * L + 6) + 3 * K + 3;
  uint64_t ws = 0;
  for (const ConvRef& l : convs_)
    ws = std::max<uint64_t>(ws, conv2d_workspace_floats(l.conv->shape(B, pc_.H, pc_.W)));
  return uint64_t(B) * (uint64_t(pc_.H) * pc_.W * per_cell + 1) + ws + 16;
}

bool PixelCnnPrior::categorical_input(CodeLevel* grid) const {
  if (grid) *grid = CodeLevel{pc_.H, pc_.W, pc_.K, 0};
  return true;
}

void PixelCnnPrior::forward(const float* input, const float* target, int B, Rng& rng, ZMode mode) {
  assert(B <= max_batch_);
  const size_t n = static_cast<size_t>(B) * pc_.H * pc_.W;
  for (size_t i = 0; i < n; i++) {
    assert(input[i] >= 0.0f && input[i] < pc_.K && input[i] == std::floor(input[i]));
    input_codes_[i] = static_cast<int32_t>(input[i]);
  }
  forward(input_codes_.data(), B, batch_labels_);
  // reconstruction(): each cell's most likely code given the true earlier cells.
  const int K = pc_.K, HW = pc_.H * pc_.W;
  for (int b = 0; b < B; b++)
    for (int c = 0; c < HW; c++) {
      const float* l = logits_.data() + static_cast<size_t>(b) * K * HW + c;
      int best = 0;
      for (int k = 1; k < K; k++)
        if (l[k * HW] > l[best * HW]) best = k;
      argmax_[static_cast<size_t>(b) * HW + c] = static_cast<float>(best);
    }
}

void PixelCnnPrior::sample(float* out, int count, float temperature, Rng& rng, const int32_t* labels) {
  assert(count <= max_batch_);
  sample(sample_codes_.data(), count, temperature, rng, labels);
  const size_t n = static_cast<size_t>(count) * pc_.H * pc_.W;
  for (size_t i = 0; i < n; i++) out[i] = static_cast<float>(sample_codes_[i]);
}

std::vector<int64_t> PixelCnnPrior::file_shape(int slot) const {
  const TensorSlot& t = params_.slots()[static_cast<size_t>(slot)];
  const std::vector<float>* mask = mask_of(slot);
  if (!mask) return t.shape;
  const MaskBox box = mask_box(*mask);
  return {t.shape[0], t.shape[1], box.rows(), box.cols()};
}

void PixelCnnPrior::to_file_layout(int slot, const float* w, float* out) const {
  const TensorSlot& t = params_.slots()[static_cast<size_t>(slot)];
  const MaskBox box = mask_box(*mask_of(slot));
  const int k = static_cast<int>(t.shape[3]);
  const size_t planes = static_cast<size_t>(t.shape[0] * t.shape[1]);
  for (size_t p = 0; p < planes; p++)
    for (int r = 0; r < box.rows(); r++)
      for (int c = 0; c < box.cols(); c++)
        out[(p * box.rows() + r) * box.cols() + c] = w[p * k * k + (box.r0 + r) * k + box.c0 + c];
}

void PixelCnnPrior::from_file_layout(int slot, const float* kernel, float* w) const {
  const TensorSlot& t = params_.slots()[static_cast<size_t>(slot)];
  const MaskBox box = mask_box(*mask_of(slot));
  const int k = static_cast<int>(t.shape[3]);
  const size_t planes = static_cast<size_t>(t.shape[0] * t.shape[1]);
  std::fill_n(w, t.size, 0.0f);
  for (size_t p = 0; p < planes; p++)
    for (int r = 0; r < box.rows(); r++)
      for (int c = 0; c < box.cols(); c++)
        w[p * k * k + (box.r0 + r) * k + box.c0 + c] = kernel[(p * box.rows() + r) * box.cols() + c];
}

void PixelCnnPrior::init(Rng& rng) {
  for (const ConvRef& l : convs_) l.conv->init(params_, rng);
  apply_masks();
  // The class embeddings start at zero: every class begins as the same unconditional model.
  for (int e : cond_h_) std::fill_n(params_.param(e), params_.slots()[e].size, 0.0f);
  for (int e : cond_v_) std::fill_n(params_.param(e), params_.slots()[e].size, 0.0f);
  if (cond_out_ >= 0) std::fill_n(params_.param(cond_out_), params_.slots()[cond_out_].size, 0.0f);
}

void PixelCnnPrior::add_class_bias(float* pre, int embedding, int B, int HW) const {
  if (embedding < 0) return;
  const int C = pc_.channels;
  const float* E = params_.param(embedding);
  for (int b = 0; b < B; b++) {
    const float* e = E + static_cast<size_t>(labels_[b]) * C;
    float* p = pre + static_cast<size_t>(b) * C * HW;
    for (int ch = 0; ch < C; ch++)
      for (int n = 0; n < HW; n++) p[ch * HW + n] += e[ch];
  }
}

void PixelCnnPrior::class_bias_backward(const float* dpre, int embedding, int B, int HW) {
  if (embedding < 0) return;
  const int C = pc_.channels;
  float* dE = params_.grad(embedding);
  for (int b = 0; b < B; b++) {
    float* de = dE + static_cast<size_t>(labels_[b]) * C;
    const float* d = dpre + static_cast<size_t>(b) * C * HW;
    for (int ch = 0; ch < C; ch++) {
      float sum = 0.0f;
      for (int n = 0; n < HW; n++) sum += d[ch * HW + n];
      de[ch] += sum;
    }
  }
}

const std::vector<float>* PixelCnnPrior::mask_of(int slot) const {
  for (const ConvRef& l : convs_)
    if (l.conv->weight == slot) return l.mask;
  return nullptr;
}

void PixelCnnPrior::apply_masks() {
  for (const ConvRef& l : convs_)
    if (l.mask) mask_weights(params_.param(l.conv->weight), l.conv->OC, l.conv->C, *l.mask);
}

void PixelCnnPrior::forward(const int32_t* codes, int B, const int32_t* labels) {
  forward_rows(codes, labels, B, pc_.H);
}

void PixelCnnPrior::forward_rows(const int32_t* codes, const int32_t* labels, int B, int rows) {
  assert(B <= max_batch_ && rows >= 1 && rows <= pc_.H);
  B_ = B;
  codes_ = codes;
  labels_ = pc_.classes > 0 ? labels : nullptr;
  assert(pc_.classes == 0 || labels);
#ifndef NDEBUG
  for (int b = 0; labels_ && b < B; b++) assert(labels_[b] >= 0 && labels_[b] < pc_.classes);
#endif
  // Every mask is causal in the rows (no tap reads a later row), so the first `rows` rows of the grid
  // alone give the same activations there as the whole grid: the convolutions run on a rows x W grid.
  const int K = pc_.K, H = rows, W = pc_.W, HW = H * W, full_HW = pc_.H * W;
  const size_t BCHW = static_cast<size_t>(B) * pc_.channels * HW;
  // One-hot input [B, K, HW].
  std::fill(onehot_.begin(), onehot_.begin() + static_cast<size_t>(B) * K * HW, 0.0f);
  for (int b = 0; b < B; b++)
    for (int n = 0; n < HW; n++) {
      const int32_t k = codes[static_cast<size_t>(b) * full_HW + n];
      assert(k >= 0 && k < K);
      onehot_[(static_cast<size_t>(b) * K + k) * HW + n] = 1.0f;
    }
  const bool two = pc_.stacks == 2;
  auto conv = [&](float* out, const float* in, const Conv2d& l) { l.forward(params_, out, in, B, H, W); };
  // Adds Conv1x1(v) to the h pre-activation (two stacks).
  auto add_link = [&](float* hpre, const float* v, const Conv2d& l) {
    conv(link_.data(), v, l);
    for (size_t j = 0; j < BCHW; j++) hpre[j] += link_[j];
  };
  // v0 = relu(MaskedConvV(onehot)) (two stacks); h0 = relu(MaskedConvA(onehot) [+ Conv1x1(v0)])
  if (two) {
    conv(vpre_[0].data(), onehot_.data(), in_vconv_);
    add_class_bias(vpre_[0].data(), cond_v(0), B, HW);
    relu_forward(v_[0].data(), vpre_[0].data(), BCHW);
  }
  conv(pre_[0].data(), onehot_.data(), in_conv_);
  if (two) add_link(pre_[0].data(), v_[0].data(), in_v2h_);
  add_class_bias(pre_[0].data(), cond_h(0), B, HW);
  relu_forward(h_[0].data(), pre_[0].data(), BCHW);
  // v_{i+1} = v_i + relu(MaskedConvVB_i(v_i)) (two stacks);
  // h_{i+1} = h_i + relu(MaskedConvB_i(h_i) [+ Conv1x1_i(v_{i+1})]); pre_[i+1] holds the sum.
  for (size_t i = 0; i < res_.size(); i++) {
    if (two) {
      conv(vpre_[i + 1].data(), v_[i].data(), vres_[i]);
      add_class_bias(vpre_[i + 1].data(), cond_v(i + 1), B, HW);
      relu_forward(v_[i + 1].data(), vpre_[i + 1].data(), BCHW);
      for (size_t j = 0; j < BCHW; j++) v_[i + 1][j] += v_[i][j];
    }
    conv(pre_[i + 1].data(), h_[i].data(), res_[i]);
    if (two) add_link(pre_[i + 1].data(), v_[i + 1].data(), v2h_[i]);
    add_class_bias(pre_[i + 1].data(), cond_h(i + 1), B, HW);
    relu_forward(h_[i + 1].data(), pre_[i + 1].data(), BCHW);
    for (size_t j = 0; j < BCHW; j++) h_[i + 1][j] += h_[i][j];
  }
  // Output head: logits = Conv1x1(relu(Conv1x1(h_L)))
  const std::vector<float>& top = h_[res_.size()];
  out0_.forward(params_, o_pre_.data(), top.data(), B, H, W);
  add_class_bias(o_pre_.data(), cond_out_, B, HW);
  relu_forward(o_.data(), o_pre_.data(), BCHW);
  out2_.forward(params_, logits_.data(), o_.data(), B, H, W);
  // The loss needs whole grids (codes are [B, full_HW]); sampling reads the logits only.
  if (rows == pc_.H) softmax_cross_entropy_forward(nll_.data(), probs_.data(), logits_.data(), codes, B, K, HW);
}

void PixelCnnPrior::backward(float scale) {
  const int B = B_, K = pc_.K, H = pc_.H, W = pc_.W, HW = H * W;
  const size_t BCHW = static_cast<size_t>(B) * pc_.channels * HW;
  std::fill(dlogits_.begin(), dlogits_.begin() + static_cast<size_t>(B) * K * HW, 0.0f);
  for (auto* v : {&do_pre_, &do_}) std::fill(v->begin(), v->begin() + BCHW, 0.0f);
  const bool two = pc_.stacks == 2;
  for (size_t i = 0; i <= res_.size(); i++) {
    std::fill(dh_[i].begin(), dh_[i].begin() + BCHW, 0.0f);
    std::fill(dpre_[i].begin(), dpre_[i].begin() + BCHW, 0.0f);
    if (!two) continue;
    std::fill(dv_[i].begin(), dv_[i].begin() + BCHW, 0.0f);
    std::fill(dvpre_[i].begin(), dvpre_[i].begin() + BCHW, 0.0f);
  }
  auto conv_back = [&](float* dinp, const float* dout, const float* inp, const Conv2d& l) {
    l.backward(params_, dinp, dout, inp, B, H, W);
  };
  // d nll / d logits = softmax - onehot(target)
  softmax_cross_entropy_backward(dlogits_.data(), probs_.data(), codes_, scale, B, K, HW);
  conv_back(do_.data(), dlogits_.data(), o_.data(), out2_);
  relu_backward(do_pre_.data(), do_.data(), o_pre_.data(), BCHW);
  class_bias_backward(do_pre_.data(), cond_out_, B, HW);
  const size_t L = res_.size();
  conv_back(dh_[L].data(), do_pre_.data(), h_[L].data(), out0_);
  // Residual layers in reverse: h_{i+1} = h_i + relu(pre_{i+1}), pre_{i+1} = conv_i(h_i) [+ link_i(v_{i+1})];
  // two stacks: v_{i+1} = v_i + relu(vpre_{i+1}), vpre_{i+1} = vconv_i(v_i). dv_{i+1} is complete once
  // h's layer i has added its link gradient (layer i+1's v path was added in the previous iteration).
  for (size_t i = L; i-- > 0;) {
    for (size_t j = 0; j < BCHW; j++) dh_[i][j] += dh_[i + 1][j];  // identity path
    relu_backward(dpre_[i + 1].data(), dh_[i + 1].data(), pre_[i + 1].data(), BCHW);
    class_bias_backward(dpre_[i + 1].data(), cond_h(i + 1), B, HW);
    conv_back(dh_[i].data(), dpre_[i + 1].data(), h_[i].data(), res_[i]);
    if (!two) continue;
    conv_back(dv_[i + 1].data(), dpre_[i + 1].data(), v_[i + 1].data(), v2h_[i]);  // dv += link^T dpre
    for (size_t j = 0; j < BCHW; j++) dv_[i][j] += dv_[i + 1][j];                 // identity path
    relu_backward(dvpre_[i + 1].data(), dv_[i + 1].data(), vpre_[i + 1].data(), BCHW);
    class_bias_backward(dvpre_[i + 1].data(), cond_v(i + 1), B, HW);
    conv_back(dv_[i].data(), dvpre_[i + 1].data(), v_[i].data(), vres_[i]);
  }
  relu_backward(dpre_[0].data(), dh_[0].data(), pre_[0].data(), BCHW);
  class_bias_backward(dpre_[0].data(), cond_h(0), B, HW);
  conv_back(nullptr, dpre_[0].data(), onehot_.data(), in_conv_);
  if (two) {
    conv_back(dv_[0].data(), dpre_[0].data(), v_[0].data(), in_v2h_);
    relu_backward(dvpre_[0].data(), dv_[0].data(), vpre_[0].data(), BCHW);
    class_bias_backward(dvpre_[0].data(), cond_v(0), B, HW);
    conv_back(nullptr, dvpre_[0].data(), onehot_.data(), in_vconv_);
  }
  // Masked connections do not exist: their gradient is zero, so they stay zero under Adam.
  for (const ConvRef& l : convs_)
    if (l.mask) mask_weights(params_.grad(l.conv->weight), l.conv->OC, l.conv->C, *l.mask);
}

void PixelCnnPrior::sample_cell(int32_t* codes, int B, int cell, float temperature, Rng& rng,
                                const int32_t* labels) {
  const int K = pc_.K, HW = pc_.H * pc_.W;
  assert(cell >= 0 && cell < HW && temperature > 0.0f);
  // Later cells cannot influence `cell` (the masks), whatever they hold; rows below its own are not
  // even computed. Logits are then [B, K, rows * W].
  const int rows = cell / pc_.W + 1, RW = rows * pc_.W;
  forward_rows(codes, labels, B, rows);
  std::vector<double> p(static_cast<size_t>(K));
  for (int b = 0; b < B; b++) {
    const float* l = logits_.data() + static_cast<size_t>(b) * K * RW;
    double mx = l[cell];
    for (int k = 1; k < K; k++) mx = std::max(mx, static_cast<double>(l[k * RW + cell]));
    double sum = 0.0;
    for (int k = 0; k < K; k++) sum += p[k] = std::exp((l[k * RW + cell] - mx) / temperature);
    double u = rng.uniform() * sum;
    int chosen = K - 1;
    for (int k = 0; k < K; k++) {
      u -= p[k];
      if (u < 0.0) {
        chosen = k;
        break;
      }
    }
    codes[static_cast<size_t>(b) * HW + cell] = chosen;
  }
}

void PixelCnnPrior::sample(int32_t* codes, int B, float temperature, Rng& rng, const int32_t* labels) {
  const int HW = pc_.H * pc_.W;
  std::fill(codes, codes + static_cast<size_t>(B) * HW, 0);
  for (int cell = 0; cell < HW; cell++) sample_cell(codes, B, cell, temperature, rng, labels);
}

std::vector<uint8_t> save_prior(const PixelCnnPrior& prior, const std::map<std::string, std::string>& extra,
                                DType dtype) {
  return save_model(prior, extra, dtype);
}

Status load_prior(const uint8_t* bytes, size_t size, std::unique_ptr<PixelCnnPrior>* out,
                  std::map<std::string, std::string>* metadata) {
  std::unique_ptr<Model> model;
  std::map<std::string, std::string> meta;
  Status s = load_model(bytes, size, &model, &meta);
  if (!s.ok()) return s;
  auto* prior = dynamic_cast<PixelCnnPrior*>(model.get());  // this kind's own file
  if (!prior)
    return Status::error("not a PixelCNN prior file (it holds a '" + model->config().kind + "' model)");
  model.release();
  out->reset(prior);
  if (metadata) *metadata = meta;
  return Status();
}

}  // namespace ll
