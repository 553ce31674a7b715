// `latentlab reconstruct` and `latentlab sample`: PNG grids of test digits beside their
// reconstructions, and of samples decoded from the prior N(0, I).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/io/file_io.h"
#include "core/kernels/kernels.h"
#include "core/train/trainer.h"
#include "core/backends/xnnpack_infer.h"
#include "tools/cli.h"
#include "tools/png.h"

namespace ll::cli {

namespace {

struct ImageOptions {
  std::string model_file, data = "mnist", out;
  int count = 32, first = 0, cols = 16, scale = 2;
  uint64_t seed = 1;
  float temperature = 1.0f;
  std::string prior;
  bool uniform_codes = false;
  std::string inference = "auto";  // reconstruct: auto | core | xnnpack
};

// Grids are laid out in pairs of rows: `cols` originals, then their reconstructions under them.
int run_reconstruct(const ImageOptions& o) {
  Status s = check_writable(o.out).with_context("--out: ");
  if (!s.ok()) return fail(s);
  std::unique_ptr<Model> model;
  s = load_model_file(o.model_file, &model);
  if (!s.ok()) return fail(s);
  Dataset test;
  s = load_data(o.data, "test", &test);
  if (!s.ok()) return fail(s);
  const int P = model->config().input;
  if (test.images.pixels_per_image() != P)
    return fail("the model expects " + std::to_string(P) + " pixels per image but " + o.data + " has " +
                std::to_string(test.images.pixels_per_image()));
  if (o.first + o.count > test.size())
    return fail("--first " + std::to_string(o.first) + " + --count " + std::to_string(o.count) +
                " is beyond the " + std::to_string(test.size()) + " test images");
  std::vector<float> x(static_cast<size_t>(o.count) * P), grid;
  test.to_float(nullptr, o.first, o.count, x.data());
  InferenceBackend backend = InferenceBackend::kCore;
  if (o.inference == "auto") backend = choose_inference_backend(*model, x.data(), o.count, num_threads());
  if (o.inference == "xnnpack") {
    if (!xnnpack_built())
      return fail("--inference xnnpack: this build has no XNNPACK backend (apt-get install libxnnpack-dev "
                  "libpthreadpool-dev, then rebuild)");
    backend = InferenceBackend::kXnnpack;
  }
  const float* rec = nullptr;
#if defined(LATENTLAB_HAVE_XNNPACK)
  XnnpackInference xnn;
  if (backend == InferenceBackend::kXnnpack) {
    if (!(s = xnn.setup(*model, o.count)).ok() || !(s = xnn.run(x.data(), o.count)).ok()) return fail(s);
    rec = xnn.reconstruction();
  }
#endif
  if (backend == InferenceBackend::kCore) {
    model->reserve(o.count);
    Rng rng(o.seed);
    model->forward(x.data(), x.data(), o.count, rng, ZMode::kMean);
    rec = model->reconstruction();
  }
  if (!rec)
    return fail(o.model_file + " holds a '" + model->config().kind + "' model, which reconstructs nothing");
  int tiles = 0;
  for (int row = 0; row * o.cols < o.count; row++) {
    const int n = std::min(o.cols, o.count - row * o.cols);
    for (int pass = 0; pass < 2; pass++) {
      const float* src = (pass == 0 ? x.data() : rec) + static_cast<size_t>(row) * o.cols * P;
      grid.insert(grid.end(), src, src + static_cast<size_t>(n) * P);
      grid.resize(grid.size() + static_cast<size_t>(o.cols - n) * P, 0.0f);
      tiles += o.cols;
    }
  }
  s = write_png_grid(o.out, grid.data(), tiles, test.images.rows, test.images.cols, o.cols, o.scale);
  if (!s.ok()) return fail(s);
  std::printf("wrote %s: %d test digits (rows of originals) above their reconstructions (%s)\n", o.out.c_str(),
              o.count, inference_backend_name(backend));
  return 0;
}

int run_sample(const ImageOptions& o) {
  Status s = check_writable(o.out).with_context("--out: ");
  if (!s.ok()) return fail(s);
  std::unique_ptr<Model> model;
  s = load_model_file(o.model_file, &model);
  if (!s.ok()) return fail(s);
  if (model->code_grids()) {  // discrete codes: sampled by a prior over them
    if (o.prior.empty() && !o.uniform_codes)
      return fail("a VQ-VAE samples through a learned prior over its codes: give --prior PRIOR.safetensors "
                  "(latentlab train-prior), or --uniform-codes for uniformly random codes");
    return run_sample_prior(o.model_file, o.prior, o.uniform_codes, o.count, o.cols, o.scale, o.temperature, o.seed,
                            o.out);
  }
  if (model->categorical_input(nullptr))  // a prior over code grids: its samples are codes, decoded by a VQ-VAE
    return fail(o.model_file + " is a PixelCNN prior; pass it with --prior (latentlab sample "
                "--model-file VQVAE --prior " + o.model_file + "), or evaluate it with eval --vqvae VQVAE");
  if (!o.prior.empty() || o.uniform_codes) return fail("--prior and --uniform-codes apply to VQ-VAE model files");
  if (!model->has_gaussian_prior())
    return fail("a " + model->config().kind +
                " model has no prior N(0, I) to sample from; sample from a VAE model file");
  const int Z = model->code_size(), P = model->config().input;
  const int side = static_cast<int>(std::lround(std::sqrt(static_cast<double>(P))));
  if (side * side != P) return fail("cannot lay out " + std::to_string(P) + "-pixel images as squares");
  // z ~ N(0, T^2 I): temperature T scales the prior's standard deviation.
  Rng rng(o.seed);
  std::vector<float> z(static_cast<size_t>(o.count) * Z), out(static_cast<size_t>(o.count) * P);
  rng.fill_normal(z.data(), z.size(), 0.0f, o.temperature);
  model->reserve(o.count);
  model->decode(z.data(), o.count, out.data());
  s = write_png_grid(o.out, out.data(), o.count, side, side, o.cols, o.scale);
  if (!s.ok()) return fail(s);
  std::printf("wrote %s: %d samples decoded from z ~ N(0, %g^2 I), seed %llu\n", o.out.c_str(), o.count,
              o.temperature, static_cast<unsigned long long>(o.seed));
  return 0;
}

void add_common(CLI::App* cmd, ImageOptions* o, const char* default_out) {
  o->out = default_out;
  cmd->add_option("--model-file", o->model_file, "Model file (.safetensors)")->required();
  cmd->add_option("--out", o->out, "PNG file to write")->capture_default_str();
  cmd->add_option("--count", o->count, "How many images")->check(CLI::Range(1, 4096))->capture_default_str();
  cmd->add_option("--cols", o->cols, "Images per row")->check(CLI::Range(1, 256))->capture_default_str();
  cmd->add_option("--scale", o->scale, "Pixel upscaling")->check(CLI::Range(1, 16))->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed")->capture_default_str();
}

}  // namespace

Action add_reconstruct(CLI::App& app) {
  auto o = std::make_shared<ImageOptions>();
  CLI::App* cmd = app.add_subcommand("reconstruct", "Write test digits beside their reconstructions (PNG)");
  add_common(cmd, o.get(), "reconstructions.png");
  cmd->add_option("--data", o->data, "Data set")->check(kDataNames)->capture_default_str();
  cmd->add_option("--first", o->first, "Index of the first test image")->check(CLI::Range(0, 100000000));
  cmd->add_option("--inference", o->inference,
                  "Forward pass: core, xnnpack (vae, beta_vae, ae, dae, vqvae; native builds with XNNPACK), or "
                  "auto: whichever is faster here, timed on these images first (7 alternating rounds)")
      ->check(CLI::IsMember({"auto", "core", "xnnpack"}))
      ->capture_default_str();
  return [o] { return run_reconstruct(*o); };
}

Action add_sample(CLI::App& app) {
  auto o = std::make_shared<ImageOptions>();
  o->count = 64;
  o->cols = 8;
  CLI::App* cmd = app.add_subcommand("sample", "Write samples decoded from a prior: N(0, I) for VAEs, a PixelCNN over codes for the VQ-VAE (PNG)");
  add_common(cmd, o.get(), "samples.png");
  cmd->add_option("--temperature", o->temperature,
                  "VAE: scale of the prior's standard deviation; VQ-VAE prior: softmax temperature")
      ->check(CLI::Range(0.01, 10.0))->capture_default_str();
  cmd->add_option("--prior", o->prior, "VQ-VAE: the PixelCNN prior over its codes (.safetensors)");
  cmd->add_flag("--uniform-codes", o->uniform_codes, "VQ-VAE: decode uniformly random codes instead (contrast)");
  return [o] { return run_sample(*o); };
}

}  // namespace ll::cli
