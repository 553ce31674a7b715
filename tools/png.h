// Writing image grids as PNG (stb_image_write): tiles of grey images in [0, 1], row by row.
#pragma once
#include <string>

#include "core/base/status.h"

namespace ll {

// images: count tiles of h*w floats in [0,1] (clamped). cols tiles per row; `scale` integer upscaling;
// a 2-pixel grey gutter between tiles. Errors name the path.
Status write_png_grid(const std::string& path, const float* images, int count, int h, int w, int cols,
                      int scale);

}  // namespace ll
