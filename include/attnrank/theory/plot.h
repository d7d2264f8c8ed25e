// Figures of the theory tools: a gnuplot script next to its data in the output directory,
// rendered to PNG (pngcairo) and SVG, so a figure can be re-rendered or restyled by hand.
#pragma once
#include <string>

namespace attnrank {

struct PlotOutcome {
  bool rendered = false;  // NAME.png and NAME.svg were written
  std::string message;    // what happened, one line (why not, when not rendered)
};

// Writes DIR/NAME.gp and runs `gnuplot NAME.gp` inside DIR. `body` holds the commands that
// follow the terminal setup (labels, scales, `plot ...` of data files already in DIR); it
// is emitted once per output format. Without gnuplot on PATH nothing is rendered and the
// message says how to render later; the data files stay.
PlotOutcome render_gnuplot(const std::string& dir, const std::string& name,
                           const std::string& body);

}  // namespace attnrank
