// Model <-> safetensors; see model_file.h.
#include "core/models/model_file.h"

#include <cmath>

namespace ll {

namespace {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Architecture of a file saved without LatentLab metadata (e.g. from PyTorch), from names and shapes.
Status infer_config(const SafetensorsFile& f, ModelConfig* c) {
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const SafetensorsTensor& t : f.tensors) shapes[t.name] = t.shape;
  for (const ModelKind& kind : model_kinds()) {
    ModelConfig candidate;
    if (kind.infer && kind.infer(shapes, &candidate)) {
      *c = candidate;
      return c->validate();
    }
  }
  return Status::error("cannot tell which model this is: no 'latentlab.model' metadata and the tensor "
                       "names match no known model (e.g. fc1.weight for the MLP VAE, encoder.0.weight "
                       "for the MLP autoencoder)");
}

}  // namespace

std::vector<uint8_t> save_model(const Model& model, const std::map<std::string, std::string>& extra,
                                DType dtype) {
  std::vector<TensorToWrite> tensors;
  std::vector<std::vector<float>> packed;  // tensors whose file layout differs from memory (file_shape)
  packed.reserve(model.params().slots().size());
  for (size_t id = 0; id < model.params().slots().size(); id++) {
    const TensorSlot& slot = model.params().slots()[id];
    const float* w = model.params().params.data() + slot.offset;
    const std::vector<int64_t> shape = model.file_shape(static_cast<int>(id));
    if (shape == slot.shape) {
      tensors.push_back({slot.name, slot.shape, w});
      continue;
    }
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    std::vector<float>& out = packed.emplace_back(n);
    model.to_file_layout(static_cast<int>(id), w, out.data());
    tensors.push_back({slot.name, shape, out.data()});
  }
  std::map<std::string, std::string> metadata = extra;
  // The model alone: a resume file's position (metadata passed on from a loaded resume file, e.g. by
  // export or the page's download) would describe state this file does not hold.
  metadata.erase(kResumeMetadataKey);
  metadata["format"] = "pt";
  metadata["latentlab.model"] = model.config().kind;
  metadata["latentlab.config"] = model.config().to_json();
  return write_safetensors(tensors, metadata, dtype);
}

Status load_model(const uint8_t* bytes, size_t size, std::unique_ptr<Model>* out,
                  std::map<std::string, std::string>* metadata) {
  SafetensorsFile file;
  Status s = parse_safetensors(bytes, size, &file);
  if (!s.ok()) return s;

  ModelConfig config;
  auto it = file.metadata.find("latentlab.config");
  if (it != file.metadata.end()) {
    // A file whose config has no "kind" (the PixelCNN prior's files from before it was a registry kind)
    // takes it from "latentlab.model".
    auto named = file.metadata.find("latentlab.model");
    s = ModelConfig::from_json(it->second, &config, named == file.metadata.end() ? "" : named->second);
    if (!s.ok()) return s.with_context("metadata 'latentlab.config': ");
    // What older files of the kind left out (the kind's registry entry knows).
    const ModelKind* k = find_model_kind(config.kind);
    if (k && k->old_file_defaults) k->old_file_defaults(&config);
    auto kind = file.metadata.find("latentlab.model");
    if (kind != file.metadata.end() && kind->second != config.kind)
      return Status::error("metadata disagree: 'latentlab.model' is '" + kind->second +
                           "' but 'latentlab.config' says '" + config.kind + "'");
  } else {
    s = infer_config(file, &config);
    if (!s.ok()) return s;
  }

  // The config's tensors are checked against the file's before the model's memory is allocated (a
  // shapes-only model has the layout and no arenas): a small file whose config asks for gigabytes is
  // refused here, so what a load allocates stays bounded by the file's real size.
  std::unique_ptr<Model> plan;
  {
    ShapesOnly shapes_only;
    s = create_model(config, &plan);
  }
  if (!s.ok()) return s;
  // Every tensor of the model must be present with the right shape; nothing else may be.
  // A tensor may be stored in the kind's file layout (Model::file_shape) or as in memory.
  const ParamArena& layout = plan->params();
  std::vector<bool> in_file_layout(layout.slots().size(), false);
  for (size_t id = 0; id < layout.slots().size(); id++) {
    const TensorSlot& slot = layout.slots()[id];
    const std::vector<int64_t> file_shape = plan->file_shape(static_cast<int>(id));
    const SafetensorsTensor* t = file.find(slot.name);
    if (!t)
      return Status::error("missing tensor '" + slot.name + "' (shape " + shape_str(file_shape) +
                           ") required by the " + config.kind + " model");
    in_file_layout[id] = file_shape != slot.shape && t->shape == file_shape;
    if (t->shape != slot.shape && !in_file_layout[id])
      return Status::error("tensor '" + slot.name + "' has shape " + shape_str(t->shape) +
                           " but the " + config.kind + " model " + config.to_json() + " needs " +
                           shape_str(file_shape));
  }
  // A resume file's training state is not the model's: skipped here (core/train/checkpoint.h reads it).
  const bool resume_file = file.metadata.count(kResumeMetadataKey) > 0;
  const std::string resume_prefix = kResumeTensorPrefix;
  for (const SafetensorsTensor& t : file.tensors)
    if (layout.find(t.name) < 0 && !(resume_file && t.name.compare(0, resume_prefix.size(), resume_prefix) == 0))
      return Status::error("unexpected tensor '" + t.name + "' for the " + config.kind +
                           " model (expected only: " + [&] {
                             std::string names;
                             for (const auto& slot : layout.slots())
                               names += (names.empty() ? "" : ", ") + slot.name;
                             return names;
                           }() + ")");
  plan.reset();

  std::unique_ptr<Model> model;
  s = create_model(config, &model);  // also checks the memory budget
  if (!s.ok()) return s;
  ParamArena& arena = model->params();
  std::vector<float> stored;
  for (size_t id = 0; id < arena.slots().size(); id++) {
    const TensorSlot& slot = arena.slots()[id];
    const SafetensorsTensor* t = file.find(slot.name);
    if (in_file_layout[id]) {
      size_t n = 1;
      for (int64_t d : t->shape) n *= static_cast<size_t>(d);
      stored.resize(n);
      s = file.read_f32(*t, stored.data(), n);
      if (s.ok()) model->from_file_layout(static_cast<int>(id), stored.data(), arena.params.data() + slot.offset);
    } else {
      s = file.read_f32(*t, arena.params.data() + slot.offset, slot.size);
    }
    if (!s.ok()) return s.with_context("tensor '" + slot.name + "': ");
    for (size_t i = 0; i < slot.size; i++)
      if (!std::isfinite(arena.params[slot.offset + i]))
        return Status::error("tensor '" + slot.name + "' holds a non-finite value at element " +
                             std::to_string(i));
  }
  model->after_load();
  if (metadata) *metadata = file.metadata;
  *out = std::move(model);
  return Status();
}

}  // namespace ll
