// Data sets of code grids; see code_data.h.
#include "core/train/code_data.h"

#include <algorithm>
#include <string>
#include <vector>

namespace ll {

Status encode_code_grids(Model& code_model, const Dataset& images, Dataset* out, int level, int limit, int batch) {
  CodeGrids* grids = code_model.code_grids();
  if (!grids)
    return Status::error("a '" + code_model.config().kind + "' model has no grids of discrete codes to encode to");
  if (level < 0 || level >= grids->levels())
    return Status::error("the model has " + std::to_string(grids->levels()) + " level(s) of codes, not a level " +
                         std::to_string(level));
  const CodeLevel L = grids->level(level);
  if (L.K > 256)
    return Status::error("a code grid data set holds one byte per cell, so at most 256 codes; the model has " +
                         std::to_string(L.K));
  const int P = code_model.config().input;
  if (images.images.pixels_per_image() != P)
    return Status::error("the images have " + std::to_string(images.images.pixels_per_image()) +
                         " pixels but the model takes " + std::to_string(P));
  if (batch < 1) return Status::error("encode_code_grids: batch must be at least 1");
  const int n = limit > 0 && limit < images.size() ? limit : images.size();
  const size_t G = static_cast<size_t>(L.cells());
  Dataset d;
  d.categorical = true;
  d.images.count = n, d.images.rows = L.H, d.images.cols = L.W;
  d.images.pixels.resize(static_cast<size_t>(n) * G);
  d.labels.count = images.labels.count > 0 ? n : 0;
  d.labels.labels.assign(images.labels.labels.begin(),
                         images.labels.labels.begin() + std::min<size_t>(images.labels.labels.size(), n));
  std::vector<float> x(static_cast<size_t>(std::min(batch, std::max(n, 1))) * P);
  code_model.reserve(static_cast<int>(x.size() / P));
  for (int first = 0; first < n; first += batch) {
    const int B = std::min(batch, n - first);
    images.to_float(nullptr, first, B, x.data());
    grids->encode_codes(x.data(), B);
    const int32_t* idx = grids->indices(level);
    for (size_t i = 0; i < static_cast<size_t>(B) * G; i++)
      d.images.pixels[static_cast<size_t>(first) * G + i] = static_cast<uint8_t>(idx[i]);
  }
  *out = std::move(d);
  return Status();
}

}  // namespace ll
