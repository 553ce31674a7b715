// Model files: a Model <-> safetensors bytes. Tensor names and layouts are PyTorch's (see each model's
// header), so a state_dict saved with safetensors in PyTorch loads here, and ours load there.
// Metadata keys written: "latentlab.model" (kind), "latentlab.config" (ModelConfig JSON), "format": "pt",
// plus whatever the caller adds (training settings). Files without LatentLab metadata (saved from
// PyTorch) get their architecture inferred from the tensor names and shapes.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/models/model.h"
#include "core/io/safetensors.h"

namespace ll {

// A resume file (core/train/checkpoint.h) is a model file plus training state: metadata under
// kResumeMetadataKey and tensors named kResumeTensorPrefix + ... (Adam's moments, the data order, the
// model's training_state()). load_model skips those tensors when the metadata is there, so a resume file
// loads wherever a model file does; save_model drops the metadata (it writes the model alone).
inline constexpr const char* kResumeMetadataKey = "latentlab.resume";
inline constexpr const char* kResumeTensorPrefix = "latentlab.resume.";

std::vector<uint8_t> save_model(const Model& model, const std::map<std::string, std::string>& extra,
                                DType dtype = DType::kF32);

// Parses, infers or reads the architecture, checks that the tensors are exactly the model's (names,
// shapes; missing or extra ones are named), and loads the weights. On error *out is untouched.
Status load_model(const uint8_t* bytes, size_t size, std::unique_ptr<Model>* out,
                  std::map<std::string, std::string>* metadata = nullptr);

}  // namespace ll
