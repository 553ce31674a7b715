// Input corruption; see noise.h.
#include "core/nn/noise.h"

#include <cstdio>
#include <cstdlib>

namespace ll {

Status NoiseSpec::parse(const std::string& text, NoiseSpec* out) {
  if (text == "none") {
    *out = NoiseSpec();
    return Status();
  }
  const size_t colon = text.find(':');
  const std::string type = text.substr(0, colon);
  if (colon == std::string::npos || (type != "mask" && type != "gaussian"))
    return Status::error("noise '" + text + "': expected mask:LEVEL, gaussian:LEVEL or none");
  const std::string num = text.substr(colon + 1);
  char* end = nullptr;
  const double level = std::strtod(num.c_str(), &end);
  const double hi = type == "mask" ? 1.0 : 10.0;
  if (num.empty() || *end != '\0' || !(level >= 0.0 && level <= hi))
    return Status::error("noise '" + text + "': the level must be a number in [0, " +
                         (type == "mask" ? std::string("1") : std::string("10")) + "]");
  out->type = type == "mask" ? NoiseType::kMask : NoiseType::kGaussian;
  out->level = static_cast<float>(level);
  return Status();
}

std::string NoiseSpec::to_string() const {
  if (type == NoiseType::kNone) return "none";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%s:%g", type == NoiseType::kMask ? "mask" : "gaussian", level);
  return buf;
}

void apply_noise(const NoiseSpec& spec, float* x, size_t n, Rng& rng) {
  if (spec.type == NoiseType::kMask) {
    for (size_t i = 0; i < n; i++)
      if (rng.uniform() < spec.level) x[i] = 0.0f;
  } else if (spec.type == NoiseType::kGaussian) {
    for (size_t i = 0; i < n; i++) x[i] += spec.level * rng.normal();
  }
}

}  // namespace ll
