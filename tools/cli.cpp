// The command-line tool's shared helpers (tools/cli.h): one-line errors, loading data and model files
// with messages that name the file, and the options several subcommands share.
#include "tools/cli.h"

#include <cstdio>

#include "core/io/file_io.h"
#include "core/io/safetensors.h"
#include "core/models/model_file.h"
#include "tools/data_paths.h"

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
