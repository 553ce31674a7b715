// Code usage of a vector-quantised model, from its code assignments: per-code counts, how many codes
// are used and dead, the perplexity exp(-sum_k p_k log p_k) of the code distribution (code_perplexity
// of core/models/vqvae.h), a sliding window of the last batches' counts (the page's live usage while a
// VQ-VAE trains), and what each code stands for: the mean input patch around the cells assigned it.
// Plain arrays in, plain arrays out: the bindings and the tests call these with the indices the model's
// forward gave (Model::code(): indices as floats [B, G], raster order). Nothing here prints or allocates
// beyond its outputs.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/base/status.h"

namespace ll {

struct CodeUsage {
  int64_t cells = 0;        // assignments counted
  int used = 0;             // codes with a count > 0
  int dead = 0;             // K - used
  double perplexity = 0.0;  // exp(entropy) of counts / cells; 0 when nothing was counted
};

// counts[k] += the number of codes[i] equal to k, i < n. Every code must be an integer in [0, K) (the
// indices as floats, as Model::code() gives them); otherwise an error naming the first bad one, and
// counts is unchanged.
Status count_codes(const float* codes, size_t n, int K, int64_t* counts);

// used, dead and perplexity of counts[K].
CodeUsage summarise_code_usage(const int64_t* counts, int K);

// The summed counts of the last `capacity` count vectors added (e.g. one per training call).
class CodeUsageWindow {
 public:
  CodeUsageWindow(int K, int capacity);
  void add(const int64_t* counts);  // counts [K]
  int K() const { return K_; }
  int batches() const { return static_cast<int>(ring_.size()); }
  const int64_t* counts() const { return sum_.data(); }  // [K]
  CodeUsage summary() const { return summarise_code_usage(sum_.data(), K_); }

 private:
  int K_ = 0, capacity_ = 1;
  size_t next_ = 0;                         // the ring slot the next add overwrites once full
  std::vector<std::vector<int64_t>> ring_;  // at most capacity_ vectors of K
  std::vector<int64_t> sum_;                // [K]
};

// What each code stands for: the mean, over the cells assigned code k, of the patch x patch input
// pixels centred on the cell's own block. images [N, S, S] bytes (pixel / 255 = intensity), codes
// [N, g, g] (indices as floats, raster order), cell side c = S / g, the patch's top-left corner
// (row * c - (patch - c) / 2, col * c - (patch - c) / 2); pixels outside the image count as 0.
//   patches [K, patch, patch]  = sum of the patches of code k / max(1, counts[k])
//   counts  [K]                = cells assigned code k
// Checks: S divisible by g, c <= patch <= S, patch - c even, codes in [0, K); an error changes nothing.
Status code_patches(const uint8_t* images, const float* codes, int N, int S, int g, int K, int patch,
                    float* patches, int64_t* counts);

}  // namespace ll
