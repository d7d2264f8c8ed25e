#include "attnrank/theory/plot.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace attnrank {

namespace {

bool gnuplot_available() {
  return std::system("command -v gnuplot > /dev/null 2>&1") == 0;
}

// Single-quoted for /bin/sh.
std::string shell_quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

}  // namespace

PlotOutcome render_gnuplot(const std::string& dir, const std::string& name,
                           const std::string& body) {
  const std::filesystem::path script = std::filesystem::path(dir) / (name + ".gp");
  {
    std::ofstream out(script);
    if (!out) throw std::runtime_error("cannot write " + script.string());
    out << "# Rendered by attnrank; run `gnuplot " << name << ".gp` in this directory.\n"
        << "set terminal pngcairo size 960,640 enhanced font 'Sans,11'\n"
        << "set output '" << name << ".png'\n"
        << body << "\n"
        << "set terminal svg size 960,640 enhanced font 'Sans,11' background rgb 'white'\n"
        << "set output '" << name << ".svg'\n"
        << body << "\n"
        << "unset output\n";
  }
  PlotOutcome outcome;
  if (!gnuplot_available()) {
    outcome.message = "gnuplot not found on PATH: figure " + name + " not rendered (data and " +
                      script.string() + " written; install gnuplot-nox and run gnuplot there)";
    return outcome;
  }
  const std::string log = name + ".gnuplot.log";
  const std::string command = "cd " + shell_quote(dir) + " && gnuplot " +
                              shell_quote(name + ".gp") + " > " + shell_quote(log) + " 2>&1";
  if (std::system(command.c_str()) != 0) {
    outcome.message = "gnuplot failed on " + script.string() + " (see " +
                      (std::filesystem::path(dir) / log).string() + ")";
    return outcome;
  }
  std::filesystem::remove(std::filesystem::path(dir) / log);
  outcome.rendered = true;
  outcome.message = "figure " + (std::filesystem::path(dir) / name).string() + ".{png,svg}";
  return outcome;
}

}  // namespace attnrank
