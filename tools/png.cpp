// PNG grids; see png.h. The only file that includes stb_image_write.
#include "tools/png.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO_UNUSED
#include <stb/stb_image_write.h>

namespace ll {

Status write_png_grid(const std::string& path, const float* images, int count, int h, int w, int cols,
                      int scale) {
  if (count < 1 || cols < 1 || scale < 1) return Status::error("nothing to write to " + path);
  const int gutter = 2;
  const int rows = (count + cols - 1) / cols;
  const int tw = w * scale, th = h * scale;
  const int W = cols * tw + (cols + 1) * gutter, H = rows * th + (rows + 1) * gutter;
  std::vector<uint8_t> px(static_cast<size_t>(W) * H, 96);
  for (int i = 0; i < count; i++) {
    const int x0 = gutter + (i % cols) * (tw + gutter), y0 = gutter + (i / cols) * (th + gutter);
    const float* im = images + static_cast<size_t>(i) * h * w;
    for (int y = 0; y < th; y++)
      for (int x = 0; x < tw; x++) {
        float v = std::clamp(im[(y / scale) * w + x / scale], 0.0f, 1.0f);
        px[static_cast<size_t>(y0 + y) * W + x0 + x] = static_cast<uint8_t>(v * 255.0f + 0.5f);
      }
  }
  errno = 0;
  if (!stbi_write_png(path.c_str(), W, H, 1, px.data(), W))
    return Status::error("cannot write " + path + (errno ? std::string(": ") + std::strerror(errno) : ""));
  return Status();
}

}  // namespace ll
