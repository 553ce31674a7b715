// The WebAssembly API (Embind): a coarse, class-based view of the core for JavaScript. The only C++ file
// that includes Emscripten headers; wasm/latentlab.js wraps it into the public API.
//
// Shape of every call: JS asks for an input buffer (bufferF32 / bufferU8 return a typed-array view of
// wasm memory, which it fills at once), then calls a method that reads that buffer and returns a result
// object {ok: true, value} or {ok: false, error: message}. An output array in `value` is a view of a
// buffer owned by the C++ object, valid until the next call; the wrapper copies it (slice) at once.
// So arrays are copied once each way, and no JS view outlives a call that may grow memory.
//
// Nothing here throws: the module is built with -fno-exceptions, every input from JS is validated here
// or by the core, and errors come back as messages (the wrapper turns them into Error objects). The
// module keeps working after any error.
//
// Memory: the module grows up to 2 GB (-sMAXIMUM_MEMORY). When it cannot grow, malloc returns null but
// operator new (without exceptions) aborts the whole module, so nothing of a size chosen from JS (a
// model, a batch, an array) is allocated before ensure_memory has checked that its bytes fit in what the
// heap can still give: when they do not, the call answers with an "out of memory" Error, nothing is kept,
// and the module keeps working (dispose() other objects to free their memory). Absurd sizes are refused
// earlier still, by the core's budget (core/models/model.h) and its checks of a file's tensors.
//
// Models are bound through the generic Model interface (core/models/model.h) and the registry, so new kinds
// need no change here.
#include <emscripten/bind.h>
#include <emscripten/emscripten.h>
#include <emscripten/heap.h>
#include <emscripten/val.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/eval/code_usage.h"
#include "core/eval/image_figures.h"
#include "core/io/idx.h"
#include "core/io/json.h"
#include "core/kernels/kernels.h"
#include "core/models/model.h"
#include "core/models/model_file.h"
#include "core/models/pixelcnn.h"
#include "core/base/rng.h"
#include "core/io/safetensors.h"
#include "core/base/status.h"
#include "core/train/code_data.h"
#include "core/train/trainer.h"
#include "core/models/vqvae.h"

