// libFuzzer target: the model-file loaders (core/models/model_file.cpp load_model, core/models/pixelcnn.cpp
// load_prior): safetensors parse, config from metadata (or inferred from tensor names), the tensors
// checked against the model, the weights loaded. Every input goes to both loaders. A model that loads
// runs one forward pass on a batch of one (the loaded shapes must be the ones the model computes
// with), with the input and label its kind reads. Run with -rss_limit_mb/-malloc_limit_mb (scripts/fuzz.sh): a config that asks for more
// memory than the file justifies is reported as out-of-memory.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/models/model_file.h"
#include "core/models/pixelcnn.h"
#include "core/base/rng.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::unique_ptr<ll::Model> model;
  if (ll::load_model(data, size, &model).ok()) {
    model->reserve(1);
    // An image of grey pixels, or for a model over grids of categories (the PixelCNN prior) a grid of
    // code 0; label 0 for a kind that reads labels (the prior's class, the judge's target).
    const float value = model->categorical_input(nullptr) ? 0.0f : 0.5f;
    std::vector<float> x(static_cast<size_t>(model->config().input), value);
    const int32_t label = 0;
    model->set_batch_labels(&label);
    ll::Rng rng(1);
    model->forward(x.data(), x.data(), 1, rng, ll::ZMode::kMean);
  }
  std::unique_ptr<ll::PixelCnnPrior> prior;
  (void)ll::load_prior(data, size, &prior);
  return 0;
}
