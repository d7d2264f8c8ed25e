#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>

#include "attnrank/core/error.h"
#include "attnrank/core/threading.h"
#include "attnrank/kernels/kernels.h"
#include "attnrank/train/build_info.h"
#include "commands.h"

namespace {

// --help and --version print through std::cout: a failed write (a full disk,
// /dev/full) is an error, not exit 0.
int checked_output(int code) {
  std::cout.flush();
  if (!std::cout) {
    fmt::print(stderr, "attnrank: error: writing to standard output failed\n");
    return 1;
  }
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"attnrank: train, measure and reason about attention layers of free rank"};
  app.require_subcommand(1);
  // An unusable ATTNRANK_ISA is reported here, before any work, with exit code 2.
  try {
    attnrank::kernels::active_isa();
  } catch (const attnrank::ConfigError& e) {
    fmt::print(stderr, "attnrank: error: {}\n", e.what());
    return 2;
  }
  app.set_version_flag("--version", [] {
    attnrank::set_threads(0);  // so "blas threads" is what a run uses
    std::string text = attnrank::version_line();
    for (const auto& line : attnrank::build_info_lines()) text += "\n" + line;
    return text;
  });
  attnrank::cli::add_train_command(app);
  attnrank::cli::add_eval_command(app);
  attnrank::cli::add_theory_command(app);
  attnrank::cli::add_inspect_command(app);
  attnrank::cli::add_sweep_command(app);
  attnrank::cli::add_merge_command(app);
  attnrank::cli::add_results_command(app);
  attnrank::cli::add_reproduce_command(app);
  attnrank::cli::add_submit_command(app);
  attnrank::cli::add_plot_command(app);
  attnrank::cli::add_info_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return checked_output(app.exit(e));
  } catch (const CLI::CallForAllHelp& e) {
    return checked_output(app.exit(e));
  } catch (const CLI::CallForVersion& e) {
    return checked_output(app.exit(e));
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  } catch (const attnrank::cli::ExitCode& e) {
    return e.code;
  } catch (const attnrank::ConfigError& e) {
    fmt::print(stderr, "attnrank: error: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "attnrank: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
