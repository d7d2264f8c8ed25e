#include "attnrank/core/progress.h"

#include <fmt/core.h>
#include <unistd.h>

#include <ostream>

namespace attnrank {

bool stdout_is_terminal() {
  return isatty(STDOUT_FILENO) == 1;
}

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e8) return "?";
  const auto total = static_cast<int64_t>(seconds + 0.5);
  if (total >= 3600) return fmt::format("{}h{:02}m", total / 3600, (total % 3600) / 60);
  if (total >= 60) return fmt::format("{}m{:02}s", total / 60, total % 60);
  return fmt::format("{}s", total);
}

ProgressBar::ProgressBar(std::ostream& out, int64_t total, bool bar, int64_t first)
    : out_(out),
      total_(total),
      first_(first),
      bar_(bar),
      start_(std::chrono::steady_clock::now()) {}

double ProgressBar::steps_per_second(int64_t done) const {
  const double elapsed = elapsed_seconds();
  return elapsed > 0 ? static_cast<double>(done - first_) / elapsed : 0.0;
}

double ProgressBar::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressBar::update(int64_t done, const std::string& text, bool force) {
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = elapsed_seconds();
  const int64_t here = done - first_;  // done by this process
  const double eta = here > 0 ? elapsed * static_cast<double>(total_ - done) / here : -1;
  if (!bar_) {
    out_ << fmt::format("[{}/{}] {} elapsed {} eta {}\n", done, total_, text,
                        format_duration(elapsed), format_duration(eta))
         << std::flush;
    return;
  }
  if (!force && drawn_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  drawn_ = true;
  constexpr int kWidth = 24;
  const int filled = total_ > 0 ? static_cast<int>(kWidth * done / total_) : kWidth;
  std::string bar(filled, '#');
  bar.resize(kWidth, '.');
  out_ << fmt::format("\r[{}] {}/{} {} ETA {}\x1b[K", bar, done, total_, text, format_duration(eta))
       << std::flush;
}

void ProgressBar::finish() {
  if (bar_ && drawn_) out_ << "\n" << std::flush;
  drawn_ = false;
}

}  // namespace attnrank
