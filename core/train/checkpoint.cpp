// Resume files; see checkpoint.h.
#include "core/train/checkpoint.h"

#include <cinttypes>
#include <cmath>
#include <cstdio>

#include "core/io/json.h"
#include "core/io/safetensors.h"
#include "core/models/model_file.h"

namespace ll {

namespace {

const std::string kPrefix = kResumeTensorPrefix;
constexpr int kVersion = 1;

std::string hex64(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
  return buf;
}

bool parse_hex64(const JsonValue* v, uint64_t* out) {
  if (!v || v->type != JsonValue::Type::kString || v->string.empty() || v->string.size() > 16) return false;
  uint64_t x = 0;
  for (char c : v->string) {
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return false;
    x = x << 4 | static_cast<uint64_t>(d);
  }
  *out = x;
  return true;
}

// A parsed JSON value written back as text (numbers exactly: integers as integers, others by
// json_number's round trip).
std::string json_text(const JsonValue& v) {
  switch (v.type) {
    case JsonValue::Type::kNull: return "null";
    case JsonValue::Type::kBool: return v.boolean ? "true" : "false";
    case JsonValue::Type::kNumber: return v.is_integer ? std::to_string(v.integer) : json_number(v.number);
    case JsonValue::Type::kString: return json_quote(v.string);
    case JsonValue::Type::kArray: {
      std::string s = "[";
      for (size_t i = 0; i < v.array.size(); i++) s += (i ? "," : "") + json_text(v.array[i]);
      return s + "]";
    }
    case JsonValue::Type::kObject: {
      std::string s = "{";
      for (size_t i = 0; i < v.object.size(); i++)
        s += (i ? "," : "") + json_quote(v.object[i].first) + ":" + json_text(v.object[i].second);
      return s + "}";
    }
  }
  return "null";
}

bool get_int(const JsonValue& obj, const char* key, int64_t lo, int64_t hi, int64_t* out) {
  const JsonValue* v = obj.get(key);
  if (!v || v->type != JsonValue::Type::kNumber || !v->is_integer || v->integer < lo || v->integer > hi)
    return false;
  *out = v->integer;
  return true;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Reads tensor `name` of `shape` as float32 or float64 (exactly one of f32 / f64 non-null); all finite.
Status read_state_tensor(const SafetensorsFile& file, const std::string& name, const std::vector<int64_t>& shape,
                         std::vector<float>* f32, std::vector<double>* f64) {
  const SafetensorsTensor* t = file.find(name);
  if (!t) return Status::error("missing training-state tensor '" + name + "' (shape " + shape_str(shape) + ")");
  if (t->shape != shape)
    return Status::error("training-state tensor '" + name + "' has shape " + shape_str(t->shape) + " but the model needs " +
                         shape_str(shape));
  if (t->dtype != (f32 ? DType::kF32 : DType::kF64))
    return Status::error("training-state tensor '" + name + "' is " + dtype_name(t->dtype) + "; resume files store it as " +
                         (f32 ? "F32" : "F64"));
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  Status s;
  if (f32) {
    f32->resize(n);
    s = file.read_f32(*t, f32->data(), n);
  } else {
    f64->resize(n);
    s = file.read_f64(*t, f64->data(), n);
  }
  if (!s.ok()) return s;
  for (size_t i = 0; i < n; i++)
    if (!std::isfinite(f32 ? static_cast<double>((*f32)[i]) : (*f64)[i]))
      return Status::error("training-state tensor '" + name + "' holds a non-finite value at element " + std::to_string(i));
  return Status();
}

}  // namespace

std::vector<uint8_t> save_resume_file(const Model& model, const Trainer& trainer,
                                      const std::map<std::string, std::string>& metadata,
                                      const std::string& caller_json) {
  const ParamArena& arena = model.params();
  const TrainerPosition p = trainer.position();
  const std::vector<StateTensor> state = model.training_state();
  std::vector<TensorToWrite> tensors;
  for (const TensorSlot& slot : arena.slots())
    tensors.push_back({slot.name, slot.shape, arena.params.data() + slot.offset});
  for (const TensorSlot& slot : arena.slots())
    tensors.push_back({kPrefix + "exp_avg." + slot.name, slot.shape, arena.adam_m.data() + slot.offset});
  for (const TensorSlot& slot : arena.slots())
    tensors.push_back({kPrefix + "exp_avg_sq." + slot.name, slot.shape, arena.adam_v.data() + slot.offset});
  const std::vector<double> order(p.order.begin(), p.order.end());
  tensors.push_back({kPrefix + "order", {static_cast<int64_t>(order.size())}, nullptr, order.data()});
  for (const StateTensor& t : state) tensors.push_back({kPrefix + "model." + t.name, t.shape, nullptr, t.values.data()});

  std::map<std::string, std::string> meta = metadata;
  meta["format"] = "pt";
  meta["latentlab.model"] = model.config().kind;
  meta["latentlab.config"] = model.config().to_json();
  meta[kResumeMetadataKey] =
      "{\"version\":" + std::to_string(kVersion) + ",\"settings\":" + trainer.settings().to_json() +
      ",\"step\":" + std::to_string(p.step) + ",\"epoch\":" + std::to_string(p.epoch) +
      ",\"cursor\":" + std::to_string(p.cursor) + ",\"reference_loss\":" + json_number(p.reference_loss) +
      ",\"rng\":{\"state\":\"" + hex64(p.rng.state) + "\",\"inc\":\"" + hex64(p.rng.inc) +
      "\",\"has_spare\":" + (p.rng.has_spare ? "true" : "false") + ",\"spare\":" + json_number(p.rng.spare) +
      "},\"caller\":" + caller_json + "}";
  return write_safetensors(tensors, meta, DType::kF32);
}

Status load_resume_file(const uint8_t* bytes, size_t size, std::unique_ptr<Model>* model_out, ResumeState* out,
                        std::map<std::string, std::string>* metadata) {
  std::unique_ptr<Model> model;
  std::map<std::string, std::string> meta;
  Status s = load_model(bytes, size, &model, &meta);  // the model part, checked as any model file
  if (!s.ok()) return s;
  auto it = meta.find(kResumeMetadataKey);
  if (it == meta.end())
    return Status::error("it holds a model but no optimiser state to resume from (save it with --save-optimizer "
                         "or --checkpoint-minutes)");
  SafetensorsFile file;
  s = parse_safetensors(bytes, size, &file);
  if (!s.ok()) return s;
  JsonValue root;
  s = parse_json(it->second.data(), it->second.size(), &root);
  if (!s.ok()) return s.with_context("metadata '" + std::string(kResumeMetadataKey) + "': ");
  const std::string where = "metadata '" + std::string(kResumeMetadataKey) + "': ";
  if (root.type != JsonValue::Type::kObject) return Status::error(where + "expected a JSON object");
  int64_t version = 0;
  if (!get_int(root, "version", 0, 1 << 30, &version) || version != kVersion)
    return Status::error(where + "unknown version (this LatentLab reads version " + std::to_string(kVersion) + ")");

  ResumeState st;
  const JsonValue* settings = root.get("settings");
  if (!settings || settings->type != JsonValue::Type::kObject) return Status::error(where + "no \"settings\" object");
  s = TrainSettings::from_json(json_text(*settings), &st.settings);
  if (!s.ok()) return s.with_context(where + "settings: ");
  int64_t v = 0;
  TrainerPosition& p = st.position;
  if (!get_int(root, "step", 0, INT64_MAX, &p.step)) return Status::error(where + "bad or missing \"step\"");
  if (!get_int(root, "epoch", 0, INT32_MAX, &v)) return Status::error(where + "bad or missing \"epoch\"");
  p.epoch = static_cast<int>(v);
  if (!get_int(root, "cursor", 0, INT32_MAX, &v)) return Status::error(where + "bad or missing \"cursor\"");
  p.cursor = static_cast<int>(v);
  const JsonValue* ref = root.get("reference_loss");
  if (!ref || ref->type != JsonValue::Type::kNumber) return Status::error(where + "bad or missing \"reference_loss\"");
  p.reference_loss = ref->number;
  const JsonValue* rng = root.get("rng");
  const JsonValue* has_spare = rng ? rng->get("has_spare") : nullptr;
  const JsonValue* spare = rng ? rng->get("spare") : nullptr;
  if (!rng || !parse_hex64(rng->get("state"), &p.rng.state) || !parse_hex64(rng->get("inc"), &p.rng.inc) ||
      !has_spare || has_spare->type != JsonValue::Type::kBool || !spare || spare->type != JsonValue::Type::kNumber)
    return Status::error(where + "bad or missing \"rng\"");
  p.rng.has_spare = has_spare->boolean;
  p.rng.spare = spare->number;
  const JsonValue* caller = root.get("caller");
  if (caller) {
    if (caller->type != JsonValue::Type::kObject) return Status::error(where + "\"caller\" must be an object");
    st.caller = json_text(*caller);
  }

  // The tensors: Adam's moments per parameter, the order, the model's state; nothing else.
  const ParamArena& arena = model->params();
  st.adam_m.assign(arena.size(), 0.0f);
  st.adam_v.assign(arena.size(), 0.0f);
  std::vector<float> f;
  for (const TensorSlot& slot : arena.slots()) {
    for (int which = 0; which < 2; which++) {
      s = read_state_tensor(file, kPrefix + (which ? "exp_avg_sq." : "exp_avg.") + slot.name, slot.shape, &f, nullptr);
      if (!s.ok()) return s;
      if (which == 1)
        for (size_t i = 0; i < f.size(); i++)
          if (f[i] < 0.0f)
            return Status::error("training-state tensor '" + kPrefix + "exp_avg_sq." + slot.name +
                                 "' holds a negative second moment at element " + std::to_string(i));
      std::copy(f.begin(), f.end(), (which ? st.adam_v : st.adam_m).begin() + static_cast<ptrdiff_t>(slot.offset));
    }
  }
  const SafetensorsTensor* order = file.find(kPrefix + "order");
  if (!order || order->shape.size() != 1)
    return Status::error("missing training-state tensor '" + kPrefix + "order' (the order of the training images)");
  std::vector<double> d;
  s = read_state_tensor(file, kPrefix + "order", order->shape, nullptr, &d);
  if (!s.ok()) return s;
  p.order.resize(d.size());
  for (size_t i = 0; i < d.size(); i++) {
    if (!(d[i] >= 0.0 && d[i] < 4294967296.0 && d[i] == std::floor(d[i])))
      return Status::error("training-state tensor '" + kPrefix + "order' holds " + json_number(d[i]) + " at element " +
                           std::to_string(i) + ", not an image index");
    p.order[i] = static_cast<uint32_t>(d[i]);
  }
  for (StateTensor t : model->training_state()) {
    s = read_state_tensor(file, kPrefix + "model." + t.name, t.shape, nullptr, &t.values);
    if (!s.ok()) return s;
    st.model_state.push_back(std::move(t));
  }
  size_t state_tensors = 0;
  for (const SafetensorsTensor& t : file.tensors)
    if (t.name.compare(0, kPrefix.size(), kPrefix) == 0) state_tensors++;
  const size_t wanted = arena.slots().size() * 2 + 1 + st.model_state.size();
  if (state_tensors != wanted)
    return Status::error("the file holds " + std::to_string(state_tensors) + " training-state tensors but the " +
                         model->config().kind + " model's state has " + std::to_string(wanted) +
                         " (a state tensor of another model?)");
  if (metadata) *metadata = std::move(meta);
  *out = std::move(st);
  *model_out = std::move(model);
  return Status();
}

Status resume_training(const ResumeState& state, Model* model, Trainer* trainer) {
  const ParamArena& arena = model->params();
  if (state.adam_m.size() != arena.size() || state.adam_v.size() != arena.size())
    return Status::error("the optimiser state does not match the model's parameters");
  const std::vector<StateTensor> old_state = model->training_state();
  if (old_state.size() != state.model_state.size())
    return Status::error("the model's training state does not match the file's");
  for (size_t i = 0; i < old_state.size(); i++)
    if (old_state[i].name != state.model_state[i].name || old_state[i].shape != state.model_state[i].shape)
      return Status::error("the model's training state '" + old_state[i].name + "' does not match the file's");
  Status s = model->set_training_state(state.model_state);
  if (!s.ok()) return s;
  s = trainer->set_position(state.position);
  if (!s.ok()) {
    model->set_training_state(old_state);  // back as it was
    return s;
  }
  ParamArena& a = model->params();
  std::copy(state.adam_m.begin(), state.adam_m.end(), a.adam_m.begin());
  std::copy(state.adam_v.begin(), state.adam_v.end(), a.adam_v.begin());
  return Status();
}

}  // namespace ll
