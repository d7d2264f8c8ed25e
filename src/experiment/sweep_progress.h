// A sweep's progress: runs done/total, running, failures and ETA. On a terminal a
// status line is redrawn under one line per finished run; otherwise plain lines.
#pragma once
#include <chrono>
#include <iosfwd>
#include <mutex>
#include <string>

namespace attnrank {

class SweepProgress {
 public:
  // `already` runs of `total` were finished before this sweep started.
  SweepProgress(std::ostream* out, bool terminal, int total, int already, int jobs);
  void started();
  // One finished run: its status and a one-line description.
  void finished(const std::string& status, const std::string& text, double wall_seconds);
  void interrupted();
  void finish();

 private:
  void draw_status();
  std::string eta_text() const;

  std::ostream* out_;
  bool terminal_;
  int total_, done_, jobs_;
  int running_ = 0, failed_ = 0, trained_ = 0;
  double trained_seconds_ = 0.0;
  std::chrono::steady_clock::time_point start_;
  std::mutex mutex_;
};

}  // namespace attnrank
