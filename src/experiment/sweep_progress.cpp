#include "sweep_progress.h"

#include <fmt/core.h>

#include <algorithm>
#include <ostream>

#include "attnrank/core/progress.h"

namespace attnrank {

SweepProgress::SweepProgress(std::ostream* out, bool terminal, int total, int already, int jobs)
    : out_(out),
      terminal_(terminal),
      total_(total),
      done_(already),
      jobs_(std::max(1, jobs)),
      start_(std::chrono::steady_clock::now()) {}

std::string SweepProgress::eta_text() const {
  if (trained_ == 0) return "?";
  // Runs finished so far in this sweep are the best guess for the rest.
  const int remaining = total_ - done_;
  const double mean = trained_seconds_ / trained_;
  const double in_parallel = std::min(jobs_, std::max(1, remaining));
  return format_duration(remaining * mean / in_parallel);
}

void SweepProgress::draw_status() {
  if (!out_ || !terminal_) return;
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  *out_ << fmt::format("\r[sweep] {}/{} runs done, {} running{}, elapsed {}, ETA {}\x1b[K", done_,
                       total_, running_, failed_ ? fmt::format(", {} failed", failed_) : "",
                       format_duration(elapsed), eta_text())
        << std::flush;
}

void SweepProgress::started() {
  std::lock_guard lock(mutex_);
  ++running_;
  draw_status();
}

void SweepProgress::finished(const std::string& status, const std::string& text,
                             double wall_seconds) {
  std::lock_guard lock(mutex_);
  --running_;
  ++done_;
  failed_ += status == "failed";
  if (status != "failed") {
    ++trained_;
    trained_seconds_ += wall_seconds;
  }
  if (!out_) return;
  const std::string line = fmt::format("[{}/{}] {:<8} {} ({})", done_, total_, status, text,
                                       format_duration(wall_seconds));
  if (terminal_) {
    *out_ << "\r" << line << "\x1b[K\n";
    draw_status();
  } else {
    *out_ << line << "; " << running_ << " running, ETA " << eta_text() << "\n" << std::flush;
  }
}

void SweepProgress::interrupted() {
  std::lock_guard lock(mutex_);
  --running_;
  draw_status();
}

void SweepProgress::finish() {
  std::lock_guard lock(mutex_);
  if (out_ && terminal_) *out_ << "\n" << std::flush;
}

}  // namespace attnrank
