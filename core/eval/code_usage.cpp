// Code usage and code patches; see code_usage.h.
#include "core/eval/code_usage.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "core/models/vqvae.h"

namespace ll {
namespace {

// Whether v is an integer code in [0, K).
bool valid_code(float v, int K) { return std::isfinite(v) && v >= 0.0f && v < K && v == std::floor(v); }

std::string number_str(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
  return buf;
}

Status check_codes(const float* codes, size_t n, int K) {
  if (K < 1) return Status::error("codebook size K = " + std::to_string(K) + " must be at least 1");
  for (size_t i = 0; i < n; i++)
    if (!valid_code(codes[i], K))
      return Status::error("code " + number_str(codes[i]) + " at index " + std::to_string(i) +
                           " is not an integer in [0, " + std::to_string(K) + ")");
  return Status();
}

}  // namespace

Status count_codes(const float* codes, size_t n, int K, int64_t* counts) {
  Status s = check_codes(codes, n, K);
  if (!s.ok()) return s;
  for (size_t i = 0; i < n; i++) counts[static_cast<int>(codes[i])]++;
  return Status();
}

CodeUsage summarise_code_usage(const int64_t* counts, int K) {
  CodeUsage u;
  for (int k = 0; k < K; k++) {
    u.cells += counts[k];
    u.used += counts[k] > 0;
  }
  u.dead = K - u.used;
  u.perplexity = code_perplexity(counts, K);
  return u;
}

CodeUsageWindow::CodeUsageWindow(int K, int capacity)
    : K_(std::max(K, 0)), capacity_(std::max(capacity, 1)), sum_(static_cast<size_t>(std::max(K, 0)), 0) {}

void CodeUsageWindow::add(const int64_t* counts) {
  if (ring_.size() < static_cast<size_t>(capacity_)) {
    ring_.emplace_back(counts, counts + K_);
  } else {  // the oldest vector leaves the window
    std::vector<int64_t>& old = ring_[next_];
    for (int k = 0; k < K_; k++) sum_[k] -= old[k];
    old.assign(counts, counts + K_);
    next_ = (next_ + 1) % ring_.size();
  }
  for (int k = 0; k < K_; k++) sum_[k] += counts[k];
}

Status code_patches(const uint8_t* images, const float* codes, int N, int S, int g, int K, int patch,
                    float* patches, int64_t* counts) {
  if (N < 1 || S < 1 || g < 1 || S % g != 0)
    return Status::error("images of side " + std::to_string(S) + " do not split into a " + std::to_string(g) +
                         "x" + std::to_string(g) + " grid of whole cells");
  const int c = S / g;
  if (patch < c || patch > S || (patch - c) % 2 != 0)
    return Status::error("patch side " + std::to_string(patch) + " must be in [" + std::to_string(c) + ", " +
                         std::to_string(S) + "] and differ from the cell side " + std::to_string(c) +
                         " by an even number");
  const size_t G = static_cast<size_t>(g) * g, PP = static_cast<size_t>(patch) * patch;
  Status s = check_codes(codes, static_cast<size_t>(N) * G, K);
  if (!s.ok()) return s;
  const int off = (patch - c) / 2;
  std::vector<double> sums(static_cast<size_t>(K) * PP, 0.0);
  std::fill(counts, counts + K, int64_t(0));
  for (int n = 0; n < N; n++) {
    const uint8_t* img = images + static_cast<size_t>(n) * S * S;  // [S, S]
    for (size_t cell = 0; cell < G; cell++) {
      const int k = static_cast<int>(codes[n * G + cell]);
      counts[k]++;
      double* sum = sums.data() + k * PP;  // [patch, patch]
      const int y0 = static_cast<int>(cell / g) * c - off, x0 = static_cast<int>(cell % g) * c - off;
      for (int y = std::max(0, -y0); y < patch && y0 + y < S; y++)
        for (int x = std::max(0, -x0); x < patch && x0 + x < S; x++)
          sum[y * patch + x] += img[(y0 + y) * S + x0 + x] / 255.0;
    }
  }
  for (int k = 0; k < K; k++) {
    const double inv = 1.0 / static_cast<double>(std::max<int64_t>(1, counts[k]));
    for (size_t i = 0; i < PP; i++) patches[k * PP + i] = static_cast<float>(sums[k * PP + i] * inv);
  }
  return Status();
}

}  // namespace ll
