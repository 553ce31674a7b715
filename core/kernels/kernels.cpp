// GEMM: scalar reference, Eigen variant, the dispatch point and its choice by measurement (kAuto); the
// wasm SIMD kernel is in kernels_wasmsimd.cpp, the own x86 ones in gemm_x86.cpp. See kernels.h.
#include "core/kernels/kernels.h"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <chrono>
#include <cstdint>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <sstream>

#include <Eigen/Core>
#if defined(LATENTLAB_HAVE_OPENBLAS)
#include <cblas.h>  // Debian's OpenBLAS: also declares openblas_set_num_threads
#endif

#if defined(LATENTLAB_HAVE_OPENMP)
#include <omp.h>
#endif
#if defined(LATENTLAB_HAVE_X86_KERNELS)
#include <cpuid.h>
#endif

namespace ll {

void gemm_f32__scalar(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
                      int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  for (int i = 0; i < M; i++) {
    for (int j = 0; j < N; j++) {
      double acc = 0.0;  // double accumulation: the oracle should be the most accurate of all
      for (int k = 0; k < K; k++) {
        float a = trans_a ? A[k * lda + i] : A[i * lda + k];
        float b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
        acc += static_cast<double>(a) * static_cast<double>(b);
      }
      float prev = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
      C[i * ldc + j] = static_cast<float>(alpha * acc) + prev;
    }
  }
}

namespace {
using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const RowMat, Eigen::Unaligned, Eigen::OuterStride<>>;
using MutMap = Eigen::Map<RowMat, Eigen::Unaligned, Eigen::OuterStride<>>;

template <typename LhsT, typename RhsT>
void eigen_product(const LhsT& a, const RhsT& b, float alpha, float beta, MutMap& c) {
  if (beta == 0.0f) {
    c.noalias() = alpha * (a * b);
  } else {
    if (beta != 1.0f) c *= beta;
    c.noalias() += alpha * (a * b);
  }
}
}  // namespace

void gemm_f32__eigen(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
                     int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  if (M == 0 || N == 0) return;
  MutMap c(C, M, N, Eigen::OuterStride<>(ldc));
  if (K == 0) {
    if (beta == 0.0f) c.setZero(); else c *= beta;
    return;
  }
  ConstMap a(A, trans_a ? K : M, trans_a ? M : K, Eigen::OuterStride<>(lda));
  ConstMap b(B, trans_b ? N : K, trans_b ? K : N, Eigen::OuterStride<>(ldb));
  if (!trans_a && !trans_b) eigen_product(a, b, alpha, beta, c);
  else if (!trans_a && trans_b) eigen_product(a, b.transpose(), alpha, beta, c);
  else if (trans_a && !trans_b) eigen_product(a.transpose(), b, alpha, beta, c);
  else eigen_product(a.transpose(), b.transpose(), alpha, beta, c);
}

bool all_finite(const float* x, size_t n) {
  uint32_t bad = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t bits;
    std::memcpy(&bits, x + i, sizeof bits);
    bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  return bad == 0;
}

void gemm_f32_scale_c(int M, int N, float beta, float* C, int ldc) {
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      float& c = C[static_cast<size_t>(i) * ldc + j];
      c = beta == 0.0f ? 0.0f : beta * c;
    }
}

#if defined(LATENTLAB_HAVE_OPENBLAS)
void gemm_f32__openblas(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
                        int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) return gemm_f32_scale_c(M, N, beta, C, ldc);  // BLAS would compute 0 * C
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha,
              A, lda, B, ldb, beta, C, ldc);
}
#endif

