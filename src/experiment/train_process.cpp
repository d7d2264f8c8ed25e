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

double number_or_nan(const nlohmann::json& json, const char* key) {
  if (!json.contains(key) || !json[key].is_number()) return NAN;
  return json[key].get<double>();
}

// Integers of summary.json; 0 when missing (a cast of NaN would be undefined).
int64_t integer_or_zero(const nlohmann::json& json, const char* key) {
  const double value = number_or_nan(json, key);
  return std::isfinite(value) ? static_cast<int64_t>(value) : 0;
}

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

TrainSummary read_summary(const std::string& run_dir) {
  const fs::path path = fs::path(run_dir) / "summary.json";
  std::ifstream in(path);
  if (!in) throw FormatError(path.string() + ": missing");
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& error) {
    throw FormatError(path.string() + ": not valid JSON (" + error.what() + ")");
  }
  if (!json.is_object() || !json.contains("status") || !json["status"].is_string())
    throw FormatError(path.string() + ": no status");
  TrainSummary summary;
  summary.status = json["status"].get<std::string>();
  summary.test_mse = number_or_nan(json, "test_mse");
  summary.trivial_mse = number_or_nan(json, "trivial_mse");
  summary.final_train_loss = number_or_nan(json, "final_train_loss");
  summary.steps = integer_or_zero(json, "steps");
  summary.wall_seconds = number_or_nan(json, "wall_seconds");
  summary.ms_per_step = number_or_nan(json, "ms_per_step");
  summary.parameters = integer_or_zero(json, "parameters");
  summary.attention_parameters = integer_or_zero(json, "attention_parameters");
  summary.threads = static_cast<int>(integer_or_zero(json, "threads"));
  for (const auto& [key, value] : json.items()) {
    const bool named = key.rfind("test_", 0) == 0 || key.rfind("validation_", 0) == 0;
    if (named && value.is_number() && std::isfinite(value.get<double>()))
      summary.final_metrics[key] = value.get<double>();
  }
  return summary;
}

std::vector<MetricsRow> read_metrics_csv(const std::string& run_dir) {
  std::vector<MetricsRow> rows;
  std::ifstream in(fs::path(run_dir) / "metrics.csv");
  std::string line;
  if (!in || !std::getline(in, line)) return rows;  // header
  while (std::getline(in, line)) {
    std::stringstream fields(line);
    std::string step, loss, lr, grad;
    if (!std::getline(fields, step, ',') || !std::getline(fields, loss, ',') ||
        !std::getline(fields, lr, ',') || !std::getline(fields, grad, ','))
      break;  // a row cut short by a kill
    try {
      rows.push_back({std::stoll(step), std::stod(loss), std::stod(lr), std::stod(grad)});
    } catch (const std::exception&) {
      break;
    }
  }
  return rows;
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
    if (code != 0 && code != 3) {
      const std::string line = last_line(log_path);
      throw std::runtime_error(
          fmt::format("train exited with code {}{}{}", code, line.empty() ? "" : ": ", line));
    }
    return read_summary(dir);
  };
}

}  // namespace attnrank
