// The judge of generated digits, through the classifier capability; see classifier.h.
#include "core/eval/classifier.h"

#include <algorithm>
#include <cassert>

namespace ll {

double classifier_accuracy(Model& judge, const Dataset& data) {
  ClassProbabilities* c = judge.classifier();
  const int batch = 500, P = data.images.pixels_per_image();
  assert(c && P == judge.config().input);
  if (!c || P != judge.config().input) return 0.0;
  const int K = c->classes();
  std::vector<float> x(static_cast<size_t>(batch) * P);
  judge.reserve(batch);
  int64_t correct = 0;
  for (int first = 0; first < data.size(); first += batch) {
    const int B = std::min(batch, data.size() - first);
    data.to_float(nullptr, first, B, x.data());
    const float* probs = c->classify(x.data(), B);
    for (int b = 0; b < B; b++) {
      const float* p = probs + static_cast<size_t>(b) * K;
      correct += (std::max_element(p, p + K) - p) == data.labels.labels[first + b];
    }
  }
  return data.size() ? static_cast<double>(correct) / data.size() : 0.0;
}

double judge_confident(Model& judge, std::vector<float> images, float threshold, const std::vector<int32_t>& labels,
                       double* matched) {
  ClassProbabilities* c = judge.classifier();
  const int P = judge.config().input, batch = 250;
  assert(c);
  if (!c) return 0.0;
  const int n = static_cast<int>(images.size() / P), K = c->classes();
  for (float& v : images) v = std::clamp(v, 0.0f, 1.0f);
  judge.reserve(batch);
  int count = 0, same = 0;
  for (int first = 0; first < n; first += batch) {
    const int B = std::min(batch, n - first);
    const float* probs = c->classify(images.data() + static_cast<size_t>(first) * P, B);
    for (int b = 0; b < B; b++) {
      const float* p = probs + static_cast<size_t>(b) * K;
      const float* top = std::max_element(p, p + K);
      count += *top >= threshold;
      same += *top >= threshold && !labels.empty() && top - p == labels[first + b];
    }
  }
  if (matched) *matched = n ? static_cast<double>(same) / n : 0.0;
  return n ? static_cast<double>(count) / n : 0.0;
}

}  // namespace ll
