#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <cstdio>
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
  const bool stdio_failed = std::fflush(stdout) != 0 || std::ferror(stdout);
  if (!std::cout || stdio_failed) {
    fmt::print(stderr, "attnrank: error: writing to standard output failed\n");
    return 1;
  }
  return code;
}

// One line, bounded: a 10 MB value quoted in a message must not become a 10 MB
// error line. The head and the tail are kept (the tail says what is wrong).
std::string one_bounded_line(std::string message) {
  for (char& c : message)
    if (c == '\n' || c == '\r') c = ' ';
  constexpr size_t kKeep = 400;
  if (message.size() > 2 * kKeep + 64)
    message = message.substr(0, kKeep) +
              fmt::format(" [... {} characters ...] ", message.size() - 2 * kKeep) +
              message.substr(message.size() - kKeep);
  return message;
}

int report(const char* what, int code) {
  fmt::print(stderr, "attnrank: error: {}\n", one_bounded_line(what));
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
    return report(e.what(), 2);
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
    // CLI11 prints two lines without our prefix; one line like every other error.
    return report(fmt::format("{} (attnrank --help lists the options)", e.what()).c_str(), 2);
  } catch (const attnrank::cli::ExitCode& e) {
    return e.code;
  } catch (const attnrank::ConfigError& e) {
    return report(e.what(), 2);
  } catch (const attnrank::FormatError& e) {
    // A file that is not what it claims to be is bad input too (README: exit 2).
    return report(e.what(), 2);
  } catch (const std::bad_alloc&) {
    return report(
        "out of memory (the run needs more memory than this machine or its limits "
        "give; try a smaller model, batch or train.threads)",
        1);
  } catch (const std::exception& e) {
    return report(e.what(), 1);
  }
  // Results printed to a full disk or /dev/full are lost: say so, exit non-zero.
  return checked_output(0);
}
