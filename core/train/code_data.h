// Data sets of code grids: the images of a Dataset encoded by a model with discrete codes (CodeGrids,
// e.g. a VQ-VAE), one categorical "image" per example: its H x W cells, one byte each holding the cell's
// code index (so K <= 256), with the images' labels. This is what a PixelCNN prior over the codes
// trains and is evaluated on (Dataset::categorical; Model::categorical_input). Never prints.
#pragma once
#include "core/base/status.h"
#include "core/io/idx.h"
#include "core/models/model.h"

namespace ll {

// Encodes the first `limit` images of `images` (all if limit <= 0) with `code_model`'s level `level`, in
// batches of at most `batch`: out gets [n, H, W] bytes (categorical) and the same labels. Fails, changing
// nothing, when the model has no code grids or no such level, its codebook has more than 256 codes, or
// the images are not the model's size.
Status encode_code_grids(Model& code_model, const Dataset& images, Dataset* out, int level = 0, int limit = 0,
                         int batch = 500);

}  // namespace ll
