// Adam; see adam.h.
#include "core/nn/adam.h"

#include <cmath>

namespace ll {

void Adam::step(ParamArena& arena) {
  step_count++;
  const AdamConfig& c = config;
  const double bias1 = 1.0 - std::pow(c.beta1, static_cast<double>(step_count));
  const double bias2 = 1.0 - std::pow(c.beta2, static_cast<double>(step_count));
  const float step_size = static_cast<float>(c.lr / bias1);
  const float bias2_sqrt = static_cast<float>(std::sqrt(bias2));
  const float b1 = static_cast<float>(c.beta1), one_minus_b1 = static_cast<float>(1.0 - c.beta1);
  const float b2 = static_cast<float>(c.beta2), one_minus_b2 = static_cast<float>(1.0 - c.beta2);
  const float eps = static_cast<float>(c.eps), wd = static_cast<float>(c.weight_decay);
  float* p = arena.params.data();
  const float* g = arena.grads.data();
  float* m = arena.adam_m.data();
  float* v = arena.adam_v.data();
  const size_t n = arena.size();
  for (size_t i = 0; i < n; i++) {
    float grad = wd != 0.0f ? g[i] + wd * p[i] : g[i];
    m[i] = b1 * m[i] + one_minus_b1 * grad;
    v[i] = b2 * v[i] + one_minus_b2 * grad * grad;
    float denom = std::sqrt(v[i]) / bias2_sqrt + eps;
    p[i] -= step_size * m[i] / denom;
  }
}

}  // namespace ll
