// ParamArena: all of a model's parameters in one allocation with named slices (llm.c style).
// Gradients and the two Adam moments mirror the layout exactly, so zeroing gradients is one fill,
// the optimiser is one loop, and a checkpoint is one copy. Slices are registered first (add), then
// finalize() allocates; after that no allocation happens and pointers stay valid.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ll {

struct TensorSlot {
  std::string name;          // PyTorch state_dict name, e.g. "fc1.weight"
  std::vector<int64_t> shape;  // PyTorch layout, e.g. [out, in]
  size_t offset = 0;         // in floats, into every arena
  size_t size = 0;           // product of shape
};

class ParamArena {
 public:
  // Register a tensor; returns its id. Must be called before finalize(); names must be unique.
  int add(const std::string& name, std::vector<int64_t> shape);
  void finalize();
  bool finalized() const { return finalized_; }
  // False when finalize() ran under a ShapesOnly scope: the layout is known, nothing was allocated.
  bool allocated() const { return finalized_ && params.size() == total_; }

  float* param(int id) { return params.data() + slots_[id].offset; }
  const float* param(int id) const { return params.data() + slots_[id].offset; }
  float* grad(int id) { return grads.data() + slots_[id].offset; }
  const float* grad(int id) const { return grads.data() + slots_[id].offset; }

  const std::vector<TensorSlot>& slots() const { return slots_; }
  int find(const std::string& name) const;  // -1 if absent
  size_t size() const { return total_; }  // floats in each arena, alignment padding included
  size_t count() const;                    // parameters: the sum of the tensors' sizes
  void zero_grad();

  std::vector<float> params, grads, adam_m, adam_v;  // identical layout, size() floats each

 private:
  std::vector<TensorSlot> slots_;
  size_t total_ = 0;
  bool finalized_ = false;
};

// A model's activations (and its gradients of activations, workspaces, per-example terms): every buffer
// a slice of one block, laid out and allocated once by the model's reserve(max_batch), so that forward
// and backward never allocate and pointers into it stay valid until the next reserve(). Layout:
// begin(), then add() for every buffer, then allocate(): each slice then points into one zero-filled
// block (each piece 64-byte aligned). A later begin/add/allocate (a larger batch) moves every slice.
// Integer buffers (code indices) live in a second block of the same life cycle.
template <typename T>
struct Slice {
  T* ptr = nullptr;
  size_t n = 0;
  T* data() { return ptr; }
  const T* data() const { return ptr; }
  T* begin() { return ptr; }
  T* end() { return ptr + n; }
  const T* begin() const { return ptr; }
  const T* end() const { return ptr + n; }
  T& operator[](size_t i) { return ptr[i]; }
  const T& operator[](size_t i) const { return ptr[i]; }
  size_t size() const { return n; }
};

class ActivationArena {
 public:
  void begin();
  void add(Slice<float>* slice, size_t n);
  void add(Slice<int32_t>* slice, size_t n);
  void allocate();
  size_t floats() const { return floats_.size(); }  // the float block's size, padding included

 private:
  std::vector<std::pair<Slice<float>*, size_t>> float_slices_;
  std::vector<std::pair<Slice<int32_t>*, size_t>> int_slices_;
  std::vector<float> floats_;
  std::vector<int32_t> ints_;
};

// While one of these lives, finalize() on this thread records the layout but allocates nothing, so a
// model can be constructed only to learn its tensors' names and shapes (e.g. to check a file or a
// memory budget before committing memory: model_file.cpp). Such a model must not be used otherwise.
class ShapesOnly {
 public:
  ShapesOnly();
  ~ShapesOnly();
  ShapesOnly(const ShapesOnly&) = delete;
  ShapesOnly& operator=(const ShapesOnly&) = delete;
  static bool active();

 private:
  bool previous_;
};

}  // namespace ll
