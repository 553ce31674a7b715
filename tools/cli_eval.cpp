// `latentlab eval`: the loss terms and figures of a saved model on a data set. With --json the last line
// is one JSON object with a "model" key naming the kind, each loss term (per image), "mse" (per image,
// of the reconstruction probabilities) and "mse_per_pixel" -- for models trained with an MSE loss (the
// VQ-VAE) "mse" is per pixel and "mse_per_image" per image -- the model's own metrics and "images". VAEs
// add "loss" (mean over images of all terms with one sample of z, the usual ELBO figure), and the same
// with z = posterior mean, deterministic: "loss_mean_z", "<term>_mean_z".
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "core/eval/iwae.h"
#include "core/kernels/kernels.h"
#include "core/train/trainer.h"
#include "tools/cli.h"

namespace ll::cli {

namespace {

struct EvalOptions {
  std::string model_file, data = "mnist", split = "test", corrupt = "none";
  uint64_t seed = 1;
  int limit = 0, threads = 1, samples = 1, prior_samples = 1000, iw = 0;
  std::string vqvae, judge = std::string(LATENTLAB_SOURCE_DIR) + "/models/classifier.safetensors";
  float temperature = 1.0f, judge_threshold = 0.9f;
  bool json = false;
};

int run_eval(const EvalOptions& o) {
  set_num_threads(o.threads);
  std::unique_ptr<Model> model;
  Status s = load_model_file(o.model_file, &model);
  if (!s.ok()) return fail(s);
  if (model->categorical_input(nullptr)) {  // a prior over code grids: evaluated on a VQ-VAE's codes
    PriorEvalOptions p;
    p.prior_file = o.model_file;
    p.vqvae = o.vqvae;
    p.data = o.data;
    p.judge = o.judge;
    p.samples = o.prior_samples;
    p.temperature = o.temperature;
    p.threshold = o.judge_threshold;
    p.seed = o.seed;
    p.json = o.json;
    p.limit = o.limit;
    return run_eval_prior(p, std::move(model));
  }
  NoiseSpec noise;
  s = NoiseSpec::parse(o.corrupt, &noise);
  if (!s.ok()) return fail("--corrupt: " + s.message());
  Dataset data;
  s = load_data(o.data, o.split, &data);
  if (!s.ok()) return fail(s);
  if (data.images.pixels_per_image() != model->config().input)
    return fail("the model expects " + std::to_string(model->config().input) + " pixels per image but " +
                o.data + " has " + std::to_string(data.images.pixels_per_image()));
  Rng rng(o.seed, /*stream=*/3);
  const std::vector<std::string> terms = model->loss_terms();
  const double pixels = model->config().input;
  const bool stochastic = model->has_gaussian_prior();
  std::string json = "{\"model\":\"" + model->config().kind + "\"";
  // JSON has no NaN or infinity: such a figure is written as null, named in the error that ends the run.
  std::string non_finite;
  auto add = [&json, &non_finite](const std::string& key, double v) {
    char buf[64];
    if (std::isfinite(v)) {
      std::snprintf(buf, sizeof buf, ",\"%s\":%.6f", key.c_str(), v);
    } else {
      std::snprintf(buf, sizeof buf, ",\"%s\":null", key.c_str());
      non_finite += (non_finite.empty() ? "" : ", ") + key;
    }
    json += buf;
  };
  std::printf("%s on %s %s, %s %s%s\n", o.model_file.c_str(), o.data.c_str(), o.split.c_str(),
              model->config().kind.c_str(), model->config().to_json().c_str(),
              noise.type == NoiseType::kNone ? "" : (", inputs corrupted with " + noise.to_string()).c_str());
  // Deterministic pass (z = posterior mean for VAEs): the figures of non-stochastic models, and the
  // VAE's *_mean_z figures.
  LossTotals mean = evaluate(*model, data, ZMode::kMean, rng, 500, o.limit, noise);
  if (stochastic) {
    // The one-sample ELBO is itself random (one z per image): with --samples K it is measured K times
    // with independent draws and the mean and standard deviation over the K passes reported.
    LossTotals sample;
    double sum = 0.0, sum_sq = 0.0;
    for (int k = 0; k < o.samples; k++) {
      LossTotals pass = evaluate(*model, data, ZMode::kSample, rng, 500, o.limit, noise);
      sum += pass.loss();
      sum_sq += pass.loss() * pass.loss();
      sample.add(pass);
    }
    for (double& t : sample.terms) t /= o.samples;
    sample.mse /= o.samples;
    sample.count /= o.samples;
    const double loss_std =
        o.samples > 1 ? std::sqrt(std::max(0.0, (sum_sq - sum * sum / o.samples) / (o.samples - 1))) : 0.0;
    std::printf("  %lld images\n  one-sample ELBO loss  %.4f nats", static_cast<long long>(mean.count),
                sample.loss());
    if (o.samples > 1) std::printf(" (mean of %d passes, std %.4f)", o.samples, loss_std);
    std::printf("\n");
    for (size_t t = 0; t < terms.size(); t++) std::printf("    %-19s %.4f\n", terms[t].c_str(), sample.mean(t));
    std::printf("  with z = mean        %.4f nats\n", mean.loss());
    for (size_t t = 0; t < terms.size(); t++) std::printf("    %-19s %.4f\n", terms[t].c_str(), mean.mean(t));
    add("loss", sample.loss());
    for (size_t t = 0; t < terms.size(); t++) add(terms[t], sample.mean(t));
    add("loss_mean_z", mean.loss());
    for (size_t t = 0; t < terms.size(); t++) add(terms[t] + "_mean_z", mean.mean(t));
    add("loss_std", loss_std);
    json += ",\"samples\":" + std::to_string(o.samples);
    if (o.iw > 0) {
      // Importance-weighted estimate of log p(x) (Burda et al. 2016) with K samples per image.
      IwEstimate iw;
      Rng iw_rng(o.seed, /*stream=*/4);
      Status st = iw_log_likelihood(*model, data, o.iw, iw_rng, o.limit, &iw);
      if (!st.ok()) return fail(st);
      std::printf("  IW log p(x), K=%-5d %.4f nats (standard error over images %.4f)\n", o.iw, iw.mean_log_px,
                  iw.std_error);
      add("iw_log_px", iw.mean_log_px);
      add("iw_std_error", iw.std_error);
      json += ",\"iw_k\":" + std::to_string(o.iw);
    }
  } else {
    if (o.iw > 0) return fail("--iw needs a VAE (a model with a Gaussian posterior and prior); " + model->config().kind + " has none");
    std::printf("  %lld images\n  loss                 %.4f\n", static_cast<long long>(mean.count), mean.loss());
    for (size_t t = 0; t < terms.size(); t++) std::printf("    %-19s %.4f\n", terms[t].c_str(), mean.mean(t));
    if (terms.size() > 1) add("loss", mean.loss());
    for (size_t t = 0; t < terms.size(); t++)
      if (terms[t] != "mse") add(terms[t], mean.mean(t));  // an "mse" term is the figure below
  }
  // A model without a reconstruction (a classifier) has no reconstruction error.
  const bool reconstructs = model->reconstruction() != nullptr;
  if (reconstructs)
    std::printf("  reconstruction mse   %.4f per image, %.6f per pixel%s\n", mean.mse_mean(),
                mean.mse_mean() / pixels, stochastic ? " (z = mean)" : "");
  print_metrics(mean.metrics);
  // Models whose reconstruction loss is MSE (the VQ-VAE) report "mse" per pixel, the figure their
  // literature uses; the others report it per image, beside BCE.
  const bool mse_model = std::find(terms.begin(), terms.end(), "mse") != terms.end();
  if (reconstructs && mse_model) {
    add("mse", mean.mse_mean() / pixels);
    add("mse_per_image", mean.mse_mean());
  } else if (reconstructs) {
    add("mse", mean.mse_mean());
    add("mse_per_pixel", mean.mse_mean() / pixels);
  }
  for (const auto& [name, value] : mean.metrics) add(name, value);
  json += ",\"images\":" + std::to_string(mean.count);
  if (noise.type != NoiseType::kNone) json += ",\"corrupt\":\"" + noise.to_string() + "\"";
  json += "}";
  if (o.json) std::printf("%s\n", json.c_str());
  std::fflush(stdout);
  if (!non_finite.empty())
    return fail("figures that are not finite (" + non_finite + "): the model's outputs overflow on this data");
  return 0;
}

}  // namespace

Action add_eval(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  CLI::App* cmd = app.add_subcommand("eval", "Evaluate a saved model's loss terms on a data set");
  cmd->add_option("--model-file", o->model_file, "Model file (.safetensors)")->required();
  cmd->add_option("--data", o->data, "Data set")->check(kDataNames)->capture_default_str();
  cmd->add_option("--split", o->split, "Which split")->check(CLI::IsMember({"test", "train"}))->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed for the sampled z of the one-sample ELBO")->capture_default_str();
  cmd->add_option("--limit", o->limit, "Only the first N images (0 = all)")->check(CLI::Range(0, 100000000));
  cmd->add_option("--samples", o->samples, "VAE: average the one-sample ELBO over this many independent passes")
      ->check(CLI::Range(1, 1000))->capture_default_str();
  cmd->add_option("--corrupt", o->corrupt, "Corrupt the inputs (targets stay clean): mask:P, gaussian:SIGMA or none")
      ->capture_default_str();
  cmd->add_option("--iw", o->iw, "VAEs: importance-weighted log p(x) with K samples per image (e.g. 100)")
      ->check(CLI::Range(1, 1000000));
  cmd->add_option("--vqvae", o->vqvae, "Prior files: the VQ-VAE whose codes the prior models");
  cmd->add_option("--judge", o->judge, "Prior files: the classifier that judges samples")->capture_default_str();
  cmd->add_option("--judge-threshold", o->judge_threshold, "Prior files: judge probability that counts as recognisable")
      ->check(CLI::Range(0.1, 1.0))->capture_default_str();
  cmd->add_option("--prior-samples", o->prior_samples, "Prior files: samples to judge")->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd->add_option("--temperature", o->temperature, "Prior files: sampling temperature")->check(CLI::Range(0.01, 10.0))
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "End with one line holding a JSON object of the figures");
  add_threads_option(cmd, &o->threads);
  return [o] { return run_eval(*o); };
}

}  // namespace ll::cli
