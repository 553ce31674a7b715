// Binary data derived from MNIST-like image sets, defined once for every caller (native and wasm):
//
// Binarised MNIST (the data of the PixelCNN over pixels): each pixel ~ Bernoulli(intensity / 255).
//   - Training: a fresh binarisation of every batch ("dynamic binarisation"), drawn from the trainer's
//     generator.
//   - Every reported figure: the fixed binarisation of the test set, image i binarised by its own
//     generator Rng(seed, i) (PCG32 stream i), so any subset or batch order gives the same bits.
//     kBinarizedTestSeed is the seed of every figure in the README and models/README.md.
//
// Moving MNIST (the data of the TD-VAE, as in the public TD-VAE reimplementations): one digit per
// sequence, `frames` frames of rows x cols; frame t is the digit shifted circularly by `direction` * t
// columns (direction +1: to the right, -1: to the left, drawn per sequence with probability 1/2
// each), each frame binarised on its own (pixel ~ Bernoulli(intensity / 255)). Test sequence i uses
// MNIST test digit i and its own generator Rng(seed, i), so it is the same whatever else is drawn.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/base/rng.h"
#include "core/io/idx.h"

namespace ll {

constexpr uint64_t kBinarizedTestSeed = 20161205;  // the fixed binarisation of every reported figure
constexpr uint64_t kMovingMnistTestSeed = 20190506;
constexpr int kMovingMnistFrames = 20;

// out[n] = 1 with probability p[n] (p in [0, 1]; values outside are clamped by the comparison), else 0:
// one uniform draw per pixel, in order.
void binarize(const float* p, size_t n, Rng& rng, float* out);

// Images [first, first + count) of `data` in their fixed binarisation: out[count, rows * cols] in {0, 1}.
void binarized_images(const Dataset& data, int first, int count, uint64_t seed, float* out);

// One moving-MNIST sequence from `digit` [rows * cols] bytes: out[frames, rows * cols] in {0, 1}.
void moving_mnist_sequence(const uint8_t* digit, int rows, int cols, int frames, int direction, Rng& rng,
                           float* out);

// The same from a digit given as probabilities in [0, 1] (a Dataset::to_float image, v / 255.0f: the
// same bits as the byte version for the same generator).
void moving_sequence(const float* digit, int rows, int cols, int frames, int direction, Rng& rng, float* out);

// Sequence i of the fixed test set (digit i of `data`, its direction and bits from Rng(seed, i)):
// out[frames, rows * cols]; *direction (may be null) receives +1 or -1.
void moving_mnist_fixed_sequence(const Dataset& data, int i, int frames, uint64_t seed, float* out,
                                 int* direction);

// A training sequence of digit i: direction and bits drawn from rng (fresh every time it is asked).
void moving_mnist_random_sequence(const Dataset& data, int i, int frames, Rng& rng, float* out, int* direction);

}  // namespace ll
