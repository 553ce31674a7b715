// `latentlab eval`: the loss terms of a saved model on a data set. With --json the last line is one JSON
// object: {"model": "vae", "loss", "bce", "kl", "loss_mean_z", "bce_mean_z", "mse", "images"} for the
// VAE (loss = mean over images of BCE + KL with one sample of z; loss_mean_z uses z = posterior mean,
// deterministic), {"model": "ae", "bce", "mse", "images"} for the AE. BCE and MSE are per image (summed
// over pixels); MSE is of the reconstruction probabilities.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "core/kernels.h"
#include "core/trainer.h"
#include "tools/cli.h"

namespace ll::cli {

namespace {

struct EvalOptions {
  std::string model_file, data = "mnist", split = "test";
  uint64_t seed = 1;
  int limit = 0, threads = 1, samples = 1;
  bool json = false;
};

int run_eval(const EvalOptions& o) {
  set_num_threads(o.threads);
  std::unique_ptr<Model> model;
  Status s = load_model_file(o.model_file, &model);
  if (!s.ok()) return fail(s);
  Dataset data;
  s = load_data(o.data, o.split, &data);
  if (!s.ok()) return fail(s);
  if (data.images.pixels_per_image() != model->config().input)
    return fail("the model expects " + std::to_string(model->config().input) + " pixels per image but " +
                o.data + " has " + std::to_string(data.images.pixels_per_image()));
  Rng rng(o.seed, /*stream=*/3);
  const std::string kind = model->config().kind;
  char json[512];
  if (kind == "vae") {
    // The one-sample ELBO is itself random (one z per image): with --samples K it is measured K times
    // with independent draws and the mean and standard deviation over the K passes reported.
    LossTotals sample;
    double sum = 0.0, sum_sq = 0.0;
    for (int k = 0; k < o.samples; k++) {
      LossTotals pass = evaluate(*model, data, ZMode::kSample, rng, 500, o.limit);
      sum += pass.loss();
      sum_sq += pass.loss() * pass.loss();
      sample.add(pass);
    }
    sample.mse /= o.samples;
    const double loss_std =
        o.samples > 1 ? std::sqrt(std::max(0.0, (sum_sq - sum * sum / o.samples) / (o.samples - 1))) : 0.0;
    sample.count /= o.samples;
    for (double& t : sample.terms) t /= o.samples;
    LossTotals mean = evaluate(*model, data, ZMode::kMean, rng, 500, o.limit);
    {
      std::printf("%s on %s %s (%lld images), VAE %s\n", o.model_file.c_str(), o.data.c_str(),
                  o.split.c_str(), static_cast<long long>(sample.count), model->config().to_json().c_str());
      std::printf("  one-sample ELBO loss  %.4f nats  (bce %.4f + kl %.4f)", sample.loss(), sample.mean(0),
                  sample.mean(1));
      if (o.samples > 1) std::printf("  mean of %d passes, std %.4f", o.samples, loss_std);
      std::printf("\n");
      std::printf("  with z = mean         %.4f nats  (bce %.4f + kl %.4f)\n", mean.loss(), mean.mean(0),
                  mean.mean(1));
      std::printf("  reconstruction mse    %.4f per image (z = mean)\n", mean.mse_mean());
    }
    std::snprintf(json, sizeof json,
                  "{\"model\":\"vae\",\"loss\":%.6f,\"bce\":%.6f,\"kl\":%.6f,\"loss_mean_z\":%.6f,"
                  "\"bce_mean_z\":%.6f,\"mse\":%.6f,\"images\":%lld,\"samples\":%d,\"loss_std\":%.6f}",
                  sample.loss(), sample.mean(0), sample.mean(1), mean.loss(), mean.mean(0),
                  mean.mse_mean(), static_cast<long long>(sample.count), o.samples, loss_std);
  } else {
    LossTotals t = evaluate(*model, data, ZMode::kMean, rng, 500, o.limit);
    std::printf("%s on %s %s (%lld images), AE %s\n", o.model_file.c_str(), o.data.c_str(), o.split.c_str(),
                static_cast<long long>(t.count), model->config().to_json().c_str());
    std::printf("  reconstruction bce  %.4f nats per image\n", t.mean(0));
    std::printf("  reconstruction mse  %.4f per image\n", t.mse_mean());
    std::snprintf(json, sizeof json, "{\"model\":\"ae\",\"bce\":%.6f,\"mse\":%.6f,\"images\":%lld}",
                  t.mean(0), t.mse_mean(), static_cast<long long>(t.count));
  }
  if (o.json) std::printf("%s\n", json);
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
  cmd->add_flag("--json", o->json, "End with one line holding a JSON object of the figures");
  add_threads_option(cmd, &o->threads);
  return [o] { return run_eval(*o); };
}

}  // namespace ll::cli
