// Runs the attnrank binary and captures its exit code, stdout and stderr.
#pragma once
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace attnrank::testing {

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

inline std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Runs a shell command line, capturing its output (the last command's, for a list).
inline CommandResult run_shell(const std::string& command_line) {
  static int counter = 0;
  const auto base =
      std::filesystem::temp_directory_path() /
      ("attnrank_cli_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  const std::string out = base.string() + ".out", err = base.string() + ".err";
  const std::string command = "{ " + command_line + "; } >" + out + " 2>" + err + " </dev/null";
  const int status = std::system(command.c_str());
  CommandResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = slurp(out);
  result.err = slurp(err);
  std::filesystem::remove(out);
  std::filesystem::remove(err);
  return result;
}

// `arguments` is appended to the binary's path verbatim (shell syntax); `environment`
// ("NAME=value ...") is set for the binary only.
inline CommandResult run_attnrank(const std::string& arguments,
                                  const std::string& environment = "") {
  return run_shell((environment.empty() ? "" : "env " + environment + " ") +
                   std::string(ATTNRANK_BINARY) + " " + arguments);
}

inline int count_lines(const std::string& text) {
  int lines = 0;
  for (char c : text) lines += c == '\n';
  return lines;
}

}  // namespace attnrank::testing
