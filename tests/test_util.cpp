// Shared test helpers; see test_util.h.
#include "tests/test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/io/file_io.h"

namespace ll::test {

namespace {

double g_worst_ratio = 0.0;

std::string current_test_name() {
  const ::testing::TestInfo* t = ::testing::UnitTest::GetInstance()->current_test_info();
  return t ? std::string(t->test_suite_name()) + "." + t->name() : std::string("(no test)");
}

}  // namespace

GradCheckResult grad_check(const std::function<double(bool*)>& loss, float* x, const float* analytic,
                           size_t n, const GradCheckOptions& o) {
  GradCheckResult r;
  r.floor = o.floor;
  r.max_skipped_fraction = o.max_skipped_fraction;
  std::vector<size_t> idx = o.indices;
  if (idx.empty()) {
    if (n <= o.max_checks) {
      for (size_t i = 0; i < n; i++) idx.push_back(i);
    } else {
      Rng rng(o.seed);
      for (size_t k = 0; k < o.max_checks; k++) idx.push_back(rng.below(static_cast<uint32_t>(n)));
    }
  }
  bool unused = false;
  const double f0 = loss(&unused);
  // Per candidate entry: D(h), D(h/2), the fourth difference nu, and whether a discrete choice moved.
  std::vector<double> d1(idx.size()), d2(idx.size()), nu(idx.size());
  std::vector<float> hs(idx.size(), o.h);
  std::vector<char> moved(idx.size(), 0), flat(idx.size(), 0);
  for (size_t k = 0; k < idx.size(); k++) {
    const size_t i = idx[k];
    const float saved = x[i];
    for (float h : {o.h, o.retry_h, 0.1f * o.retry_h}) {
      if (h <= 0.0f) break;
      double f[4];  // at saved - h, saved - h/2, saved + h/2, saved + h
      const float steps[4] = {-h, -0.5f * h, 0.5f * h, h};
      float xs[4];
      moved[k] = 0;
      for (int s = 0; s < 4; s++) {
        x[i] = xs[s] = saved + steps[s];
        bool changed = false;
        f[s] = loss(&changed);
        if (changed) moved[k] = 1;
      }
      x[i] = saved;
      // The actually representable steps, not h, in the denominators.
      d1[k] = (f[3] - f[0]) / (double(xs[3]) - double(xs[0]));
      d2[k] = (f[2] - f[1]) / (double(xs[2]) - double(xs[1]));
      nu[k] = f[0] - 4.0 * f[1] + 6.0 * f0 - 4.0 * f[2] + f[3];
      flat[k] = f[0] == f0 && f[1] == f0 && f[2] == f0 && f[3] == f0;
      hs[k] = h;
      if (!moved[k]) break;
    }
  }
  if (std::getenv("LATENTLAB_GRADCHECK_DEBUG"))
    for (size_t k = 0; k < idx.size() && k < 400; k++)
      std::printf("  entry %zu: a %.6g d1 %.8g d2 %.8g nu %.3g moved %d f0 %.10g\n", idx[k], analytic[idx[k]], d1[k],
                  d2[k], nu[k], moved[k], f0);
  // sigma_L from nu^2 over the entries the loss depends on (an entry it does not depend on, e.g. a
  // weight that only meets zero inputs, leaves L exactly unchanged and would pull the estimate to 0).
  auto quantile = [](std::vector<double> v, double q) {
    if (v.empty()) return 0.0;
    const size_t at = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
    std::nth_element(v.begin(), v.begin() + at, v.end());
    return v[at];
  };
  std::vector<char> kink(idx.size(), 0);
  auto nu_squares = [&] {
    std::vector<double> v;
    for (size_t k = 0; k < idx.size(); k++)
      if (!moved[k] && !flat[k] && !kink[k]) v.push_back(nu[k] * nu[k]);
    return v;
  };
  // The typical size of an entry, for the kink test.
  double mean_abs = 0.0;
  for (size_t k = 0; k < idx.size(); k++) mean_abs += std::fabs(d2[k]) / std::max<size_t>(idx.size(), 1);
  if (o.skip_kinks) {
    // A first sigma_L from the lower quartile of nu^2 (0.1015 of a chi-square with one degree of
    // freedom), robust to the large nu of kinks. A kink with a slope change s at distance d < h moves
    // D(h) or R by up to ~s/2 and the disagreement below by at least s/6; float32 noise alone gives the
    // disagreement ~8.5 sigma_L / h.
    const double sigma_q = std::sqrt(quantile(nu_squares(), 0.25) / (0.1015 * 70.0));
    for (size_t k = 0; k < idx.size(); k++) {
      const double disagreement = std::fabs(d1[k] - d2[k]) + std::fabs(nu[k]) / hs[k];
      kink[k] = disagreement > 0.005 * (std::fabs(d1[k]) + mean_abs) + 50.0 * sigma_q / hs[k];
    }
  }
  // sigma_L from the median of nu^2 (0.455 of a chi-square with one degree of freedom), kinks left out.
  const std::vector<double> nu2 = nu_squares();
  std::vector<double> dd2;
  for (size_t k = 0; k < idx.size(); k++)
    if (!moved[k] && !flat[k] && !kink[k]) dd2.push_back((d1[k] - d2[k]) * (d1[k] - d2[k]) * hs[k] * hs[k]);
  const double sigma_l = std::sqrt(quantile(nu2, 0.5) / (0.455 * 70.0));
  // The estimator. Where float32 noise dominates the difference between D(h) and D(h/2) (then
  // (D(h) - D(h/2)) h has variance 2.5 sigma_L^2 against nu's 70 sigma_L^2: a median ratio of 0.036),
  // the truncation error of D(h) is below its noise and D(h) itself (noise sigma_L / (sqrt(2) h)) is the
  // better estimate; otherwise Richardson's R (noise sqrt(65/18) sigma_L / h, no O(h^2) term).
  const bool richardson = quantile(dd2, 0.5) > 4.0 * 0.036 * quantile(nu2, 0.5);
  r.noise = (richardson ? std::sqrt(65.0 / 18.0) : std::sqrt(0.5)) * sigma_l / o.h;
  r.richardson = richardson;
  // An entry measured at a retry step carries (h / step) times the noise: when that exceeds 2% of the
  // tensor's RMS gradient, its difference quotient is no measurement and it counts as skipped.
  double rms_all = 0.0;
  size_t n_all = 0;
  for (size_t k = 0; k < idx.size(); k++)
    if (!moved[k] && !kink[k]) rms_all += d1[k] * d1[k], n_all++;
  rms_all = n_all > 0 ? std::sqrt(rms_all / n_all) : 0.0;
  double diff_sq = 0.0, a_sq = 0.0, n_sq = 0.0;
  bool first = true;
  for (size_t k = 0; k < idx.size(); k++) {
    const double numeric = r.richardson ? (4.0 * d2[k] - d1[k]) / 3.0 : d1[k];
    if (moved[k]) {
      r.skipped++;
      continue;
    }
    if (kink[k] || (hs[k] < o.h && r.noise * o.h / hs[k] > 0.02 * rms_all)) {
      r.skipped++;
      continue;
    }
    const size_t i = idx[k];
    const double a = analytic[i];
    r.index.push_back(i);
    r.a.push_back(a);
    r.n.push_back(numeric);
    // The entry's noise: the tensor's (scaled to its step), or more where its own fourth difference
    // shows more (entries that reach more of the network carry more rounding; one sample of nu, so
    // it only ever raises the figure, and the floor it feeds is capped anyway).
    const double factor = r.noise / std::max(sigma_l / o.h, 1e-300);
    r.entry_noise.push_back(std::max(r.noise * o.h / hs[k], factor * std::fabs(nu[k]) / std::sqrt(70.0) / hs[k]));
    diff_sq += (a - numeric) * (a - numeric);
    a_sq += a * a;
    n_sq += numeric * numeric;
    const double rel = std::fabs(a - numeric) / std::max(std::fabs(a) + std::fabs(numeric), o.floor);
    if (first || rel > r.max_rel_error) {
      first = false;
      r.max_rel_error = rel;
      r.worst_index = i;
      r.analytic = a;
      r.numeric = numeric;
    }
    r.checked++;
  }
  const double denom = std::sqrt(a_sq) + std::sqrt(n_sq);
  r.norm_rel_error = denom > 0 ? std::sqrt(diff_sq) / denom : 0.0;
  r.rms = r.checked > 0 ? std::sqrt(n_sq / r.checked) : 0.0;
  return r;
}

GradCheckResult grad_check(const std::function<double()>& loss, float* x, const float* analytic,
                           size_t n, float h, double floor, size_t max_checks, uint64_t seed) {
  GradCheckOptions o;
  o.h = h;
  o.floor = floor;
  o.max_checks = max_checks;
  o.seed = seed;
  return grad_check([&](bool*) { return loss(); }, x, analytic, n, o);
}

double expect_gradients_match(const std::string& what, const GradCheckResult& r, double norm_tol,
                              double entry_tol) {
  // Pure float32 noise of sigma per entry gives a norm-wise error of about sigma / (2 rms): the bound
  // takes five times that on top of norm_tol, but at most norm_tol more (so it never exceeds 2 norm_tol,
  // which a dropped factor or a wrong sign, at 0.1 to 1, still exceeds many times).
  double noise_sq = 0.0;  // the entries' own noise: larger for those retried at a smaller step
  for (double v : r.entry_noise) noise_sq += v * v / std::max<size_t>(r.checked, 1);
  const double noise_allowance = r.rms > 0 ? std::min(norm_tol, 5.0 * std::sqrt(noise_sq) / (2.0 * r.rms)) : 0.0;
  const double norm_ratio = r.norm_rel_error / (norm_tol + noise_allowance);
  double entry_ratio = 0.0, floor = r.floor;
  size_t worst = 0;
  if (entry_tol > 0.0 && r.checked > 0) {
    double mean_mag = 0.0;
    for (size_t k = 0; k < r.checked; k++) mean_mag += (std::fabs(r.a[k]) + std::fabs(r.n[k])) / r.checked;
    floor = std::max(r.floor, std::min(40.0 * r.noise / entry_tol, mean_mag));
    for (size_t k = 0; k < r.checked; k++) {
      const double floor_k = std::max(r.floor, std::min(40.0 * r.entry_noise[k] / entry_tol, mean_mag));
      const double bound = entry_tol * std::max(std::fabs(r.a[k]) + std::fabs(r.n[k]), floor_k);
      const double ratio = std::fabs(r.a[k] - r.n[k]) / bound;
      if (ratio > entry_ratio) {
        entry_ratio = ratio;
        worst = k;
      }
    }
  }
  const double ratio = std::max(norm_ratio, entry_ratio);
  g_worst_ratio = std::max(g_worst_ratio, ratio);
  char line[512];
  std::snprintf(line, sizeof line,
                "[gradcheck] %s %s: worst %.3g of bound (norm %.2e of %.2g, entry %.3g of bound at %zu: "
                "a %.5g n %.5g, floor %.2g, noise %.2g, rms %.2g, %s, checked %zu, skipped %zu)\n",
                current_test_name().c_str(), what.c_str(), ratio, r.norm_rel_error, norm_tol + noise_allowance, entry_ratio,
                r.checked > 0 ? r.index[worst] : size_t{0}, r.checked > 0 ? r.a[worst] : 0.0,
                r.checked > 0 ? r.n[worst] : 0.0, floor, r.noise, r.rms, r.richardson ? "richardson" : "central",
                r.checked, r.skipped);
  std::fputs(line, stdout);
  std::fflush(stdout);
  EXPECT_LE(ratio, 1.0) << line;
  EXPECT_GT(r.checked, 0u) << what << ": no entry checked";
  EXPECT_LE(double(r.skipped), r.max_skipped_fraction * double(r.checked + r.skipped))
      << what << ": " << r.skipped << " of " << r.checked + r.skipped << " entries skipped (kinks or ties)";
  return ratio;
}

double worst_gradcheck_ratio() { return g_worst_ratio; }

double expect_within(const std::string& what, double err, double bound, const char* tag) {
  const double ratio = bound > 0 ? err / bound : (err > 0 ? INFINITY : 0.0);
  char line[512];
  std::snprintf(line, sizeof line, "[%s] %s %s: worst %.3g of bound (err %.3g, bound %.3g)\n", tag,
                current_test_name().c_str(), what.c_str(), ratio, err, bound);
  if (std::string(tag) == "gradcheck") g_worst_ratio = std::max(g_worst_ratio, ratio);
  std::fputs(line, stdout);
  std::fflush(stdout);
  EXPECT_LE(ratio, 1.0) << line;
  return ratio;
}

std::vector<float> random_vector(Rng& rng, size_t n, float lo, float hi) {
  std::vector<float> v(n);
  rng.fill_uniform(v.data(), n, lo, hi);
  return v;
}

double weighted_sum(const float* a, const float* r, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += static_cast<double>(a[i]) * r[i];
  return s;
}

double batch_loss(Model& m, const float* input, const float* target, int B, ZMode mode) {
  Rng rng(99);
  m.forward(input, target, B, rng, mode);
  double s = 0.0;
  for (size_t t = 0; t < m.loss_terms().size(); t++)
    for (int b = 0; b < B; b++) s += m.term(static_cast<int>(t))[b];
  return s;
}

Dataset synthetic_dataset(int n, int rows, int cols, uint64_t seed) {
  Rng rng(seed);
  ImageSet im;
  im.count = n;
  im.rows = rows;
  im.cols = cols;
  for (int i = 0; i < n * rows * cols; i++) im.pixels.push_back(static_cast<uint8_t>(rng.below(256)));
  LabelSet lab;
  lab.count = n;
  for (int i = 0; i < n; i++) lab.labels.push_back(static_cast<uint8_t>(i % 10));
  Dataset d;
  EXPECT_TRUE(make_dataset(im, lab, &d).ok());
  return d;
}

double max_abs_diff(const float* a, const float* b, size_t n) {
  double m = 0.0;
  for (size_t i = 0; i < n; i++) m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  return m;
}

bool GoldenFile::load(const std::string& name) {
  const std::string path = std::string(LATENTLAB_SOURCE_DIR) + "/tests/golden/" + name;
  Status s = read_file(path, &bytes);
  EXPECT_TRUE(s.ok()) << path << ": " << s.message();
  if (!s.ok()) return false;
  s = parse_safetensors(bytes.data(), bytes.size(), &file);
  EXPECT_TRUE(s.ok()) << path << ": " << s.message();
  return s.ok();
}

std::vector<float> GoldenFile::tensor(const std::string& name) const {
  const SafetensorsTensor* t = file.find(name);
  EXPECT_TRUE(t) << "golden tensor '" << name << "' missing";
  if (!t) return {};
  size_t n = 1;
  for (int64_t d : t->shape) n *= static_cast<size_t>(d);
  std::vector<float> out(n);
  Status s = file.read_f32(*t, out.data(), n);
  EXPECT_TRUE(s.ok()) << s.message();
  return out;
}

std::string GoldenFile::meta(const std::string& key) const {
  auto it = file.metadata.find(key);
  return it == file.metadata.end() ? std::string() : it->second;
}

double golden_norm_ratio(const float* v, const std::vector<float>& r, double tol) {
  double err = 0.0, ref = 0.0;
  for (size_t i = 0; i < r.size(); i++) {
    err += (static_cast<double>(v[i]) - r[i]) * (static_cast<double>(v[i]) - r[i]);
    ref += static_cast<double>(r[i]) * r[i];
  }
  if (err == 0.0) return 0.0;
  return std::sqrt(err) / (tol * std::sqrt(ref));
}

double gamma_n(double n) {
  const double u = std::ldexp(1.0, -24);
  return n * u / (1.0 - n * u);
}

}  // namespace ll::test