namespace ll {
namespace {

using emscripten::val;

// Images per forward pass in reconstruct/encode/decode/evaluate: bounds activation memory whatever the
// size of the array from JS.
constexpr int kChunk = 256;
// Upper limits for counts given as numbers from JS (the arrays themselves are bounded by their size).
constexpr int kMaxSamples = 65536;
constexpr int kMaxStepsPerCall = 100000;
constexpr double kMaxSeed = 9007199254740992.0;  // 2^53: integers JS numbers hold exactly

// Room for the small allocations a call makes besides the big ones it reserves.
constexpr uint64_t kSlackBytes = uint64_t(4) << 20;

std::string mib(uint64_t bytes) { return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB"; }

// Whether `bytes` (plus slack) can be allocated now, all of it at the top of the heap: what lies between
// the allocator's break and the memory's maximum, plus the allocator's free top chunk (dlmalloc's
// keepcost). Free chunks lower down are not counted, so whatever the fragmentation the allocations that
// follow fit. (A trial malloc is not enough: here a trial of the whole size succeeded and a smaller
// allocation right after it still aborted, at the 2 GB limit.)
Status ensure_memory(uint64_t bytes, const std::string& what) {
  const uint64_t brk = reinterpret_cast<uintptr_t>(sbrk(0));
  const uint64_t top = static_cast<uint64_t>(mallinfo().keepcost);
  const uint64_t max = emscripten_get_heap_max();
  const uint64_t available = (max > brk ? max - brk : 0) + top;
  if (bytes + kSlackBytes > available)
    return Status::error(what + ": out of memory: this needs " + mib(bytes) + ", more than the " +
                         mib(available) + " the module can still allocate (its memory is limited to " +
                         mib(max) + "; dispose() models and trainers no longer in use)");
  return Status();
}

val ok_result(const val& value) {
  val r = val::object();
  r.set("ok", true);
  r.set("value", value);
  return r;
}

val error_result(const std::string& message) {
  val r = val::object();
  r.set("ok", false);
  r.set("error", message);
  return r;
}

template <typename T>
val view_of(const std::vector<T>& v) {
  return val(emscripten::typed_memory_view(v.size(), v.data()));
}

std::string number_str(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// Seeds arrive as JS numbers: integers in [0, 2^53].
Status seed_from_number(double x, uint64_t* out) {
  if (!std::isfinite(x) || x < 0 || x > kMaxSeed || x != std::floor(x))
    return Status::error("seed " + number_str(x) + " must be an integer in [0, 2^53]");
  *out = static_cast<uint64_t>(x);
  return Status();
}

// `values` holds whole rows of `width` floats (B >= 1 of them), every value finite (and in [lo, hi]
// when lo <= hi). `what` names the array in messages: "pixels", "codes".
Status check_rows(const std::vector<float>& values, int width, const char* what, const char* row_name,
                  float lo, float hi, int* B) {
  if (values.empty() || values.size() % static_cast<size_t>(width) != 0)
    return Status::error(std::string(what) + " has " + std::to_string(values.size()) +
                         " values; expected a positive multiple of " + std::to_string(width) + " (" +
                         std::to_string(width) + " per " + row_name + ")");
  if (values.size() / width > static_cast<size_t>(INT32_MAX))
    return Status::error(std::string(what) + ": too many " + row_name + "s");
  for (size_t i = 0; i < values.size(); i++) {
    float v = values[i];
    bool bad = !std::isfinite(v) || (lo <= hi && (v < lo || v > hi));
    if (bad)
      return Status::error(std::string(what) + ": value " + number_str(v) + " at index " +
                           std::to_string(i) + " (" + row_name + " " + std::to_string(i / width) +
                           ") is " +
                           (lo <= hi ? "outside [" + number_str(lo) + ", " + number_str(hi) + "]"
                                     : std::string("not finite")));
  }
  *B = static_cast<int>(values.size() / width);
  return Status();
}

// The model and what is saved with it. Shared by a ModelCore and the TrainerCores training it, so
// deleting either JS object first is safe.
struct ModelState {
  std::unique_ptr<Model> model;
  std::map<std::string, std::string> metadata;  // extra file metadata, written back by save()
};

// The Gaussian posterior's log-variance [B, code_size()] of the last forward, through the generic
// Model::posterior (false/null for models without a Gaussian posterior).
bool has_posterior(const Model& m) {
  const float *mu = nullptr, *logvar = nullptr, *z = nullptr;
  return m.posterior(&mu, &logvar, &z);
}
const float* posterior_logvar(const Model& m) {
  const float *mu = nullptr, *logvar = nullptr, *z = nullptr;
  return m.posterior(&mu, &logvar, &z) ? logvar : nullptr;
}

// Bytes that m.reserve(B) would add (0 when it already holds activations for B examples).
uint64_t reserve_bytes(const Model& m, int B) {
  return B > m.max_batch() ? m.activation_floats(B) * sizeof(float) : 0;
}

// Buffers above this size are freed when the next call starts rather than kept at their peak (wasm
// memory never shrinks, but malloc can then reuse the space, e.g. for training data).
constexpr size_t kKeepBytes = size_t(8) << 20;

template <typename T>
void trim(std::vector<T>* v) {
  if (v->capacity() * sizeof(T) > kKeepBytes) std::vector<T>().swap(*v);
}

// What the model can do (core/models/model.h, "capabilities"), for the page to ask instead of a kind's
// name: {"codeVector": true, "decode": true, "gaussianPrior", "posterior", "codeGrids": null or
// [{H, W, K, D}, ...] (one per level), "conditioning": null or {classes}, "likelihood", "sampler",
// "sequence", "inferenceGraph", "classifier": null or {classes, arch}, "categoricalInput": null or
// {H, W, K} (a model over grids of categories, e.g. a PixelCNN prior over code grids: its inputs are code
// indices, not pixels)}.
std::string capabilities_json(const Model& m) {
  Model& mm = const_cast<Model&>(m);  // the queries are non-const; none changes the model
  auto b = [](bool v) { return std::string(v ? "true" : "false"); };
  std::string grids = "null";
  if (const CodeGrids* g = m.code_grids()) {
    grids = "[";
    for (int l = 0; l < g->levels(); l++) {
      const CodeLevel c = g->level(l);
      grids += std::string(l ? "," : "") + "{\"H\":" + std::to_string(c.H) + ",\"W\":" + std::to_string(c.W) +
               ",\"K\":" + std::to_string(c.K) + ",\"D\":" + std::to_string(c.D) + "}";
    }
    grids += "]";
  }
  const Conditioning* cond = mm.conditioning();
  const ClassProbabilities* cls = mm.classifier();
  const std::string classifier =
      cls ? "{\"classes\":" + std::to_string(cls->classes()) + ",\"arch\":" + json_quote(cls->arch()) + "}" : "null";
  CodeLevel cells;
  const std::string categorical = m.categorical_input(&cells)
      ? "{\"H\":" + std::to_string(cells.H) + ",\"W\":" + std::to_string(cells.W) + ",\"K\":" + std::to_string(cells.K) + "}"
      : std::string("null");
  return "{\"categoricalInput\":" + categorical + ",\"codeVector\":true,\"decode\":true,\"gaussianPrior\":" + b(m.has_gaussian_prior()) +
         ",\"posterior\":" + b(has_posterior(m)) + ",\"codeGrids\":" + grids + ",\"conditioning\":" +
         (cond ? "{\"classes\":" + std::to_string(cond->classes()) + "}" : std::string("null")) +
         ",\"likelihood\":" + b(mm.likelihood() != nullptr) + ",\"sampler\":" + b(mm.sampler() != nullptr) +
         ",\"sequence\":" + b(mm.sequence() != nullptr) + ",\"inferenceGraph\":" + b(m.inference_graph(nullptr)) +
         ",\"classifier\":" + classifier + "}";
}

class ModelCore {
 public:
  // Input buffers of n elements; null when memory for them cannot be had (the wrapper throws).
  val bufferF32(int n) {
    trim_all();
    std::vector<float>().swap(in_f32_);
    if (!ensure_memory(uint64_t(std::max(n, 0)) * sizeof(float), "buffer").ok()) return val::null();
    in_f32_.assign(static_cast<size_t>(std::max(n, 0)), 0.0f);
    return view_of(in_f32_);
  }
  val bufferU8(int n) {
    trim_all();
    std::vector<uint8_t>().swap(in_u8_);
    if (!ensure_memory(uint64_t(std::max(n, 0)), "buffer").ok()) return val::null();
    in_u8_.assign(static_cast<size_t>(std::max(n, 0)), 0);
    return view_of(in_u8_);
  }

  // A safetensors file in the u8 buffer.
  val load() {
    if (state_) return error_result("load: this object already holds a model");
    auto st = std::make_shared<ModelState>();
    // The core allocates only after checking the file's tensors against its config, so the model is at
    // most 4 arenas of the file's floats (F16: 2 bytes each): 8 times the file's size.
    Status s = ensure_memory(uint64_t(in_u8_.size()) * 8, "load");
    if (!s.ok()) return error_result(s.message());
    s = load_model(in_u8_.data(), in_u8_.size(), &st->model, &st->metadata);
    std::vector<uint8_t>().swap(in_u8_);
    if (!s.ok()) return error_result("model file: " + s.message());
    state_ = std::move(st);
    return ok_result(val(true));
  }

  // A fresh model: config JSON ({"kind": "vae", "latent": 2, ...}) and PyTorch's default initialisation
  // from `seed` (the same generator stream as `latentlab train`, so the same seed gives the same weights).
  val create(const std::string& config_json, double seed_number) {
    if (state_) return error_result("create: this object already holds a model");
    ModelConfig config;
    Status s = ModelConfig::from_json(config_json, &config);
    uint64_t seed = 0;
    if (s.ok()) s = seed_from_number(seed_number, &seed);
    auto st = std::make_shared<ModelState>();
    uint64_t floats = 0;
    if (s.ok()) s = check_memory_budget(config, 0, &floats);  // absurd configs, before any allocation
    if (s.ok()) s = ensure_memory(floats * sizeof(float), "create");
    if (s.ok()) s = create_model(config, &st->model);
    if (!s.ok()) return error_result(s.message());
    Rng init_rng(seed, /*stream=*/1);
    st->model->init(init_rng);
    state_ = std::move(st);
    return ok_result(val(true));
  }

  // {"kind", "config": {...}, "parameters", "lossTerms": [...], "input", "codeSize", "hasPrior",
  //  "metadata": {...}} as JSON.
  val info() const {
    if (!state_) return not_loaded("info");
    const Model& m = *state_->model;
    std::string terms;
    for (const std::string& t : m.loss_terms()) terms += (terms.empty() ? "" : ",") + json_quote(t);
    size_t parameters = 0;  // the tensors' sizes (the arena's size() includes alignment padding)
    for (const TensorSlot& slot : m.params().slots()) parameters += slot.size;
    std::string meta;
    for (const auto& [k, v] : state_->metadata)
      meta += (meta.empty() ? "" : ",") + json_quote(k) + ":" + json_quote(v);
    std::string json = "{\"kind\":" + json_quote(m.config().kind) + ",\"config\":" + m.config().to_json() +
                       ",\"parameters\":" + std::to_string(parameters) + ",\"lossTerms\":[" +
                       terms + "],\"input\":" + std::to_string(m.config().input) +
                       ",\"codeSize\":" + std::to_string(m.code_size()) +
                       ",\"hasPrior\":" + (m.has_gaussian_prior() ? "true" : "false") +
                       ",\"hasLogvar\":" + (has_posterior(m) ? "true" : "false") +
                       ",\"capabilities\":" + capabilities_json(m) + ",\"metadata\":{" + meta + "}}";
    return ok_result(val(json));
  }

  // Pixels [B, input] in [0, 1] (f32 buffer) -> reconstruction probabilities [B, input], z = mean.
  val reconstruct() {
    return run_forward("reconstruct", [](const Model& m) { return m.config().input; },
                       [](const Model& m) { return m.reconstruction(); });
  }
  // Pixels -> codes [B, codeSize]: the VAE's posterior means, the AE's code.
  val encode() {
    return run_forward("encode", [](const Model& m) { return m.code_size(); },
                       [](const Model& m) { return m.code(); });
  }
  // Pixels -> the VAE's posterior log-variances [B, codeSize].
  val encodeLogvar() {
    if (!state_) return not_loaded("encodeLogvar");
    if (!has_posterior(*state_->model))
      return error_result("encodeLogvar: model kind '" + state_->model->config().kind +
                          "' has no Gaussian posterior (only VAE-family models have one)");
    return run_forward("encodeLogvar", [](const Model& m) { return m.code_size(); },
                       [](const Model& m) { return posterior_logvar(m); });
  }

  // Pixels [B, input] in [0, 1] (f32 buffer) -> class probabilities [B, classes], through the classifier
  // capability (the judge of generated digits).
  val classify() {
    if (!state_) return not_loaded("classify");
    Model& m = *state_->model;
    ClassProbabilities* c = m.classifier();
    if (!c)
      return error_result("classify: model kind '" + m.config().kind + "' is not a classifier (it has no class probabilities)");
    int B = 0;
    Status s = check_rows(in_f32_, m.config().input, "pixels", "image", 0.0f, 1.0f, &B);
    const size_t K = static_cast<size_t>(c->classes()), P = static_cast<size_t>(m.config().input);
    if (s.ok()) {
      std::vector<float>().swap(out_f32_);
      s = ensure_memory(uint64_t(B) * K * sizeof(float) + reserve_bytes(m, std::min(B, kChunk)), "memory");
    }
    if (!s.ok()) return error_result("classify: " + s.message());
    out_f32_.resize(static_cast<size_t>(B) * K);
    for (int first = 0; first < B; first += kChunk) {
      const int b = std::min(kChunk, B - first);
      if (b > m.max_batch()) m.reserve(b);
      std::memcpy(out_f32_.data() + first * K, c->classify(in_f32_.data() + first * P, b), sizeof(float) * b * K);
    }
    return ok_result(view_of(out_f32_));
  }

  // Pixels [B, input] in [0, 1] (f32 buffer) -> {recon: Float32Array [B*input], terms: {name:
  // Float32Array [B]}, loss: Float64Array [B], mse: Float64Array [B]}: the reconstruction (z = posterior
  // mean) and each image's own loss terms (Model::term after the forward) and squared error
  // (core/eval/image_figures.h): for one image, exactly evaluate()'s figures for it ("mean" mode).
  val reconstructTerms() {
    if (!state_) return not_loaded("reconstructTerms");
    Model& m = *state_->model;
    int B = 0;
    Status s = check_rows(in_f32_, m.config().input, "pixels", "image", 0.0f, 1.0f, &B);
    const size_t P = static_cast<size_t>(m.config().input), T = m.loss_terms().size();
    if (s.ok()) {
      std::vector<float>().swap(out_f32_);
      s = ensure_memory(uint64_t(B) * (P + T + 4) * sizeof(float) * 2 + reserve_bytes(m, std::min(B, kChunk)),
                        "memory");
    }
    if (!s.ok()) return error_result("reconstructTerms: " + s.message());
    out_f32_.resize(static_cast<size_t>(B) * P);
    std::vector<float> terms(T * B);       // [T, B]
    std::vector<double> se(B), loss(B, 0.0);  // [B]
    bool none = false;  // a model without a reconstruction (a classifier)
    forward_chunks(B, [&](int first, int b, const float* x) {
      if ((none = none || !m.reconstruction())) return;
      std::memcpy(out_f32_.data() + first * P, m.reconstruction(), sizeof(float) * b * P);
      for (size_t t = 0; t < T; t++) {
        const float* v = m.term(static_cast<int>(t));
        for (int i = 0; i < b; i++) {
          terms[t * B + first + i] = v[i];
          loss[first + i] += v[i];  // in double, as LossTotals::loss sums the terms
        }
      }
      image_squared_errors(m.reconstruction(), x, b, static_cast<int>(P), se.data() + first);
    });
    if (none) return error_result("reconstructTerms: model kind '" + m.config().kind + "' reconstructs nothing");
    val tv = val::object();
    const std::vector<std::string> names = m.loss_terms();
    for (size_t t = 0; t < T; t++)
      tv.set(names[t], val(emscripten::typed_memory_view(static_cast<size_t>(B), terms.data() + t * B)).call<val>("slice"));
    val r = val::object();
    r.set("recon", val(emscripten::typed_memory_view(out_f32_.size(), out_f32_.data())).call<val>("slice"));
    r.set("terms", tv);
    r.set("loss", val(emscripten::typed_memory_view(loss.size(), loss.data())).call<val>("slice"));
    r.set("mse", val(emscripten::typed_memory_view(se.size(), se.data())).call<val>("slice"));
    return ok_result(r);
  }

  // Codes [B, codeSize] (f32 buffer) -> pixel probabilities [B, input].
  val decode() {
    if (!state_) return not_loaded("decode");
    Model& m = *state_->model;
    int B = 0;
    Status s = check_rows(in_f32_, m.code_size(), "codes", "code", 1.0f, 0.0f, &B);
    if (s.ok()) {
      std::vector<float>().swap(out_f32_);
      s = ensure_memory(uint64_t(B) * m.config().input * sizeof(float) + reserve_bytes(m, std::min(B, kChunk)),
                        "memory");
    }
    if (!s.ok()) return error_result("decode: " + s.message());
    decode_rows(in_f32_.data(), B);
    return ok_result(view_of(out_f32_));
  }

  // `count` images decoded from z ~ N(0, temperature^2 I), drawn with `seed`. VAE-family models only.
  val sample(int count, double temperature, double seed_number) {
    if (!state_) return not_loaded("sample");
    Model& m = *state_->model;
    if (!m.has_gaussian_prior())
      return error_result("sample: model kind '" + m.config().kind +
                          "' has no prior to sample from (sampling needs a VAE)");
    if (count < 1 || count > kMaxSamples)
      return error_result("sample: count " + std::to_string(count) + " is out of range [1, " +
                          std::to_string(kMaxSamples) + "]");
    if (!std::isfinite(temperature) || temperature < 0.0 || temperature > 100.0)
      return error_result("sample: temperature " + number_str(temperature) +
                          " is out of range [0, 100]");
    uint64_t seed = 0;
    Status s = seed_from_number(seed_number, &seed);
    if (!s.ok()) return error_result("sample: " + s.message());
    s = ensure_memory(uint64_t(count) * (m.code_size() + m.config().input) * sizeof(float) +
                          reserve_bytes(m, std::min(count, kChunk)), "sample");
    if (!s.ok()) return error_result(s.message());
    std::vector<float> z(static_cast<size_t>(count) * m.code_size());
    Rng rng(seed);
    rng.fill_normal(z.data(), z.size(), 0.0f, static_cast<float>(temperature));
    decode_rows(z.data(), count);
    return ok_result(view_of(out_f32_));
  }

  // Mean loss terms per image over the pixels in the f32 buffer: {count, loss, terms: {name: value},
  // mse, metrics: {name: value}}. mode "mean" (z = posterior mean, deterministic) or "sample" (z drawn
  // with `seed`: the one-sample ELBO).
  val evaluate(const std::string& mode, double seed_number) {
    if (!state_) return not_loaded("evaluate");
    Model& m = *state_->model;
    if (mode != "mean" && mode != "sample")
      return error_result("evaluate: mode '" + mode + "' is not 'mean' or 'sample'");
    uint64_t seed = 0;
    Status s = seed_from_number(seed_number, &seed);
    int B = 0;
    if (s.ok()) s = check_rows(in_f32_, m.config().input, "pixels", "image", 0.0f, 1.0f, &B);
    if (s.ok()) s = ensure_memory(reserve_bytes(m, std::min(B, kChunk)), "memory");
    if (!s.ok()) return error_result("evaluate: " + s.message());
    const ZMode zmode = mode == "mean" ? ZMode::kMean : ZMode::kSample;
    Rng rng(seed, /*stream=*/3);
    LossTotals totals;
    m.metrics_reset();
    const size_t P = static_cast<size_t>(m.config().input);
    for (int first = 0; first < B; first += kChunk) {
      const int b = std::min(kChunk, B - first);
      if (b > m.max_batch()) m.reserve(b);
      const float* x = in_f32_.data() + first * P;
      m.forward(x, x, b, rng, zmode);
      accumulate_totals(m, x, b, &totals);
      m.metrics_accumulate(b);
    }
    std::vector<std::pair<std::string, double>> metrics;
    m.metrics_report(&metrics);
    val terms = val::object(), mvals = val::object();
    const std::vector<std::string> names = m.loss_terms();
    for (size_t t = 0; t < names.size(); t++) terms.set(names[t], totals.mean(t));
    for (const auto& [k, v] : metrics) mvals.set(k, v);
    val r = val::object();
    r.set("count", B);
    r.set("loss", totals.loss());
    r.set("terms", terms);
    r.set("mse", totals.mse_mean());
    r.set("metrics", mvals);
    return ok_result(r);
  }

  // The codebook and usage state of a model with code grids (CodeGrids, core/models/model.h; level 0,
  // or `level` of a model with several): {K, D, grid, ema, codebook: Float32Array [K*D],
  // stepsSinceUsed: Int32Array [K] (training steps since a cell last chose each code), deadCodeSteps,
  // restarts}. Code assignments themselves come from encode() (indices as floats, [B, grid*grid]).
  val vqState() {
    if (!state_) return not_loaded("vqState");
    const CodeGrids* grids = state_->model->code_grids();
    if (!grids)
      return error_result("vqState: model kind '" + state_->model->config().kind +
                          "' has no codebook (it has no code grids; a vqvae has one)");
    const int l = 0;
    const CodeLevel level = grids->level(l);
    val r = val::object();
    r.set("K", level.K);
    r.set("D", level.D);
    r.set("grid", level.H);
    r.set("ema", grids->ema(l));
    r.set("codebook", val(emscripten::typed_memory_view(static_cast<size_t>(level.K) * level.D,
                                                        grids->codebook(l))).call<val>("slice"));
    if (const int32_t* since = grids->steps_since_used(l))
      r.set("stepsSinceUsed",
            val(emscripten::typed_memory_view(static_cast<size_t>(level.K), since)).call<val>("slice"));
    r.set("deadCodeSteps", grids->dead_code_steps(l));
    r.set("restarts", static_cast<double>(grids->restarts(l)));
    return ok_result(r);
  }

  // The model as a safetensors file, dtype "f32" or "f16".
  val save(const std::string& dtype) {
    if (!state_) return not_loaded("save");
    if (dtype != "f32" && dtype != "f16")
      return error_result("save: dtype '" + dtype + "' is not 'f32' or 'f16'");
    std::vector<uint8_t>().swap(out_u8_);
    Status s = ensure_memory(uint64_t(state_->model->params().count()) * 2 * sizeof(float), "save");
    if (!s.ok()) return error_result(s.message());
    out_u8_ = save_model(*state_->model, state_->metadata, dtype == "f16" ? DType::kF16 : DType::kF32);
    return ok_result(view_of(out_u8_));
  }

  // Lists the model kinds with their hyperparameters, as JSON: [{name, description, data: "images" or
  // "codes", sizes, hyper: [{name, default, min, max, integer, help, fromData}]}]. Static: the page builds
  // its forms from it (fromData: set from the data, e.g. a code grid's K, H, W; not a form field).
  static std::string kinds() {
    std::string s = "[";
    for (const ModelKind& k : model_kinds()) {
      std::string hs;
      for (const HyperSpec& h : k.hyper)
        hs += (hs.empty() ? "" : ",") + std::string("{\"name\":") + json_quote(h.name) +
              ",\"default\":" + number_str(h.def) + ",\"min\":" + number_str(h.lo) +
              ",\"max\":" + number_str(h.hi) + ",\"integer\":" + (h.integer ? "true" : "false") +
              ",\"help\":" + json_quote(h.help) + ",\"fromData\":" + (h.from_data ? "true" : "false") + "}";
      std::string sizes;
      for (const HyperSpec& h : model_size_specs())
        if (h.name == "hidden" ? k.uses_hidden : k.uses_latent) sizes += (sizes.empty() ? "\"" : ",\"") + h.name + "\"";
      // "data": "codes" for a kind over grids of categories (it trains on a code model's code grids,
      // Model::categorical_input, asked of a shapes-only model of its defaults), else "images".
      bool codes = false;
      {
        ShapesOnly shapes_only;
        ModelConfig c;
        c.kind = k.name;
        if (k.input_of) c.input = k.input_of(c);
        std::unique_ptr<Model> plan;
        codes = create_model(c, &plan).ok() && plan->categorical_input(nullptr);
      }
      s += (s.size() > 1 ? "," : "") + std::string("{\"name\":") + json_quote(k.name) +
           ",\"description\":" + json_quote(k.description) + ",\"data\":\"" + (codes ? "codes" : "images") +
           "\",\"sizes\":[" + sizes + "],\"hyper\":[" + hs + "]}";
    }
    return s + "]";
  }

  // The common settings as JSON, from the core's tables: {train: [training settings (settings.h)],
  // sizes: [architecture sizes, as kinds()' hyper entries]}. The page builds its form and URL state from it.
  // The core's message for one value of a setting of `kind` (a training setting, an architecture size or
  // one of the kind's hyperparameters), or "" when it is valid: the page shows what the CLI would.
  static std::string settingError(const std::string& kind, const std::string& name, double value) {
    if (find_train_setting(name)) return TrainSettings().set(name, value).message();
    for (const HyperSpec& h : model_size_specs())
      if (h.name == name) return check_model_size(h, value).message();
    ModelConfig c;
    c.kind = kind;
    c.hyper[name] = value;
    return c.validate().message();
  }

  static std::string settings() {
    std::string sizes;
    for (const HyperSpec& h : model_size_specs())
      sizes += (sizes.empty() ? "" : ",") + std::string("{\"name\":") + json_quote(h.name) +
               ",\"default\":" + number_str(h.def) + ",\"min\":" + number_str(h.lo) +
               ",\"max\":" + number_str(h.hi) + ",\"integer\":true,\"help\":" + json_quote(h.help) + "}";
    return "{\"train\":" + train_settings_json() + ",\"sizes\":[" + sizes + "]}";
  }

  const std::shared_ptr<ModelState>& state() const { return state_; }

 private:
  void trim_all() {
    trim(&in_f32_);
    trim(&out_f32_);
    trim(&in_u8_);
    trim(&out_u8_);
  }

  static val not_loaded(const char* what) {
    return error_result(std::string(what) + ": the model was not created or loaded");
  }

  // Forward passes over the pixels in the f32 buffer, z = posterior mean, in chunks; copies `width`
  // floats per image of `result(model)` after each chunk into the output buffer.
  template <typename Width, typename Result>
  val run_forward(const char* what, Width width_of, Result result) {
    if (!state_) return not_loaded(what);
    Model& m = *state_->model;
    int B = 0;
    Status s = check_rows(in_f32_, m.config().input, "pixels", "image", 0.0f, 1.0f, &B);
    const size_t W = static_cast<size_t>(width_of(m));
    if (s.ok()) {
      std::vector<float>().swap(out_f32_);
      s = ensure_memory(uint64_t(B) * W * sizeof(float) + reserve_bytes(m, std::min(B, kChunk)), "memory");
    }
    if (!s.ok()) return error_result(std::string(what) + ": " + s.message());
    out_f32_.resize(static_cast<size_t>(B) * W);
    bool none = false;  // the model has no such output (a classifier's reconstruction)
    forward_chunks(B, [&](int first, int b, const float*) {
      if ((none = none || !result(m))) return;
      std::memcpy(out_f32_.data() + first * W, result(m), sizeof(float) * b * W);
    });
    if (none) return error_result(std::string(what) + ": model kind '" + m.config().kind + "' has no such output");
    return ok_result(view_of(out_f32_));
  }

  // Forward passes (z = posterior mean) over the B images of the f32 buffer, kChunk at a time; after
  // each, chunk(first, b, x) reads the model's outputs for images [first, first + b) of input x.
  template <typename Chunk>
  void forward_chunks(int B, Chunk chunk) {
    Model& m = *state_->model;
    const size_t P = static_cast<size_t>(m.config().input);
    Rng rng(0);  // unused with ZMode::kMean
    for (int first = 0; first < B; first += kChunk) {
      const int b = std::min(kChunk, B - first);
      if (b > m.max_batch()) m.reserve(b);
      const float* x = in_f32_.data() + first * P;
      m.forward(x, x, b, rng, ZMode::kMean);
      chunk(first, b, x);
    }
  }

  // Decodes B codes (B * codeSize floats, not in the output buffer) into the output buffer.
  void decode_rows(const float* z, int B) {
    Model& m = *state_->model;
    const size_t P = static_cast<size_t>(m.config().input), Z = static_cast<size_t>(m.code_size());
    out_f32_.resize(static_cast<size_t>(B) * P);
    for (int first = 0; first < B; first += kChunk) {
      const int b = std::min(kChunk, B - first);
      if (b > m.max_batch()) m.reserve(b);
      m.decode(z + first * Z, b, out_f32_.data() + first * P);
    }
  }

  std::shared_ptr<ModelState> state_;
  std::vector<float> in_f32_, out_f32_;
  std::vector<uint8_t> in_u8_, out_u8_;
};

class TrainerCore {
 public:
  explicit TrainerCore(ModelCore& model) : state_(model.state()) {}

  // Null when memory for the buffer cannot be had (the wrapper throws).
  val bufferImages(int n) {
    std::vector<uint8_t>().swap(images_);
    if (!ensure_memory(uint64_t(std::max(n, 0)), "buffer").ok()) return val::null();
    images_.assign(static_cast<size_t>(std::max(n, 0)), 0);
    return view_of(images_);
  }
  val bufferLabels(int n) {
    std::vector<uint8_t>().swap(labels_);
    if (!ensure_memory(uint64_t(std::max(n, 0)), "buffer").ok()) return val::null();
    labels_.assign(static_cast<size_t>(std::max(n, 0)), 0);
    return view_of(labels_);
  }

  // Takes the data from the buffers and the settings JSON {"batch", "lr", "seed", "epochs"}.
  // format: "idx" (the two IDX files), "raw" (N * input pixel bytes and N label bytes) or "auto"
  // (IDX when the images start with the IDX image magic 00 00 08 03).
  val setup(const std::string& format, const std::string& settings_json) {
    return setup_on(format, settings_json, nullptr, 0);
  }
  // The same for a model over grids of categories (a PixelCNN prior): the images are encoded by
  // `code_model`'s first level of codes (the first `limit` of them, 0: all; core/train/code_data.h) and
  // the model trains on those code grids with the images' labels.
  val setupCodes(ModelCore& code_model, const std::string& format, const std::string& settings_json, int limit) {
    if (!code_model.state()) return error_result("trainer: the code model was not created or loaded");
    return setup_on(format, settings_json, code_model.state()->model.get(), limit);
  }

 private:
  val setup_on(const std::string& format, const std::string& settings_json, Model* code_model, int limit) {
    if (!state_) return error_result("trainer: the model was not created or loaded");
    if (trainer_) return error_result("trainer: already set up");
    Model& m = *state_->model;
    if (!code_model && m.categorical_input(nullptr))
      return error_result("trainer: the " + m.config().kind + " model takes grids of categories (e.g. a VQ-VAE's code "
                          "grids), not images: give the data a codeModel whose codes it trains on");
    const int input = code_model ? code_model->config().input : m.config().input;
    TrainSettings settings;
    Status s = parse_settings(settings_json, &settings);
    if (!s.ok()) return error_result("training settings: " + s.message());
    // The batch's activations within the core's budget, then within what memory can still hold: the
    // activations, the trainer's two batch buffers, and a copy of IDX images.
    s = check_memory_budget(m, settings.batch);
    if (!s.ok()) return error_result("trainer: " + s.message());
    s = ensure_memory(reserve_bytes(m, settings.batch) +
                          uint64_t(settings.batch) * m.config().input * 2 * sizeof(float) + images_.size() +
                          uint64_t(images_.size() / std::max(input, 1)) * sizeof(uint32_t),
                      "trainer");
    if (!s.ok()) return error_result(s.message());
    s = make_data(format, input);
    if (!s.ok()) return error_result("training data: " + s.message());
    if (code_model) {
      Dataset codes;
      s = encode_code_grids(*code_model, data_, &codes, 0, limit);
      if (!s.ok()) return error_result("training data: " + s.message());
      data_ = std::move(codes);
    }
    trainer_ = std::make_unique<Trainer>();
    s = trainer_->setup(&m, &data_, settings);
    if (!s.ok()) {
      trainer_.reset();
      return error_result("trainer: " + s.message());
    }
    settings_ = settings;
    return ok_result(val(true));
  }

 public:

  // Runs n optimisation steps. value: {steps: [{step, epoch, loss, terms: {name: value}, mse}], and
  // progress (see progress())}. Values are per image (batch means). On an error (divergence) the
  // result carries the message and, in `value`, the steps that did complete.
  val step(double count) {
    if (!trainer_) return error_result("step: the trainer is not set up");
    if (!std::isfinite(count) || count != std::floor(count))
      return error_result("step: count " + number_str(count) + " must be an integer in [1, " +
                          std::to_string(kMaxStepsPerCall) + "]");
    if (count < 1 || count > kMaxStepsPerCall)
      return error_result("step: count " + number_str(count) + " is out of range [1, " +
                          std::to_string(kMaxStepsPerCall) + "]");
    const int n = static_cast<int>(count);
    const std::vector<std::string> names = state_->model->loss_terms();
    // A model with code grids reports the usage of its (first level's) codes over this call's batches.
    const CodeGrids* vq = state_->model->code_grids();
    const CodeLevel level = vq ? vq->level(0) : CodeLevel{};
    std::vector<int64_t> counts(static_cast<size_t>(level.K), 0);
    val steps = val::array();
    Status s;
    for (int i = 0; i < n && s.ok(); i++) {
      LossTotals t;
      StepMetrics metrics;
      s = trainer_->step(&t, &metrics);
      if (!s.ok()) break;
      if (vq) {  // the training batch's code assignments (the last forward was this step's)
        const int cells = std::min(settings_.batch, data_.size()) * level.cells();
        for (int c = 0; c < cells; c++) counts[vq->indices(0)[c]]++;
      }
      val terms = val::object();
      for (size_t k = 0; k < names.size(); k++) terms.set(names[k], t.mean(k));
      val rec = val::object();
      rec.set("step", static_cast<double>(trainer_->steps_done()));
      rec.set("epoch", trainer_->epoch());
      rec.set("loss", t.loss());
      rec.set("terms", terms);
      rec.set("mse", t.mse_mean());
      rec.set("lr", metrics.lr);
      rec.set("gradNorm", metrics.grad_norm);
      rec.set("clipped", metrics.clipped);
      steps.call<void>("push", rec);
    }
    record_training();
    val r = progress_object();
    r.set("steps", steps);
    if (vq) {  // code usage over this call's training batches: {counts [K], used, perplexity}
      int used = 0;
      for (int64_t c : counts) used += c > 0;
      val usage = val::object();
      std::vector<double> cd(counts.begin(), counts.end());
      usage.set("counts", val(emscripten::typed_memory_view(cd.size(), cd.data())).call<val>("slice"));
      usage.set("used", used);
      usage.set("perplexity", code_perplexity(counts.data(), level.K));
      r.set("codeUsage", usage);
    }
    if (!s.ok()) {
      val e = error_result(s.message());
      e.set("value", r);
      return e;
    }
    return ok_result(r);
  }

  // {stepsDone, epoch (completed), stepInEpoch, stepsPerEpoch, trainSize, batch, lr, seed}
  val progress() const {
    if (!trainer_) return error_result("progress: the trainer is not set up");
    return ok_result(progress_object());
  }

 private:
  // The settings JSON against the core's table (TrainSettings::from_json): the messages are the CLI's.
  static Status parse_settings(const std::string& json, TrainSettings* out) {
    return TrainSettings::from_json(json, out);
  }

  Status make_data(const std::string& format, int input) {
    const bool idx_magic = images_.size() >= 4 && images_[0] == 0 && images_[1] == 0 &&
                           images_[2] == 8 && images_[3] == 3;
    bool idx;
    if (format == "idx" || format == "raw" || format == "auto") {
      idx = format == "idx" || (format == "auto" && idx_magic);
    } else {
      return Status::error("format '" + format + "' is not 'idx', 'raw' or 'auto'");
    }
    ImageSet images;
    LabelSet labels;
    if (idx) {
      Status s = parse_idx_images(images_.data(), images_.size(), &images);
      if (!s.ok()) return s.with_context("images: ");
      s = parse_idx_labels(labels_.data(), labels_.size(), &labels);
      if (!s.ok()) return s.with_context("labels: ");
      std::vector<uint8_t>().swap(images_);
    } else {
      if (images_.empty() || images_.size() % static_cast<size_t>(input) != 0)
        return Status::error("raw images have " + std::to_string(images_.size()) +
                             " bytes; expected a positive multiple of " + std::to_string(input) +
                             " (one byte per pixel, " + std::to_string(input) + " per image)");
      const int side = static_cast<int>(std::lround(std::sqrt(static_cast<double>(input))));
      images.rows = side * side == input ? side : 1;
      images.cols = input / images.rows;
      images.count = static_cast<int>(images_.size() / input);
      images.pixels = std::move(images_);  // no copy
      labels.count = static_cast<int>(labels_.size());
      labels.labels = std::move(labels_);
    }
    images_.clear();
    std::vector<uint8_t>().swap(labels_);
    return make_dataset(std::move(images), std::move(labels), &data_);
  }

  // The training recipe, saved with the model (metadata "latentlab.train", as the native tool writes).
  void record_training() {
    state_->metadata["latentlab.train"] =
        settings_.to_json({"\"data\":\"wasm\"", "\"steps\":" + std::to_string(trainer_->steps_done())});
  }

  val progress_object() const {
    val r = val::object();
    r.set("stepsDone", static_cast<double>(trainer_->steps_done()));
    r.set("epoch", trainer_->epoch());
    r.set("stepInEpoch", trainer_->step_in_epoch());
    r.set("stepsPerEpoch", trainer_->steps_per_epoch());
    r.set("trainSize", data_.size());
    r.set("batch", settings_.batch);
    r.set("lr", settings_.adam.lr);
    r.set("seed", static_cast<double>(settings_.seed));
    return r;
  }

  std::shared_ptr<ModelState> state_;
  std::vector<uint8_t> images_, labels_;
  Dataset data_;  // must outlive trainer_ (declared first, destroyed last)
  TrainSettings settings_;
  std::unique_ptr<Trainer> trainer_;
};

// The PixelCNN prior over VQ-VAE code grids (core/models/pixelcnn.h): load a prior file, sample whole grids or
// one cell at a time (the page animates ancestral sampling), and score grids. Codes cross as Int32Array.
class PriorCore {
 public:
  // Null when memory for the buffer cannot be had (the wrapper throws).
  val bufferU8(int n) {
    std::vector<uint8_t>().swap(in_u8_);
    if (!ensure_memory(uint64_t(std::max(n, 0)), "buffer").ok()) return val::null();
    in_u8_.assign(static_cast<size_t>(std::max(n, 0)), 0);
    return view_of(in_u8_);
  }
  val bufferI32(int n) {
    std::vector<int32_t>().swap(in_i32_);
    if (!ensure_memory(uint64_t(std::max(n, 0)) * sizeof(int32_t), "buffer").ok()) return val::null();
    in_i32_.assign(static_cast<size_t>(std::max(n, 0)), 0);
    return view_of(in_i32_);
  }
  // The class of each grid for the next sample, sampleCell or nll call of a class-conditional prior
  // (n = 0: none, for an unconditional prior).
  val bufferLabels(int n) {
    labels_.assign(static_cast<size_t>(std::max(n, 0)), 0);
    return view_of(labels_);
  }

  val load() {
    if (prior_) return error_result("load: this object already holds a prior");
    // At most 4 arenas of the file's floats (F16; masked kernels stored at about half their k x k).
    Status s = ensure_memory(uint64_t(in_u8_.size()) * 16, "load");
    if (!s.ok()) return error_result(s.message());
    s = load_prior(in_u8_.data(), in_u8_.size(), &prior_, &metadata_);
    std::vector<uint8_t>().swap(in_u8_);
    if (!s.ok()) return error_result("prior file: " + s.message());
    return ok_result(val(true));
  }

  // {"K", "H", "W", "channels", "layers", "stacks", "classes", "metadata": {...}} as JSON.
  val info() const {
    if (!prior_) return not_loaded("info");
    const PixelCnnConfig& c = prior_->grid_config();
    std::string meta;
    for (const auto& [k, v] : metadata_) meta += (meta.empty() ? "" : ",") + json_quote(k) + ":" + json_quote(v);
    return ok_result(val("{\"K\":" + std::to_string(c.K) + ",\"H\":" + std::to_string(c.H) +
                         ",\"W\":" + std::to_string(c.W) + ",\"channels\":" + std::to_string(c.channels) +
                         ",\"layers\":" + std::to_string(c.layers) + ",\"stacks\":" + std::to_string(c.stacks) +
                         ",\"classes\":" + std::to_string(c.classes) + ",\"metadata\":{" + meta + "}}"));
  }

  // `count` grids sampled ancestrally with `temperature`, drawn with `seed` -> Int32Array [count*H*W].
  val sample(int count, double temperature, double seed_number) {
    if (!prior_) return not_loaded("sample");
    Rng rng;
    Status s = check_sampling("sample", count, temperature, seed_number, &rng);
    if (s.ok()) s = check_labels("sample", count);
    if (!s.ok()) return error_result(s.message());
    if (s.ok()) s = reserve(count);
    if (!s.ok()) return error_result("sample: " + s.message());
    out_i32_.assign(static_cast<size_t>(count) * cells(), 0);
    prior_->sample(out_i32_.data(), count, static_cast<float>(temperature), rng, labels());
    return ok_result(view_of(out_i32_));
  }

  // The grids in the i32 buffer with cell `cell` (raster index) of each resampled given the earlier
  // cells -> Int32Array of the same size. Cells after `cell` are ignored by the prior and returned as
  // they came.
  val sampleCell(int cell, double temperature, double seed_number) {
    if (!prior_) return not_loaded("sampleCell");
    int B = 0;
    Status s = check_grids("sampleCell", &B);
    Rng rng;
    if (s.ok()) s = check_sampling("sampleCell", B, temperature, seed_number, &rng);
    if (s.ok() && (cell < 0 || cell >= cells()))
      s = Status::error("sampleCell: cell " + std::to_string(cell) + " is out of range [0, " +
                        std::to_string(cells()) + ")");
    if (s.ok()) s = check_labels("sampleCell", B);
    if (!s.ok()) return error_result(s.message());
    if (s.ok()) s = reserve(B);
    if (!s.ok()) return error_result("sampleCell: " + s.message());
    out_i32_ = in_i32_;
    prior_->sample_cell(out_i32_.data(), B, cell, static_cast<float>(temperature), rng, labels());
    return ok_result(view_of(out_i32_));
  }

  // Negative log-likelihood in nats of each grid in the i32 buffer -> Float32Array [B].
  val nll() {
    if (!prior_) return not_loaded("nll");
    int B = 0;
    Status s = check_grids("nll", &B);
    if (s.ok()) s = check_labels("nll", B);
    if (s.ok()) s = reserve(B);
    if (!s.ok()) return error_result(s.message());
    prior_->forward(in_i32_.data(), B, labels());
    out_f32_.assign(prior_->nll(), prior_->nll() + B);
    return ok_result(view_of(out_f32_));
  }

 private:
  static val not_loaded(const char* what) {
    return error_result(std::string(what) + ": the prior was not loaded");
  }
  int cells() const { return prior_->grid_config().H * prior_->grid_config().W; }
  // Grows the activations to B grids, after checking memory for them (an upper bound of what
  // PixelCnnPrior::reserve allocates: per grid cell, 8 feature maps per layer and stack, the logits,
  // and the convolutions' patch workspace).
  Status reserve(int B) {
    if (B <= prior_->max_batch()) return Status();
    const PixelCnnConfig& c = prior_->grid_config();
    const uint64_t kmax = static_cast<uint64_t>(std::max(c.kernel_a, c.kernel_b));
    const uint64_t per_cell = uint64_t(c.channels) * (8 * (uint64_t(c.layers) + 1) + 6) + 4 * uint64_t(c.K) +
                              uint64_t(std::max(c.K, c.channels)) * kmax * kmax;
    Status s = ensure_memory(uint64_t(B) * cells() * per_cell * sizeof(float), "memory");
    if (!s.ok()) return s;
    prior_->reserve(B);
    return Status();
  }
  Status check_sampling(const char* what, int count, double temperature, double seed_number, Rng* rng) {
    if (count < 1 || count > 4096)
      return Status::error(std::string(what) + ": count " + std::to_string(count) + " is out of range [1, 4096]");
    if (!std::isfinite(temperature) || temperature <= 0.0 || temperature > 100.0)
      return Status::error(std::string(what) + ": temperature " + number_str(temperature) +
                           " is out of range (0, 100]");
    uint64_t seed = 0;
    Status s = seed_from_number(seed_number, &seed);
    if (!s.ok()) return s.with_context(std::string(what) + ": ");
    *rng = Rng(seed, /*stream=*/5);
    return Status();
  }
  const int32_t* labels() const { return labels_.empty() ? nullptr : labels_.data(); }
  // A class-conditional prior needs one label in [0, classes) per grid; an unconditional one none.
  Status check_labels(const char* what, int B) const {
    const int classes = prior_->grid_config().classes;
    if (classes == 0) {
      if (!labels_.empty())
        return Status::error(std::string(what) + ": this prior is unconditional; it takes no class labels");
      return Status();
    }
    if (labels_.size() != static_cast<size_t>(B))
      return Status::error(std::string(what) + ": this prior is conditioned on " + std::to_string(classes) +
                           " classes and needs one label per grid: " + std::to_string(B) + " grids but " +
                           std::to_string(labels_.size()) + " labels");
    for (size_t i = 0; i < labels_.size(); i++)
      if (labels_[i] < 0 || labels_[i] >= classes)
        return Status::error(std::string(what) + ": label " + std::to_string(labels_[i]) + " at index " +
                             std::to_string(i) + " is outside [0, " + std::to_string(classes) + ")");
    return Status();
  }
  // The i32 buffer holds whole grids of codes in [0, K); at most 4096 of them.
  Status check_grids(const char* what, int* B) {
    const size_t n = in_i32_.size(), G = static_cast<size_t>(cells());
    if (n == 0 || n % G != 0 || n / G > 4096)
      return Status::error(std::string(what) + ": codes has " + std::to_string(n) +
                           " values; expected 1 to 4096 grids of " + std::to_string(G));
    const int K = prior_->grid_config().K;
    for (size_t i = 0; i < n; i++)
      if (in_i32_[i] < 0 || in_i32_[i] >= K)
        return Status::error(std::string(what) + ": code " + std::to_string(in_i32_[i]) + " at index " +
                             std::to_string(i) + " is outside [0, " + std::to_string(K) + ")");
    *B = static_cast<int>(n / G);
    return Status();
  }

  std::unique_ptr<PixelCnnPrior> prior_;
  std::map<std::string, std::string> metadata_;
  std::vector<uint8_t> in_u8_;
  std::vector<int32_t> in_i32_, out_i32_, labels_;
  std::vector<float> out_f32_;
};

// ---- analyses of code assignments (core/eval/code_usage.h) and random codes, on plain arrays ----

// Copies a JS array or typed array of numbers into `out` (one copy, by the typed array's set), after
// checking that memory holds it. `what` names it in messages.
template <typename T>
Status copy_in(const val& array, const char* what, std::vector<T>* out) {
  if (array.isNull() || array.isUndefined() || !array["length"].isNumber())
    return Status::error(std::string(what) + ": expected an array of numbers");
  const double n = array["length"].as<double>();
  if (!(n >= 0 && n <= 536870912.0)) return Status::error(std::string(what) + ": too many values");
  Status s = ensure_memory(uint64_t(n) * sizeof(T), what);
  if (!s.ok()) return s;
  out->assign(static_cast<size_t>(n), T(0));
  if (n > 0) val(emscripten::typed_memory_view(out->size(), out->data())).call<void>("set", array);
  return Status();
}

val usage_object(const int64_t* counts, int K) {
  const CodeUsage u = summarise_code_usage(counts, K);
  std::vector<double> cd(counts, counts + K);
  val r = val::object();
  r.set("counts", val(emscripten::typed_memory_view(cd.size(), cd.data())).call<val>("slice"));
  r.set("cells", static_cast<double>(u.cells));
  r.set("used", u.used);
  r.set("dead", u.dead);
  r.set("perplexity", u.perplexity);
  return r;
}

Status check_codebook_size(const char* what, int K) {
  if (K < 1 || K > 65536)
    return Status::error(std::string(what) + ": K " + std::to_string(K) + " is out of range [1, 65536]");
  return Status();
}

// codes (indices, as encode() gives them) of a K-code model -> {counts: Float64Array [K], cells, used,
// dead, perplexity}.
val code_usage(const val& codes_js, int K) {
  Status s = check_codebook_size("codeUsage", K);
  std::vector<float> codes;
  if (s.ok()) s = copy_in(codes_js, "codeUsage: codes", &codes);
  std::vector<int64_t> counts(s.ok() ? static_cast<size_t>(K) : 0, 0);
  if (s.ok()) s = count_codes(codes.data(), codes.size(), K, counts.data()).with_context("codeUsage: ");
  if (!s.ok()) return error_result(s.message());
  return ok_result(usage_object(counts.data(), K));
}

// images (bytes, N images of S x S), codes [N, grid*grid] (indices as floats) -> {patches: Float32Array
// [K*patch*patch] (the mean input patch of each code), counts: Float64Array [K]}.
val code_patches_of(const val& images_js, const val& codes_js, int K, int grid, int patch) {
  Status s = check_codebook_size("codePatches", K);
  if (s.ok() && (grid < 1 || grid > 1024))
    s = Status::error("codePatches: grid " + std::to_string(grid) + " is out of range [1, 1024]");
  std::vector<uint8_t> images;
  std::vector<float> codes;
  if (s.ok()) s = copy_in(images_js, "codePatches: images", &images);
  if (s.ok()) s = copy_in(codes_js, "codePatches: codes", &codes);
  const size_t G = static_cast<size_t>(grid) * grid;
  int N = 0, S = 0;
  if (s.ok()) {
    N = static_cast<int>(codes.size() / G);
    const size_t per = N > 0 ? images.size() / N : 0;
    S = static_cast<int>(std::lround(std::sqrt(static_cast<double>(per))));
    if (N < 1 || codes.size() % G != 0 || images.size() != per * N || static_cast<size_t>(S) * S != per)
      s = Status::error("codePatches: " + std::to_string(codes.size()) + " codes and " +
                        std::to_string(images.size()) + " pixel bytes are not N grids of " + std::to_string(G) +
                        " codes and N square images");
  }
  if (s.ok() && (patch < 1 || patch > 1024))
    s = Status::error("codePatches: patch " + std::to_string(patch) + " is out of range [1, 1024]");
  std::vector<float> patches;
  std::vector<int64_t> counts;
  if (s.ok()) {
    patches.resize(static_cast<size_t>(K) * patch * patch);
    counts.resize(static_cast<size_t>(K));
    s = code_patches(images.data(), codes.data(), N, S, grid, K, patch, patches.data(), counts.data())
            .with_context("codePatches: ");
  }
  if (!s.ok()) return error_result(s.message());
  std::vector<double> cd(counts.begin(), counts.end());
  val r = val::object();
  r.set("patches", val(emscripten::typed_memory_view(patches.size(), patches.data())).call<val>("slice"));
  r.set("counts", val(emscripten::typed_memory_view(cd.size(), cd.data())).call<val>("slice"));
  return ok_result(r);
}

// count grids of `cells` codes drawn uniformly from [0, K) with Rng(seed, 5), as the CLI's `sample
// --uniform-codes` draws them -> Float32Array [count*cells] (indices as floats: decode() reads them).
val uniform_codes(int count, int cells, int K, double seed_number) {
  Status s = check_codebook_size("uniformCodes", K);
  if (s.ok() && (count < 1 || count > kMaxSamples))
    s = Status::error("uniformCodes: count " + std::to_string(count) + " is out of range [1, " +
                      std::to_string(kMaxSamples) + "]");
  if (s.ok() && (cells < 1 || cells > 4096))
    s = Status::error("uniformCodes: cells " + std::to_string(cells) + " is out of range [1, 4096]");
  uint64_t seed = 0;
  if (s.ok()) s = seed_from_number(seed_number, &seed).with_context("uniformCodes: ");
  const size_t n = static_cast<size_t>(std::max(count, 0)) * std::max(cells, 0);
  if (s.ok()) s = ensure_memory(n * (sizeof(int32_t) + sizeof(float)), "uniformCodes");
  if (!s.ok()) return error_result(s.message());
  std::vector<int32_t> codes(n);
  Rng rng(seed, /*stream=*/5);
  vq_uniform_codes(codes.data(), n, K, rng);
  std::vector<float> f(codes.begin(), codes.end());
  return ok_result(val(emscripten::typed_memory_view(f.size(), f.data())).call<val>("slice"));
}

// Code usage over the last `capacity` count vectors (the page's live usage while a VQ-VAE trains: one
// vector per training call, TrainerCore::step's codeUsage.counts).
class UsageWindowCore {
 public:
  val setup(int K, int capacity) {
    Status s = check_codebook_size("CodeUsageWindow", K);
    if (s.ok() && (capacity < 1 || capacity > 100000))
      s = Status::error("CodeUsageWindow: capacity " + std::to_string(capacity) + " is out of range [1, 100000]");
    if (s.ok()) s = ensure_memory(uint64_t(K) * (capacity + 1) * sizeof(int64_t), "CodeUsageWindow");
    if (!s.ok()) return error_result(s.message());
    window_ = std::make_unique<CodeUsageWindow>(K, capacity);
    return ok_result(val(true));
  }
  // counts [K] (non-negative integers).
  val add(const val& counts_js) {
    if (!window_) return error_result("add: the window is not set up");
    std::vector<double> c;
    Status s = copy_in(counts_js, "add: counts", &c);
    if (s.ok() && c.size() != static_cast<size_t>(window_->K()))
      s = Status::error("add: " + std::to_string(c.size()) + " counts; expected one per code (" +
                        std::to_string(window_->K()) + ")");
    std::vector<int64_t> counts(c.size());
    for (size_t k = 0; s.ok() && k < c.size(); k++) {
      if (!(c[k] >= 0 && c[k] <= 9007199254740992.0 && c[k] == std::floor(c[k])))
        s = Status::error("add: count " + number_str(c[k]) + " at index " + std::to_string(k) +
                          " is not a non-negative integer");
      else
        counts[k] = static_cast<int64_t>(c[k]);
    }
    if (!s.ok()) return error_result(s.message());
    window_->add(counts.data());
    return ok_result(val(true));
  }
  // {counts: Float64Array [K] (summed), cells, used, dead, perplexity, batches}
  val summary() const {
    if (!window_) return error_result("summary: the window is not set up");
    val r = usage_object(window_->counts(), window_->K());
    r.set("batches", window_->batches());
    return ok_result(r);
  }

 private:
  std::unique_ptr<CodeUsageWindow> window_;
};

// ---- benchmark hooks (bench.html): which GEMM runs, and its speed on a shape ----
val gemm_backends() {
  val list = val::array();
  for (GemmBackend b : {GemmBackend::kScalar, GemmBackend::kEigen, GemmBackend::kWasmSimd})
    if (gemm_backend_available(b)) list.call<void>("push", std::string(gemm_backend_name(b)));
  return list;
}

val set_gemm_backend_named(const std::string& name) {
  for (GemmBackend b : {GemmBackend::kScalar, GemmBackend::kEigen, GemmBackend::kWasmSimd}) {
    if (name == gemm_backend_name(b) && gemm_backend_available(b)) {
      set_gemm_backend(b);
      return ok_result(val(name));
    }
  }
  return error_result("setGemmBackend: '" + name + "' is not an available GEMM backend");
}

// GFLOP/s of C[M,N] = op(A) op(B) with the current backend, repeated for at least `seconds`.
val bench_gemm(int M, int N, int K, bool trans_a, bool trans_b, double seconds) {
  if (M < 1 || N < 1 || K < 1 || M > 4096 || N > 4096 || K > 4096)
    return error_result("benchGemm: sizes must be in [1, 4096]");
  if (!(seconds > 0.0 && seconds <= 60.0)) return error_result("benchGemm: seconds must be in (0, 60]");
  std::vector<float> A(static_cast<size_t>(M) * K), B(static_cast<size_t>(K) * N), C(static_cast<size_t>(M) * N);
  Rng rng(1);
  rng.fill_normal(A.data(), A.size(), 0.0f, 1.0f);
  rng.fill_normal(B.data(), B.size(), 0.0f, 1.0f);
  const int lda = trans_a ? M : K, ldb = trans_b ? K : N;
  gemm_f32(trans_a, trans_b, M, N, K, 1.0f, A.data(), lda, B.data(), ldb, 0.0f, C.data(), N);  // warm-up
  const double t0 = emscripten_get_now();
  double t = t0;
  int64_t reps = 0;
  while ((t = emscripten_get_now()) - t0 < seconds * 1000.0) {
    for (int i = 0; i < 4; i++)
      gemm_f32(trans_a, trans_b, M, N, K, 1.0f, A.data(), lda, B.data(), ldb, 0.0f, C.data(), N);
    reps += 4;
  }
  return ok_result(val(2.0 * M * N * K * reps / ((t - t0) / 1000.0) / 1e9));
}

}  // namespace
}  // namespace ll

EMSCRIPTEN_BINDINGS(latentlab) {
  using namespace emscripten;
  // The size of the module's memory in bytes (it grows, never shrinks): what the page's memory check reads.
  function("gemmBackends", &ll::gemm_backends);
  function("setGemmBackend", &ll::set_gemm_backend_named);
  function("benchGemm", &ll::bench_gemm);
  function("memoryBytes", optional_override([]() { return static_cast<double>(emscripten_get_heap_size()); }));
  function("codeUsage", &ll::code_usage);
  function("codePatches", &ll::code_patches_of);
  function("uniformCodes", &ll::uniform_codes);
  class_<ll::UsageWindowCore>("UsageWindowCore")
      .constructor<>()
      .function("setup", &ll::UsageWindowCore::setup)
      .function("add", &ll::UsageWindowCore::add)
      .function("summary", &ll::UsageWindowCore::summary);
  using ll::ModelCore;
  using ll::TrainerCore;
  class_<ModelCore>("ModelCore")
      .constructor<>()
      .function("bufferF32", &ModelCore::bufferF32)
      .function("bufferU8", &ModelCore::bufferU8)
      .function("load", &ModelCore::load)
      .function("create", &ModelCore::create)
      .function("info", &ModelCore::info)
      .function("reconstruct", &ModelCore::reconstruct)
      .function("encode", &ModelCore::encode)
      .function("encodeLogvar", &ModelCore::encodeLogvar)
      .function("reconstructTerms", &ModelCore::reconstructTerms)
      .function("classify", &ModelCore::classify)
      .function("decode", &ModelCore::decode)
      .function("sample", &ModelCore::sample)
      .function("evaluate", &ModelCore::evaluate)
      .function("vqState", &ModelCore::vqState)
      .function("save", &ModelCore::save)
      .class_function("kinds", &ModelCore::kinds)
      .class_function("settings", &ModelCore::settings)
      .class_function("settingError", &ModelCore::settingError);
  class_<TrainerCore>("TrainerCore")
      .constructor<ModelCore&>()
      .function("bufferImages", &TrainerCore::bufferImages)
      .function("bufferLabels", &TrainerCore::bufferLabels)
      .function("setup", &TrainerCore::setup)
      .function("setupCodes", &TrainerCore::setupCodes)
      .function("step", &TrainerCore::step)
      .function("progress", &TrainerCore::progress);
  class_<ll::PriorCore>("PriorCore")
      .constructor<>()
      .function("bufferU8", &ll::PriorCore::bufferU8)
      .function("bufferI32", &ll::PriorCore::bufferI32)
      .function("bufferLabels", &ll::PriorCore::bufferLabels)
      .function("load", &ll::PriorCore::load)
      .function("info", &ll::PriorCore::info)
      .function("sample", &ll::PriorCore::sample)
      .function("sampleCell", &ll::PriorCore::sampleCell)
      .function("nll", &ll::PriorCore::nll);
}
