// attnrank info [--json]: the lines a user pastes into a bug report.
#include <fmt/core.h>

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "attnrank/core/threading.h"
#include "attnrank/train/build_info.h"
#include "commands.h"

namespace attnrank::cli {

void add_info_command(CLI::App& app) {
  auto json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand(
      "info", "Print the version, commit, compiler, kernel ISA, BLAS and thread count");
  cmd->add_flag("--json", *json, "One JSON object instead of key: value lines");
  cmd->callback([json] {
    set_threads(0);  // what a run with train.threads: 0 sets, so "blas threads" is what it uses
    if (*json) {
      const BuildInfo info = build_info();
      const nlohmann::ordered_json object = {{"version", info.version},
                                             {"commit", info.commit},
                                             {"compiler", info.compiler},
                                             {"build", info.build},
                                             {"cpu", info.cpu},
                                             {"kernels", info.isa},
                                             {"kernel_variants", info.variants},
                                             {"blas", info.blas},
                                             {"blas_threads", info.blas_threads},
                                             {"threads", info.threads}};
      fmt::print("{}\n", object.dump(2));
    } else {
      for (const auto& line : build_info_lines()) fmt::print("{}\n", line);
    }
    if (std::fflush(stdout) != 0 || std::ferror(stdout))
      throw std::runtime_error("info: writing to standard output failed");
  });
}

}  // namespace attnrank::cli
