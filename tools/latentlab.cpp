// latentlab: train, evaluate and sample LatentLab's autoencoders from the command line.
// Every bad input (unknown option, bad value, missing or corrupt file) ends in one line on stderr and a
// non-zero exit status: 2 for usage errors, 1 for everything else.
#include <cstdio>
#include <iostream>
#include <new>
#include <stdexcept>
#include <tuple>

#include "core/io/file_io.h"
#include "core/kernels/kernels.h"
#include "core/models/model_file.h"
#include "core/io/safetensors.h"
#include "tools/cli.h"
#include "tools/data_paths.h"
#include "tools/speed.h"

namespace ll::cli {

int fail(const std::string& message) {
  std::fprintf(stderr, "latentlab: error: %s\n", message.c_str());
  return 1;
}

const CLI::Validator kDataNames = CLI::IsMember({"mnist", "fashion"});

CLI::Validator model_kind_validator() {
  std::vector<std::string> names;
  for (const ModelKind& k : model_kinds()) names.push_back(k.name);
  return CLI::IsMember(names);
}

std::string model_kinds_help() {
  std::string s = "Model kind:";
  for (const ModelKind& k : model_kinds()) s += "\n  " + k.name + ": " + k.description;
  return s;
}

void print_metrics(const std::vector<std::pair<std::string, double>>& metrics) {
  for (const auto& [name, value] : metrics) std::printf("  %-21s %.6g\n", name.c_str(), value);
}

void add_threads_option(CLI::App* cmd, int* threads) {
  cmd->add_option("--threads", *threads, "Threads for the matrix products (default 1)")
      ->check(CLI::Range(1, 256));
}

Status check_out(const CLI::Option* option, const std::string& path) {
  if (path.empty() && option->count() == 0) return Status();
  return check_writable(path).with_context(option->get_name() + ": ");
}

Status check_image_size(const Dataset& data, int model_input, const std::string& what) {
  if (data.images.pixels_per_image() == model_input) return Status();
  return Status::error(what + " has " + std::to_string(data.images.rows) + "x" + std::to_string(data.images.cols) +
                       " images (" + std::to_string(data.images.pixels_per_image()) + " pixels) but the model takes " +
                       std::to_string(model_input) + " pixels per image");
}

Status load_data(const std::string& data, const std::string& split, Dataset* out) {
  std::string dir;
  Status s = data_dir(data, &dir);
  if (!s.ok()) return s;
  return load_idx_dataset(dir, split == "train" ? "train" : "t10k", out);
}

Status load_model_file(const std::string& path, std::unique_ptr<Model>* out) {
  std::vector<uint8_t> bytes;
  Status s = read_file(path, &bytes);
  if (!s.ok()) return s;
  SafetensorsFile file;
  if (parse_safetensors(bytes.data(), bytes.size(), &file).ok()) {
    if (is_prior_metadata(file.metadata))
      return Status::error(path + " is a PixelCNN prior; pass it with --prior (latentlab sample "
                           "--model-file VQVAE --prior " + path + "), or evaluate it with eval --vqvae VQVAE");
  }
  return load_model(bytes.data(), bytes.size(), out).with_context(path + ": ");
}

}  // namespace ll::cli

int main(int argc, char** argv) {
  using namespace ll::cli;
  CLI::App app{"latentlab: train, evaluate and sample autoencoders (AE family, VAEs, VQ-VAE with a PixelCNN "
               "prior) on MNIST and Fashion-MNIST",
               "latentlab"};
  app.require_subcommand(1, 1);
  // LATENTLAB_GEMM forces the GEMM backend; a bad value stops every command.
  if (ll::Status s = ll::apply_gemm_env(); !s.ok()) {
    std::fprintf(stderr, "latentlab: error: %s\n", s.message().c_str());
    return 2;
  }
  // The version, the CPU and the GEMM setup, with the choices measured for the MLP VAE's batch-128 step.
  app.set_version_flag("--version", [] {
    for (auto [ta, tb, M, N, K] : {std::tuple(false, true, 128, 400, 784), std::tuple(false, false, 128, 784, 400),
                                   std::tuple(true, false, 400, 784, 128), std::tuple(false, true, 128, 20, 400)})
      ll::gemm_backend_for(ta, tb, M, N, K);
    return "latentlab 0.1.0\n" + ll::gemm_report_text();
  });
  Action actions[] = {add_train(app),         add_eval(app),          add_reconstruct(app),
                      add_sample(app),        add_train_prior(app),   add_train_classifier(app),
                      add_export(app),        add_bench(app)};
  const char* names[] = {"train", "eval", "reconstruct", "sample", "train-prior", "train-classifier", "export",
                         "bench"};
  const int n_commands = 8;
  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    for (const char* n : names) known = known || std::string(argv[1]) == n;
    if (!known) {
      std::fprintf(stderr,
                   "latentlab: error: unknown subcommand '%s': expected train, eval, reconstruct, sample, "
                   "train-prior, train-classifier, export or bench (see latentlab --help)\n",
                   argv[1]);
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string where = app.get_subcommands().empty()
                            ? std::string("latentlab --help")
                            : "latentlab " + app.get_subcommands()[0]->get_name() + " --help";
    std::string msg = e.what();
    if (msg.empty()) msg = "invalid command line";
    std::fprintf(stderr, "latentlab: error: %s (see %s)\n", msg.c_str(), where.c_str());
    return 2;
  }
  const std::string name = app.get_subcommands()[0]->get_name();
  // The core never throws, but the memory it asks for may not be there: an allocation failure anywhere
  // (std::bad_alloc, or a length_error from an absurd size) ends in one error line, not an abort.
  try {
    for (int i = 0; i < n_commands; i++)
      if (name == names[i]) return actions[i]();
  } catch (const std::bad_alloc&) {
    return fail("out of memory (an allocation failed); try a smaller model, batch or data set");
  } catch (const std::exception& e) {
    return fail(std::string("internal error: ") + e.what());
  }
  return fail("unknown subcommand " + name);
}
