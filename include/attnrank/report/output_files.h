// Writing a report's files: its output directory, text files, gnuplot figures.
// Every write is checked: a file that cannot be written fully is an error naming it.
#pragma once
#include <string>

namespace attnrank {

// `text` single-quoted for /bin/sh and bash (gnuplot commands, sbatch scripts).
std::string shell_quote(const std::string& text);

// Creates `dir` (and parents); throws ConfigError naming it if that fails.
void ensure_output_directory(const std::string& dir);
// Writes `text` to dir/name (replacing it); throws std::runtime_error naming the
// file if it cannot be written, flushed and closed.
void write_output_file(const std::string& dir, const std::string& name, const std::string& text);

struct PlotOutcome {
  bool rendered = false;
  std::string message;  // "figure DIR/NAME.{png,svg}", or why it was not rendered
};
// Writes dir/NAME.gp drawing `body` once as PNG and once as SVG (width x height
// pixels) and runs gnuplot on it there. Without gnuplot the script and its data stay
// and the message says how to render them; a gnuplot error keeps its log.
PlotOutcome render_gnuplot(const std::string& dir, const std::string& name, const std::string& body,
                           int width = 960, int height = 640);

}  // namespace attnrank
