// Progress display: a redrawn bar with ETA on a terminal, plain lines otherwise.
#pragma once
#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>

namespace attnrank {

// True when file descriptor 1 (stdout) is a terminal.
bool stdout_is_terminal();

// "1h02m", "3m07s", "12s"
std::string format_duration(double seconds);

class ProgressBar {
 public:
  // `out` receives the bar (terminal) or lines; `bar` selects the mode; `first`:
  // done before this process started (a resumed run), left out of rates and ETA.
  ProgressBar(std::ostream& out, int64_t total, bool bar, int64_t first = 0);
  // Units per second done by this process, at `done` done in all.
  double steps_per_second(int64_t done) const;
  // Redraws at most ~10 times a second (bar mode) or prints one line (line mode).
  void update(int64_t done, const std::string& text, bool force = false);
  // Ends the bar line.
  void finish();
  double elapsed_seconds() const;

 private:
  std::ostream& out_;
  int64_t total_;
  int64_t first_;
  bool bar_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  bool drawn_ = false;
};

}  // namespace attnrank
