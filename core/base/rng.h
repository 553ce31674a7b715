// Rng: the only source of randomness in LatentLab. PCG32 (O'Neill 2014) with explicit seeding, so the
// same seed gives the same run on every platform (no std:: distributions: their output is
// implementation-defined). Normals by Box-Muller in double precision.
#pragma once
#include <cstddef>
#include <cstdint>

namespace ll {

// A generator's whole state, for resume files (core/train/checkpoint.h): the PCG32 state and increment
// (odd), and the second normal of the last Box-Muller pair when one is pending.
struct RngState {
  uint64_t state = 0, inc = 1;
  bool has_spare = false;
  double spare = 0.0;
};

class Rng {
 public:
  explicit Rng(uint64_t seed = 0, uint64_t stream = 0x5851f42d4c957f2dULL);
  uint32_t next_u32();
  // Uniform on [0, 1), 24 random bits.
  float uniform();
  // Uniform integer on [0, n), unbiased (rejection). n > 0.
  uint32_t below(uint32_t n);
  // Standard normal.
  float normal();
  void fill_uniform(float* out, size_t n, float lo, float hi);
  void fill_normal(float* out, size_t n, float mean, float stddev);
  // Fisher-Yates shuffle of an index array.
  void shuffle(uint32_t* idx, size_t n);
  // The whole state, and setting it back: a restored generator continues exactly where it was.
  RngState state() const { return {state_, inc_, has_spare_, spare_}; }
  void set_state(const RngState& s) {
    state_ = s.state;
    inc_ = s.inc;
    has_spare_ = s.has_spare;
    spare_ = s.spare;
  }

 private:
  uint64_t state_ = 0;
  uint64_t inc_ = 0;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

}  // namespace ll