namespace {
#if defined(__wasm_simd128__)
GemmBackend g_backend = GemmBackend::kWasmSimd;
#else
GemmBackend g_backend = GemmBackend::kAuto;
#endif

void set_gemm_threads(int n);  // Eigen's and OpenBLAS's threads and gemm_threads(): below

constexpr GemmBackend kAllBackends[] = {GemmBackend::kScalar,   GemmBackend::kEigen, GemmBackend::kWasmSimd,
                                        GemmBackend::kOpenBlas, GemmBackend::kAvx2,  GemmBackend::kAvx512,
                                        GemmBackend::kAuto};

void run_backend(GemmBackend backend, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
                 int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  switch (backend) {
    case GemmBackend::kScalar:
      gemm_f32__scalar(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      return;
#if defined(__wasm_simd128__)
    case GemmBackend::kWasmSimd:
      gemm_f32__wasmsimd(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      return;
#endif
#if defined(LATENTLAB_HAVE_OPENBLAS)
    case GemmBackend::kOpenBlas:
      gemm_f32__openblas(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      return;
#endif
#if defined(LATENTLAB_HAVE_X86_KERNELS)
    case GemmBackend::kAvx2:
      gemm_f32__avx2(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      return;
    case GemmBackend::kAvx512:
      gemm_f32__avx512(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      return;
#endif
    default:
      gemm_f32__eigen(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      return;
  }
}
}  // namespace

bool gemm_backend_available(GemmBackend backend) {
  switch (backend) {
    case GemmBackend::kScalar:
    case GemmBackend::kEigen:
    case GemmBackend::kAuto: return true;
#if defined(__wasm_simd128__)
    case GemmBackend::kWasmSimd: return true;
#endif
#if defined(LATENTLAB_HAVE_OPENBLAS)
    case GemmBackend::kOpenBlas: return true;
#endif
#if defined(LATENTLAB_HAVE_X86_KERNELS)
    case GemmBackend::kAvx2: return cpu_has_avx2_fma();
    case GemmBackend::kAvx512: return cpu_has_avx512f();
#endif
    default: return false;
  }
}

const char* gemm_backend_name(GemmBackend backend) {
  switch (backend) {
    case GemmBackend::kScalar: return "scalar";
    case GemmBackend::kEigen: return "eigen";
    case GemmBackend::kWasmSimd: return "wasmsimd";
    case GemmBackend::kOpenBlas: return "openblas";
    case GemmBackend::kAvx2: return "avx2";
    case GemmBackend::kAvx512: return "avx512";
    case GemmBackend::kAuto: return "auto";
  }
  return "?";
}

bool gemm_backend_from_name(const std::string& name, GemmBackend* out) {
  for (GemmBackend b : kAllBackends)
    if (name == gemm_backend_name(b)) {
      *out = b;
      return true;
    }
  return false;
}

// ---- kAuto: one measured choice per shape class ----
namespace {

using Clock = std::chrono::steady_clock;

// Bits needed for x - 1: the exponent of the smallest power of two >= x (0 for x <= 1).
int ceil_log2(int x) {
  int e = 0;
  while (e < 31 && (1 << e) < x) e++;
  return e;
}

// A class key: 1 (so that 0 means empty) | ta | tb | log2 bounds of M, N, K (5 bits each) | threads.
uint32_t class_key(bool ta, bool tb, int M, int N, int K, int threads) {
  return 1u | (static_cast<uint32_t>(ta) << 1) | (static_cast<uint32_t>(tb) << 2) |
         (static_cast<uint32_t>(ceil_log2(M)) << 3) | (static_cast<uint32_t>(ceil_log2(N)) << 8) |
         (static_cast<uint32_t>(ceil_log2(K)) << 13) | (static_cast<uint32_t>(std::min(threads, 255)) << 18);
}

// Open-addressed table of key << 8 | backend, written under g_auto_mutex, read without a lock. Full
// (more classes than slots, which no model comes near), new classes run Eigen unmeasured.
constexpr int kSlots = 512;
std::atomic<uint64_t> g_slots[kSlots];
std::mutex g_auto_mutex;
std::vector<GemmChoice> g_choices;  // guarded by g_auto_mutex

// The stored value: key << 8 | one-thread flag (0x80) | backend.
bool find_choice(uint32_t key, GemmBackend* out, bool* one_thread) {
  for (int probe = 0; probe < kSlots; probe++) {
    const uint64_t v = g_slots[(key * 2654435761u + probe) % kSlots].load(std::memory_order_acquire);
    if (v == 0) return false;
    if (static_cast<uint32_t>(v >> 8) == key) {
      *out = static_cast<GemmBackend>(v & 0x7f);
      *one_thread = (v & 0x80) != 0;
      return true;
    }
  }
  return false;
}

void store_choice(uint32_t key, GemmBackend backend, bool one_thread) {
  for (int probe = 0; probe < kSlots; probe++) {
    std::atomic<uint64_t>& slot = g_slots[(key * 2654435761u + probe) % kSlots];
    if (slot.load(std::memory_order_relaxed) == 0) {
      slot.store((static_cast<uint64_t>(key) << 8) | (one_thread ? 0x80u : 0u) | static_cast<uint64_t>(backend),
                 std::memory_order_release);
      return;
    }
  }
}

void forget_choices() {
  std::lock_guard<std::mutex> lock(g_auto_mutex);
  for (auto& slot : g_slots) slot.store(0, std::memory_order_relaxed);
  g_choices.clear();
}

// Times each candidate on scratch operands of this shape, the candidates taking turns call by call (a
// change in the machine's load hits them alike): one warm-up call each, then timed calls. One thread:
// two timed calls (one call stalled by other work does not decide), and a third while the candidate has
// taken less than 1 ms and is within 1.5x of the fastest; the score is each one's fastest call. Several
// threads: three timed calls each and the score is their mean, because a multi-threaded call's cost
// includes waiting for its threads, which on a loaded machine is most of it, and the fastest call hides it.
GemmChoice measure_class(bool ta, bool tb, int M, int N, int K, int threads) {
  GemmChoice choice;
  choice.trans_a = ta, choice.trans_b = tb, choice.threads = threads;
  choice.m_max = 1 << ceil_log2(M), choice.n_max = 1 << ceil_log2(N), choice.k_max = 1 << ceil_log2(K);
  choice.M = M, choice.N = N, choice.K = K;
  const auto t_start = Clock::now();
  // Candidates: every available backend but the scalar one; with several GEMM threads also each of
  // them on one thread (OpenBLAS runs on one thread under kAuto anyway: set_gemm_threads).
  struct Candidate {
    GemmBackend backend;
    bool one_thread;
  };
  std::vector<Candidate> candidates;
  for (int one = 0; one < (threads > 1 ? 2 : 1); one++)
    for (GemmBackend b : kAllBackends)
      if (b != GemmBackend::kScalar && b != GemmBackend::kAuto && gemm_backend_available(b) &&
          !(one && b == GemmBackend::kOpenBlas))
        candidates.push_back({b, one == 1});
  auto run = [&](const Candidate& cand, const float* a, int lda, const float* b, int ldb, float beta, float* c) {
    if (cand.one_thread) set_gemm_threads(1);
    run_backend(cand.backend, ta, tb, M, N, K, 1.0f, a, lda, b, ldb, beta, c, N);
    if (cand.one_thread) set_gemm_threads(threads);
  };
  const int lda = ta ? M : K, ldb = tb ? K : N;
  std::vector<float> a(static_cast<size_t>(M) * K), b(static_cast<size_t>(K) * N), c(static_cast<size_t>(M) * N);
  for (size_t i = 0; i < a.size(); i++) a[i] = static_cast<float>(i % 7) * 0.125f - 0.375f;
  for (size_t i = 0; i < b.size(); i++) b[i] = static_cast<float>(i % 5) * 0.25f - 0.5f;
  // best: the score (the fastest call; with several threads the mean); quickest, slowest: the calls' range.
  std::vector<double> best(candidates.size(), 1e30), spent(candidates.size(), 0.0);
  std::vector<double> quickest(candidates.size(), 1e30), slowest(candidates.size(), 0.0);
  std::vector<int> calls(candidates.size(), 0);
  for (const Candidate& cand : candidates) run(cand, a.data(), lda, b.data(), ldb, 0.0f, c.data());
  double fastest = 1e30;
  for (int rep = 0; rep < 3; rep++)
    for (size_t i = 0; i < candidates.size(); i++) {
      if (threads == 1 && rep > 1 && (spent[i] > 1e-3 || best[i] > 1.5 * fastest)) continue;
      const auto t0 = Clock::now();
      run(candidates[i], a.data(), lda, b.data(), ldb, 1.0f, c.data());
      const double t = std::chrono::duration<double>(Clock::now() - t0).count();
      best[i] = std::min(best[i], t);
      quickest[i] = std::min(quickest[i], t);
      slowest[i] = std::max(slowest[i], t);
      fastest = std::min(fastest, t);
      spent[i] += t;
      calls[i]++;
    }
  if (threads > 1)
    for (size_t i = 0; i < candidates.size(); i++) best[i] = spent[i] / calls[i];
  size_t pick = 0;
  for (size_t i = 0; i < candidates.size(); i++) {
    (candidates[i].one_thread ? choice.gflops_one_thread : choice.gflops)
        .emplace_back(candidates[i].backend, 2.0 * M * N * K / std::max(best[i], 1e-9) / 1e9);
    if (best[i] < best[pick]) pick = i;
  }
  choice.backend = candidates[pick].backend;
  choice.one_thread = candidates[pick].one_thread;
  choice.steady = slowest[pick] <= (threads > 1 ? 1.5 : 1.25) * quickest[pick];
  choice.measure_ms = 1e3 * std::chrono::duration<double>(Clock::now() - t_start).count();
  return choice;
}

}  // namespace

namespace {
// The backend for this call, and whether it runs on one thread (a class measured faster so).
GemmBackend resolve_backend(bool trans_a, bool trans_b, int M, int N, int K, bool* one_thread) {
  *one_thread = false;
  if (g_backend != GemmBackend::kAuto) return g_backend;
  if (M <= 0 || N <= 0 || K <= 0) return GemmBackend::kEigen;  // nothing to multiply: any will do
  const int threads = gemm_threads();
  const uint32_t key = class_key(trans_a, trans_b, M, N, K, threads);
  GemmBackend chosen;
  if (find_choice(key, &chosen, one_thread)) return chosen;
  std::lock_guard<std::mutex> lock(g_auto_mutex);
  if (find_choice(key, &chosen, one_thread)) return chosen;  // another thread measured it meanwhile
  if (g_choices.size() >= kSlots / 2) return GemmBackend::kEigen;
  GemmChoice choice = measure_class(trans_a, trans_b, M, N, K, threads);
  g_choices.push_back(choice);
  store_choice(key, choice.backend, choice.one_thread);
  *one_thread = choice.one_thread;
  return choice.backend;
}
}  // namespace

GemmBackend gemm_backend_for(bool trans_a, bool trans_b, int M, int N, int K) {
  bool one_thread = false;
  return resolve_backend(trans_a, trans_b, M, N, K, &one_thread);
}

std::vector<GemmChoice> gemm_auto_choices() {
  std::lock_guard<std::mutex> lock(g_auto_mutex);
  return g_choices;
}

namespace {
constexpr const char* kChoicesHeader = "latentlab gemm choices 1";

// "eigen 105.95" pairs: a count, then the pairs.
void append_gflops(std::string* s, const std::vector<std::pair<GemmBackend, double>>& list) {
  *s += " " + std::to_string(list.size());
  char buf[32];
  for (const auto& [b, g] : list) {
    std::snprintf(buf, sizeof buf, "%.2f", g);
    *s += std::string(" ") + gemm_backend_name(b) + " " + buf;
  }
}

bool is_measured_backend(GemmBackend b) {
  return b != GemmBackend::kScalar && b != GemmBackend::kAuto && gemm_backend_available(b);
}

// Reads "n (name value){n}" from `in`; false on anything else.
bool read_gflops(std::istringstream& in, std::vector<std::pair<GemmBackend, double>>* out) {
  int n = -1;
  if (!(in >> n) || n < 0 || n > 16) return false;
  for (int i = 0; i < n; i++) {
    std::string name;
    double g = -1.0;
    GemmBackend b;
    if (!(in >> name >> g) || !gemm_backend_from_name(name, &b) || !std::isfinite(g) || g < 0.0) return false;
    out->emplace_back(b, g);
  }
  return true;
}
}  // namespace

std::string gemm_choices_signature() {
  std::string build;
#if defined(__VERSION__)
  build += std::string("compiler ") + __VERSION__;
#endif
#if defined(__AVX512F__)
  build += " avx512f";
#elif defined(__AVX2__)
  build += " avx2";
#endif
#if defined(__FMA__)
  build += " fma";
#endif
#if defined(NDEBUG)
  build += " release";
#else
  build += " debug";
#endif
#if defined(__SANITIZE_ADDRESS__)
  build += " asan";
#endif
#if defined(LATENTLAB_HAVE_OPENMP)
  build += " openmp";
#endif
  std::string sig = "cpu '" + cpu_model_name() + "' isa " + cpu_isa_name() + " openblas '" + openblas_core_name() +
                    "' build '" + build + "'";
  for (char& c : sig)
    if (c == '\n' || c == '\r') c = ' ';
  return sig;
}

std::string gemm_choices_to_text() {
  std::string s = std::string(kChoicesHeader) + "\nsignature " + gemm_choices_signature() + "\n";
  std::lock_guard<std::mutex> lock(g_auto_mutex);
  for (const GemmChoice& c : g_choices) {
    if (!c.steady) continue;
    s += std::to_string(c.trans_a) + " " + std::to_string(c.trans_b) + " " + std::to_string(c.M) + " " +
         std::to_string(c.N) + " " + std::to_string(c.K) + " " + std::to_string(c.threads) + " " +
         gemm_backend_name(c.backend) + " " + std::to_string(c.one_thread);
    append_gflops(&s, c.gflops);
    append_gflops(&s, c.gflops_one_thread);
    s += "\n";
  }
  return s;
}

Status gemm_choices_from_text(const std::string& text, int* added) {
  if (added) *added = 0;
  std::istringstream lines(text);
  std::string line;
  if (!std::getline(lines, line) || line != kChoicesHeader)
    return Status::error(std::string("not a GEMM choices file (its first line is not '") + kChoicesHeader + "')");
  const std::string signature = gemm_choices_signature();
  if (!std::getline(lines, line) || line != "signature " + signature)
    return Status::error("made on another CPU or build (line 2 is not 'signature " + signature + "')");
  std::vector<GemmChoice> parsed;
  std::vector<uint32_t> keys;
  for (int number = 3; std::getline(lines, line); number++) {
    if (line.empty()) continue;
    const std::string where = "line " + std::to_string(number) + ": ";
    std::istringstream in(line);
    GemmChoice c;
    int ta = -1, tb = -1, one = -1;
    std::string name;
    if (!(in >> ta >> tb >> c.M >> c.N >> c.K >> c.threads >> name >> one))
      return Status::error(where + "expected 'ta tb M N K threads backend one_thread ...'");
    if ((ta != 0 && ta != 1) || (tb != 0 && tb != 1) || (one != 0 && one != 1))
      return Status::error(where + "transposes and one_thread must be 0 or 1");
    if (c.M < 1 || c.N < 1 || c.K < 1 || c.M > (1 << 24) || c.N > (1 << 24) || c.K > (1 << 24))
      return Status::error(where + "M, N and K must be in 1..16777216");
    if (c.threads < 1 || c.threads > 255) return Status::error(where + "threads must be in 1..255");
    if (!gemm_backend_from_name(name, &c.backend) || !is_measured_backend(c.backend))
      return Status::error(where + "'" + name + "' is not a backend this build and CPU measure");
    if (one == 1 && c.threads == 1) return Status::error(where + "one_thread is set on a one-thread class");
    if (!read_gflops(in, &c.gflops) || !read_gflops(in, &c.gflops_one_thread))
      return Status::error(where + "the GFLOP/s lists must be 'count (backend value)...'");
    std::string rest;
    if (in >> rest) return Status::error(where + "unexpected '" + rest + "' at the end");
    c.trans_a = ta == 1, c.trans_b = tb == 1, c.one_thread = one == 1;
    c.m_max = 1 << ceil_log2(c.M), c.n_max = 1 << ceil_log2(c.N), c.k_max = 1 << ceil_log2(c.K);
    c.steady = true, c.cached = true, c.measure_ms = 0.0;
    const uint32_t key = class_key(c.trans_a, c.trans_b, c.M, c.N, c.K, c.threads);
    if (std::find(keys.begin(), keys.end(), key) != keys.end())
      return Status::error(where + "a second line for the same shape class");
    if (static_cast<int>(parsed.size()) >= kSlots / 2) return Status::error(where + "more classes than a process keeps");
    keys.push_back(key);
    parsed.push_back(c);
  }
  if (g_backend != GemmBackend::kAuto) return Status();
  std::lock_guard<std::mutex> lock(g_auto_mutex);
  int n = 0;
  for (size_t i = 0; i < parsed.size(); i++) {
    GemmBackend known;
    bool one_thread;
    if (find_choice(keys[i], &known, &one_thread) || g_choices.size() >= kSlots / 2) continue;
    g_choices.push_back(parsed[i]);
    store_choice(keys[i], parsed[i].backend, parsed[i].one_thread);
    n++;
  }
  if (added) *added = n;
  return Status();
}

std::string openblas_core_name() {
#if defined(LATENTLAB_HAVE_OPENBLAS)
  const char* name = openblas_get_corename();
  return name ? name : "";
#else
  return "";
#endif
}

std::string cpu_model_name() {
#if defined(LATENTLAB_HAVE_X86_KERNELS)
  unsigned regs[12] = {};
  if (__get_cpuid_max(0x80000000u, nullptr) < 0x80000004u) return "";
  for (unsigned i = 0; i < 3; i++)  // the brand string, 16 characters per leaf
    __get_cpuid(0x80000002u + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2], &regs[4 * i + 3]);
  char brand[49] = {};
  std::memcpy(brand, regs, 48);
  std::string s(brand);
  while (!s.empty() && s.back() == ' ') s.pop_back();
  size_t first = s.find_first_not_of(' ');
  return first == std::string::npos ? "" : s.substr(first);
#else
  return "";
#endif
}

const char* cpu_isa_name() {
#if defined(LATENTLAB_HAVE_X86_KERNELS)
  if (cpu_has_avx512f()) return "avx512f";
  if (cpu_has_avx2_fma()) return "avx2+fma";
  return "x86-64 baseline";
#elif defined(__wasm_simd128__)
  return "wasm simd128";
#else
  return "unknown";
#endif
}

void set_gemm_backend(GemmBackend backend) {
  assert(gemm_backend_available(backend));
  g_backend = backend;
  forget_choices();
  set_gemm_threads(gemm_threads());  // OpenBLAS's thread count depends on the backend
}
GemmBackend gemm_backend() { return g_backend; }

namespace {
GemmTraceFn g_trace = nullptr;
void* g_trace_ctx = nullptr;
std::mutex g_trace_mutex;
}  // namespace

void set_gemm_trace(GemmTraceFn fn, void* ctx) {
  g_trace = fn;
  g_trace_ctx = ctx;
}

void gemm_f32(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
              const float* B, int ldb, float beta, float* C, int ldc) {
  if (g_trace) {
    // The convolutions call gemm_f32 from several threads at once: one observer call at a time.
    std::lock_guard<std::mutex> lock(g_trace_mutex);
    g_trace(g_trace_ctx, trans_a, trans_b, M, N, K, beta);
  }
  bool one_thread = false;
  const GemmBackend backend = resolve_backend(trans_a, trans_b, M, N, K, &one_thread);
  if (!one_thread) return run_backend(backend, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  // Only outside parallel regions (classes of more than one thread): nothing else runs a GEMM meanwhile.
  const int threads = gemm_threads();
  set_gemm_threads(1);
  run_backend(backend, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  set_gemm_threads(threads);
}

namespace {
int g_threads = 1;
int g_gemm_threads = 1;

void set_gemm_threads(int n) {
#if defined(LATENTLAB_HAVE_OPENMP)
  Eigen::setNbThreads(n);
#endif
#if defined(LATENTLAB_HAVE_OPENBLAS)
  // OpenBLAS's own thread pool spins between calls; next to the OpenMP threads of the other backends
  // (which kAuto mixes class by class) it takes their cores. So OpenBLAS gets the threads only when it
  // is the one backend; under kAuto it runs single-threaded like a candidate of its own.
  openblas_set_num_threads(g_backend == GemmBackend::kOpenBlas ? n : 1);
#endif
  g_gemm_threads = n;
}
}  // namespace

int set_num_threads(int n) {
  n = n < 1 ? 1 : n;
#if defined(LATENTLAB_HAVE_OPENMP)
  omp_set_num_threads(n);
#else
  n = 1;
#endif
  set_gemm_threads(n);
  g_threads = n;
  return n;
}

int num_threads() { return g_threads; }
int gemm_threads() { return g_gemm_threads; }

SerialGemmScope::SerialGemmScope() : saved_(g_threads) {
  if (saved_ > 1) set_gemm_threads(1);
}

SerialGemmScope::~SerialGemmScope() {
  if (saved_ > 1) set_gemm_threads(saved_);
}

}  // namespace ll

namespace ll {
namespace {
// With OpenMP linked, Eigen would otherwise take every core by default; one thread unless asked.
const int kDefaultThreads = set_num_threads(1);
}  // namespace
}  // namespace ll
