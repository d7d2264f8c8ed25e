#include "attnrank/report/output_files.h"

#include <fmt/core.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "attnrank/core/error.h"
#include "attnrank/core/files.h"

namespace attnrank {

namespace fs = std::filesystem;

std::string shell_quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

void ensure_output_directory(const std::string& dir) {
  if (dir.empty()) throw ConfigError("--out: an output directory is required");
  std::error_code error;
  fs::create_directories(dir, error);
  if (error || !fs::is_directory(dir)) throw ConfigError("--out: cannot create directory " + dir);
}

void write_output_file(const std::string& dir, const std::string& name, const std::string& text) {
  write_file_atomically((fs::path(dir) / name).string(), text);
}

PlotOutcome render_gnuplot(const std::string& dir, const std::string& name, const std::string& body,
                           int width, int height) {
  const fs::path script = fs::path(dir) / (name + ".gp");
  write_output_file(dir, name + ".gp",
                    fmt::format("# Rendered by attnrank; run `gnuplot {0}.gp` in this directory.\n"
                                "set encoding utf8\n"
                                "set terminal pngcairo size {1},{2} enhanced font 'Sans,11'\n"
                                "set output '{0}.png'\n{3}\n"
                                "set terminal svg size {1},{2} enhanced font 'Sans,11' "
                                "background rgb 'white'\n"
                                "set output '{0}.svg'\n{3}\nunset output\n",
                                name, width, height, body));
  PlotOutcome outcome;
  if (std::system("command -v gnuplot > /dev/null 2>&1") != 0) {
    outcome.message = "gnuplot not found on PATH: " + name +
                      ".{png,svg} not rendered (install gnuplot-nox, then run gnuplot " +
                      script.string() + " in " + dir + ")";
    return outcome;
  }
  const std::string log = name + ".gnuplot.log";
  const std::string command = "cd " + shell_quote(dir) + " && gnuplot " +
                              shell_quote(name + ".gp") + " > " + shell_quote(log) + " 2>&1";
  if (std::system(command.c_str()) != 0) {
    outcome.message =
        "gnuplot failed on " + script.string() + " (see " + (fs::path(dir) / log).string() + ")";
    return outcome;
  }
  fs::remove(fs::path(dir) / log);
  outcome.rendered = true;
  outcome.message = "figure " + (fs::path(dir) / name).string() + ".{png,svg}";
  return outcome;
}

}  // namespace attnrank
