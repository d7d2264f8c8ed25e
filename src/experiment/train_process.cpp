// Training a sweep run in a child process (`attnrank train`), and reading a run
// directory's summary and metrics back. A child per run gives each concurrent run
// its own OpenMP/OpenBLAS thread pool (their thread counts are process-global) and
// confines a crash to the run that crashed.
#include <fcntl.h>
#include <fmt/core.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "attnrank/config_io/config_io.h"
#include "attnrank/core/error.h"
#include "attnrank/experiment/sweep.h"

namespace attnrank {

namespace fs = std::filesystem;

namespace {

volatile std::sig_atomic_t stop_requested = 0;

std::string last_line(const std::string& path) {
  std::ifstream in(path);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  return last;
}

// fork + exec with the child's output in `log_path`; returns the wait status.
int run_child(const std::vector<std::string>& arguments, const std::string& log_path) {
  std::vector<char*> argv;
  for (const auto& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0)
    throw std::runtime_error(std::string("cannot start a run: fork: ") + std::strerror(errno));
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec (the parent has threads).
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // die with the sweep, even on SIGKILL
    if (getppid() != parent) _exit(127);
    const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (log < 0 || null < 0) _exit(126);
    dup2(null, STDIN_FILENO);
    dup2(log, STDOUT_FILENO);
    dup2(log, STDERR_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  // Polled, so that a stop request reaches the child whichever thread the signal hit.
  int status = 0;
  bool forwarded = false;
  for (;;) {
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) return status;
    if (done < 0 && errno != EINTR)
      throw std::runtime_error(std::string("waitpid: ") + std::strerror(errno));
    if (!forwarded && sweep_stop_requested()) {
      kill(pid, SIGTERM);
      forwarded = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace

void request_sweep_stop() {
  stop_requested = 1;
}

bool sweep_stop_requested() {
  return stop_requested != 0;
}

void clear_sweep_stop() {
  stop_requested = 0;
}

Trainer subprocess_trainer(const std::string& binary) {
  return [binary](const RunConfig& config, const std::string& dir) {
    const std::string config_path = (fs::path(dir) / "config.yaml").string();
    {
      std::ofstream out(config_path);
      out << to_yaml(config);
      if (!out.flush()) throw std::runtime_error("cannot write " + config_path);
    }
    const std::string log_path = (fs::path(dir) / "train.log").string();
    const int status =
        run_child({binary, "train", "--config", config_path, "--out", dir}, log_path);
    if (WIFSIGNALED(status)) {
      const int signal = WTERMSIG(status);
      if (signal == SIGINT || signal == SIGTERM || signal == SIGHUP)
        throw RunInterrupted(fmt::format("run stopped by signal {}", signal));
      throw std::runtime_error(fmt::format("train killed by signal {} ({}){}", signal,
                                           strsignal(signal),
                                           signal == SIGKILL ? "; out of memory?" : ""));
    }
    const int code = WEXITSTATUS(status);
    // 4: stopped (the sweep's SIGTERM, or Slurm's), its training state saved in
    // DIR; the sweep's next invocation resumes it there.
    if (code == kExitInterrupted)
      throw RunInterrupted(fmt::format("run stopped at a checkpoint: {}", last_line(log_path)));
    if (code != 0 && code != kExitDiverged) {
      const std::string line = last_line(log_path);
      throw std::runtime_error(
          fmt::format("train exited with code {}{}{}", code, line.empty() ? "" : ": ", line));
    }
    return read_summary(dir);
  };
}

}  // namespace attnrank
