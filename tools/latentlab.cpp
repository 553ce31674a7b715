// latentlab: train, evaluate and sample LatentLab's autoencoders from the command line.
// Every bad input (unknown option, bad value, missing or corrupt file) ends in one line on stderr and a
// non-zero exit status: 2 for usage errors, 1 for everything else. The subcommands are the table below;
// each adds itself (its name, options and help) in its own file, and the shared helpers are tools/cli.h.
#include <cstdio>
#include <iostream>
#include <new>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "core/kernels/kernels.h"
#include "tools/cli.h"
#include "tools/speed.h"

namespace {
// Every subcommand, in the order of --help.
using AddSubcommand = ll::cli::Action (*)(CLI::App&);
constexpr AddSubcommand kSubcommands[] = {ll::cli::add_train,       ll::cli::add_eval,
                                          ll::cli::add_reconstruct, ll::cli::add_sample,
                                          ll::cli::add_train_prior, ll::cli::add_train_classifier,
                                          ll::cli::add_export,      ll::cli::add_bench};
}  // namespace

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
  // The GEMM choices measured by earlier runs on this CPU and build, and those of this run kept for the
  // next (however this run ends: the keeper saves when main returns).
  ll::load_gemm_cache();
  struct GemmCacheKeeper {
    ~GemmCacheKeeper() { ll::save_gemm_cache(); }
  } gemm_cache_keeper;
  // The version, the CPU and the GEMM setup, with the choices measured for the MLP VAE's batch-128 step.
  app.set_version_flag("--version", [] {
    for (auto [ta, tb, M, N, K] : {std::tuple(false, true, 128, 400, 784), std::tuple(false, false, 128, 784, 400),
                                   std::tuple(true, false, 400, 784, 128), std::tuple(false, true, 128, 20, 400)})
      ll::gemm_backend_for(ta, tb, M, N, K);
    return "latentlab 0.1.0\n" + ll::gemm_report_text();
  });
  std::vector<Action> actions;
  std::vector<std::string> names;
  for (AddSubcommand add : kSubcommands) {
    actions.push_back(add(app));
    names.push_back(app.get_subcommands({}).back()->get_name());  // the one just added
  }
  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    for (const std::string& n : names) known = known || argv[1] == n;
    if (!known) {
      std::string expected;
      for (size_t i = 0; i < names.size(); i++)
        expected += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i];
      std::fprintf(stderr, "latentlab: error: unknown subcommand '%s': expected %s (see latentlab --help)\n", argv[1],
                   expected.c_str());
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
    for (size_t i = 0; i < names.size(); i++)
      if (name == names[i]) return actions[i]();
  } catch (const std::bad_alloc&) {
    return fail("out of memory (an allocation failed); try a smaller model, batch or data set");
  } catch (const std::exception& e) {
    return fail(std::string("internal error: ") + e.what());
  }
  return fail("unknown subcommand " + name);
}
