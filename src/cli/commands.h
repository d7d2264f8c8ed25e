// Each subcommand lives in its own file and registers itself on the root app.
// Callbacks throw; main() maps ConfigError to exit code 2 and other errors to 1.
#pragma once
#include <CLI/CLI.hpp>

namespace attnrank::cli {

// Thrown by a subcommand that finished and wants a specific non-zero exit code
// (its message, if any, has already been printed).
struct ExitCode {
  int code;
};

void add_train_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_theory_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_sweep_command(CLI::App& app);
void add_merge_command(CLI::App& app);
void add_results_command(CLI::App& app);
void add_reproduce_command(CLI::App& app);
void add_info_command(CLI::App& app);
void add_submit_command(CLI::App& app);
void add_plot_command(CLI::App& app);

}  // namespace attnrank::cli
