// ModelConfig (de)serialisation and the model factory.
#include "core/model.h"

#include "core/json.h"
#include "core/mlp_ae.h"
#include "core/mlp_vae.h"

namespace ll {

std::string ModelConfig::to_json() const {
  return "{\"kind\":" + json_quote(kind) + ",\"input\":" + std::to_string(input) +
         ",\"hidden\":" + std::to_string(hidden) + ",\"latent\":" + std::to_string(latent) + "}";
}

Status ModelConfig::from_json(const std::string& json, ModelConfig* out) {
  JsonValue v;
  Status s = parse_json(json.data(), json.size(), &v);
  if (!s.ok()) return s.with_context("model config: ");
  if (v.type != JsonValue::Type::kObject) return Status::error("model config: expected a JSON object");
  ModelConfig c;
  for (const auto& [key, val] : v.object) {
    if (key == "kind") {
      if (val.type != JsonValue::Type::kString)
        return Status::error("model config: 'kind' must be a string");
      c.kind = val.string;
      continue;
    }
    int* field = key == "input" ? &c.input : key == "hidden" ? &c.hidden : key == "latent" ? &c.latent
                                                                                            : nullptr;
    if (!field) return Status::error("model config: unknown key '" + key + "'");
    if (val.type != JsonValue::Type::kNumber || !val.is_integer || val.integer < 1 ||
        val.integer > (1 << 20))
      return Status::error("model config: '" + key + "' must be an integer in [1, 1048576]");
    *field = static_cast<int>(val.integer);
  }
  Status valid = c.validate();
  if (!valid.ok()) return valid;
  *out = c;
  return Status();
}

Status ModelConfig::validate() const {
  if (kind != "ae" && kind != "vae")
    return Status::error("unknown model kind '" + kind + "': expected 'ae' or 'vae'");
  auto check = [](const char* name, int v, int hi) {
    return v >= 1 && v <= hi ? Status()
                             : Status::error(std::string("model ") + name + " size " +
                                             std::to_string(v) + " is out of range [1, " +
                                             std::to_string(hi) + "]");
  };
  for (Status s : {check("input", input, 1 << 16), check("hidden", hidden, 1 << 14),
                   check("latent", latent, 1 << 12)})
    if (!s.ok()) return s;
  return Status();
}

Status create_model(const ModelConfig& config, std::unique_ptr<Model>* out) {
  Status s = config.validate();
  if (!s.ok()) return s;
  if (config.kind == "vae") out->reset(new MlpVae(config));
  else out->reset(new MlpAutoencoder(config));
  return Status();
}

}  // namespace ll
