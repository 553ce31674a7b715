// ModelConfig: defaults, validation and (de)serialisation against the kind registry.
#include "core/models/model.h"

#include <cassert>
#include <cmath>
#include <cstdio>

#include "core/io/json.h"

namespace ll {

namespace {

const HyperSpec* find_spec(const ModelKind& kind, const std::string& name) {
  for (const HyperSpec& h : kind.hyper)
    if (h.name == name) return &h;
  return nullptr;
}

std::string number_str(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

}  // namespace

InferenceLayer linear_inference_layer(const std::string& name, const float* weight, const float* bias, int C,
                                      int OC, bool relu) {
  InferenceLayer l;
  l.type = InferenceLayer::Type::kLinear;
  l.name = name;
  l.weight = weight, l.bias = bias;
  l.C = C, l.OC = OC, l.relu = relu;
  return l;
}

const ModelKind* find_model_kind(const std::string& name) {
  for (const ModelKind& k : model_kinds())
    if (k.name == name) return &k;
  return nullptr;
}

double ModelConfig::get(const std::string& name) const {
  auto it = hyper.find(name);
  if (it != hyper.end()) return it->second;
  const ModelKind* k = find_model_kind(kind);
  assert(k && "ModelConfig::get on an unknown kind");
  const HyperSpec* h = k ? find_spec(*k, name) : nullptr;
  assert(h && "ModelConfig::get of a hyperparameter the kind does not have");
  return h ? h->def : 0.0;
}

std::string ModelConfig::to_json() const {
  std::string s = "{\"kind\":" + json_quote(kind) + ",\"input\":" + std::to_string(input) +
                  ",\"hidden\":" + std::to_string(hidden) + ",\"latent\":" + std::to_string(latent);
  // Every hyperparameter of the kind, defaults included, so a file states its full recipe.
  if (const ModelKind* k = find_model_kind(kind))
    for (const HyperSpec& h : k->hyper) s += "," + json_quote(h.name) + ":" + number_str(get(h.name));
  return s + "}";
}

Status ModelConfig::from_json(const std::string& json, ModelConfig* out, const std::string& kind_if_absent) {
  JsonValue v;
  Status s = parse_json(json.data(), json.size(), &v);
  if (!s.ok()) return s.with_context("model config: ");
  if (v.type != JsonValue::Type::kObject) return Status::error("model config: expected a JSON object");
  const JsonValue* kind = v.get("kind");
  if ((!kind && kind_if_absent.empty()) || (kind && kind->type != JsonValue::Type::kString))
    return Status::error("model config: 'kind' must be present and a string");
  const std::string kind_name = kind ? kind->string : kind_if_absent;
  const ModelKind* k = find_model_kind(kind_name);
  if (!k) return Status::error("model config: unknown model kind '" + kind_name + "'");
  ModelConfig c;
  c.kind = kind_name;
  for (const auto& [key, val] : v.object) {
    if (key == "kind") continue;
    if (val.type != JsonValue::Type::kNumber)
      return Status::error("model config: '" + key + "' must be a number");
    int* field = key == "input" ? &c.input : key == "hidden" ? &c.hidden : key == "latent" ? &c.latent
                                                                                            : nullptr;
    if (field) {
      if (!val.is_integer || val.integer < 1 || val.integer > (1 << 20))
        return Status::error("model config: '" + key + "' must be an integer in [1, 1048576]");
      *field = static_cast<int>(val.integer);
    } else if (find_spec(*k, key)) {
      c.hyper[key] = val.number;
    } else {
      return Status::error("model config: unknown key '" + key + "' for model kind '" + c.kind + "'");
    }
  }
  if (k->input_of && !v.get("input")) c.input = k->input_of(c);
  Status valid = c.validate();
  if (!valid.ok()) return valid.with_context("model config: ");
  *out = c;
  return Status();
}

Status ModelConfig::validate() const {
  const ModelKind* k = find_model_kind(kind);
  if (!k) {
    std::string names;
    for (const ModelKind& m : model_kinds()) names += (names.empty() ? "" : ", ") + m.name;
    return Status::error("unknown model kind '" + kind + "': expected one of " + names);
  }
  if (input < 1 || input > (1 << 16))
    return Status::error("model input size " + std::to_string(input) + " is out of range [1, 65536]");
  for (const HyperSpec& h : model_size_specs()) {  // the same message as the CLI's and the page's
    Status s = check_model_size(h, h.name == "hidden" ? hidden : latent);
    if (!s.ok()) return s;
  }
  for (const auto& [name, value] : hyper) {
    const HyperSpec* h = find_spec(*k, name);
    if (!h) return Status::error("'" + name + "' is not a setting of model kind '" + kind + "'");
    if (!std::isfinite(value) || value < h->lo || value > h->hi)
      return Status::error("'" + name + "' = " + number_str(value) + " is out of range [" +
                           number_str(h->lo) + ", " + number_str(h->hi) + "] for " + kind);
    if (h->integer && value != std::floor(value))
      return Status::error("'" + name + "' = " + number_str(value) + " must be an integer");
  }
  if (k->input_of && input != k->input_of(*this))
    return Status::error("model '" + kind + "' has input " + std::to_string(input) + " but its hyperparameters give " +
                         std::to_string(k->input_of(*this)));
  if (k->check) return k->check(*this);
  return Status();
}

Status check_model_size(const HyperSpec& h, double v) {
  if (!std::isfinite(v) || v < h.lo || v > h.hi)
    return Status::error(h.name + " = " + json_number(v) + " is out of range [" + json_number(h.lo) + ", " +
                         json_number(h.hi) + "]");
  if (v != std::floor(v)) return Status::error(h.name + " = " + json_number(v) + " must be an integer");
  return Status();
}

uint64_t Model::memory_floats(int B) const {
  uint64_t params = 0;  // from the shapes, in 64 bits (the arena's size_t may be 32-bit in wasm)
  for (const TensorSlot& slot : params_.slots()) {
    uint64_t n = 1;
    for (int64_t d : slot.shape) n *= static_cast<uint64_t>(d);
    params += n + 15;  // each slice is 16-float aligned
  }
  return 4 * params + activation_floats(B);
}

namespace {
std::string mib(uint64_t floats) { return std::to_string((floats * 4 + (1 << 20) - 1) >> 20) + " MiB"; }

Status budget_status(uint64_t floats, const std::string& what, int batch) {
  if (floats <= kMaxModelFloats) return Status();
  return Status::error(what + (batch > 0 ? " with a batch of " + std::to_string(batch) : std::string()) +
                       " needs " + mib(floats) + " (parameters, gradients, optimiser state" +
                       (batch > 0 ? ", activations" : "") + "), beyond the budget of " + mib(kMaxModelFloats) +
                       (batch > 0 ? ": use a smaller batch or model" : ": use a smaller model"));
}
}  // namespace

Status check_memory_budget(const ModelConfig& config, int batch, uint64_t* floats) {
  Status s = config.validate();
  if (!s.ok()) return s;
  std::unique_ptr<Model> plan;
  {
    ShapesOnly shapes_only;
    plan = find_model_kind(config.kind)->create(config);
  }
  const uint64_t n = plan->memory_floats(batch);
  if (floats) *floats = n;
  return budget_status(n, "the " + config.kind + " model " + config.to_json(), batch);
}

Status check_memory_budget(const Model& model, int batch, uint64_t* floats) {
  const uint64_t n = model.memory_floats(batch);
  if (floats) *floats = n;
  return budget_status(n, "the " + model.config().kind + " model", batch);
}

Status create_model(const ModelConfig& config, std::unique_ptr<Model>* out) {
  Status s = config.validate();
  if (!s.ok()) return s;
  if (!ShapesOnly::active()) {
    s = check_memory_budget(config, 0);
    if (!s.ok()) return s;
  }
  *out = find_model_kind(config.kind)->create(config);
  return Status();
}

}  // namespace ll
