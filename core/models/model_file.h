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

std::vector<uint8_t> save_model(const Model& model, const std::map<std::string, std::string>& extra,
                                DType dtype = DType::kF32);

// Parses, infers or reads the architecture, checks that the tensors are exactly the model's (names,
// shapes; missing or extra ones are named), and loads the weights. On error *out is untouched.
Status load_model(const uint8_t* bytes, size_t size, std::unique_ptr<Model>* out,
                  std::map<std::string, std::string>* metadata = nullptr);

}  // namespace ll
