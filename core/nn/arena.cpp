// ParamArena implementation; see arena.h.
#include "core/nn/arena.h"

#include <algorithm>
#include <cassert>
#include <cstdint>

namespace ll {

int ParamArena::add(const std::string& name, std::vector<int64_t> shape) {
  assert(!finalized_ && "ParamArena::add after finalize");
  assert(find(name) < 0 && "duplicate tensor name");
  TensorSlot slot;
  slot.name = name;
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  slot.shape = std::move(shape);
  slot.size = n;
  // Keep every slice 16-float aligned (64 bytes) so SIMD kernels can rely on aligned starts.
  total_ = (total_ + 15) / 16 * 16;
  slot.offset = total_;
  total_ += n;
  slots_.push_back(std::move(slot));
  return static_cast<int>(slots_.size()) - 1;
}

namespace {
thread_local bool shapes_only = false;
}  // namespace

ShapesOnly::ShapesOnly() : previous_(shapes_only) { shapes_only = true; }
ShapesOnly::~ShapesOnly() { shapes_only = previous_; }
bool ShapesOnly::active() { return shapes_only; }

void ParamArena::finalize() {
  assert(!finalized_);
  if (shapes_only) {
    finalized_ = true;
    return;
  }
  params.assign(total_, 0.0f);
  grads.assign(total_, 0.0f);
  adam_m.assign(total_, 0.0f);
  adam_v.assign(total_, 0.0f);
  finalized_ = true;
}

int ParamArena::find(const std::string& name) const {
  for (size_t i = 0; i < slots_.size(); i++)
    if (slots_[i].name == name) return static_cast<int>(i);
  return -1;
}

size_t ParamArena::count() const {
  size_t n = 0;
  for (const TensorSlot& s : slots_) n += s.size;
  return n;
}

void ParamArena::zero_grad() { std::fill(grads.begin(), grads.end(), 0.0f); }

namespace {
// Slices start on 64-byte boundaries (16 floats / 16 ints) of the block.
constexpr size_t kSliceAlign = 16;
size_t round_up(size_t n) { return (n + kSliceAlign - 1) / kSliceAlign * kSliceAlign; }

template <typename T>
void place(std::vector<std::pair<Slice<T>*, size_t>>& slices, std::vector<T>& block) {
  size_t total = 0;
  for (const auto& s : slices) total += round_up(s.second);
  block.assign(total + kSliceAlign, T(0));
  // The block's own start, rounded up to 64 bytes.
  const size_t mis = (reinterpret_cast<uintptr_t>(block.data()) / sizeof(T)) % kSliceAlign;
  size_t offset = mis == 0 ? 0 : kSliceAlign - mis;
  for (auto& s : slices) {
    s.first->ptr = block.data() + offset;
    s.first->n = s.second;
    offset += round_up(s.second);
  }
}
}  // namespace

void ActivationArena::begin() {
  float_slices_.clear();
  int_slices_.clear();
}

void ActivationArena::add(Slice<float>* slice, size_t n) { float_slices_.push_back({slice, n}); }

void ActivationArena::add(Slice<int32_t>* slice, size_t n) { int_slices_.push_back({slice, n}); }

void ActivationArena::allocate() {
  place(float_slices_, floats_);
  place(int_slices_, ints_);
}

}  // namespace ll
