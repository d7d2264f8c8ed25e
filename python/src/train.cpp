// attnrank.train in-process: the engine's training loop with the GIL released,
// its log forwarded to a Python callable, and Ctrl-C (SIGINT) turned into a clean
// stop through TrainOptions::should_stop.
#include "attnrank/train/train.h"

#include <pybind11/stl.h>

#include <chrono>
#include <cmath>
#include <optional>
#include <ostream>
#include <streambuf>

#include "bindings.h"

namespace attnrank::python {

namespace {

// What the callbacks share: the first Python error they met (KeyboardInterrupt,
// or one raised by the log callable), raised again once the engine has returned.
struct PendingError {
  std::optional<py::error_already_set> error;
};

// A streambuf that hands each flushed chunk to a Python callable (sys.stdout.write
// by default), so the log reaches notebooks and redirected sys.stdout too. The
// engine flushes after every bar redraw (at most ~10 a second) and log line.
class PythonLogBuffer final : public std::streambuf {
 public:
  PythonLogBuffer(py::object write, PendingError& pending)
      : write_(std::move(write)), pending_(pending) {}

 protected:
  int_type overflow(int_type c) override {
    if (c != traits_type::eof()) text_.push_back(traits_type::to_char_type(c));
    return traits_type::not_eof(c);
  }
  std::streamsize xsputn(const char* data, std::streamsize count) override {
    text_.append(data, static_cast<size_t>(count));
    return count;
  }
  int sync() override {
    if (text_.empty()) return 0;
    py::gil_scoped_acquire gil;
    try {
      write_(text_);
    } catch (py::error_already_set& error) {
      if (!pending_.error) pending_.error = std::move(error);
    }
    text_.clear();
    return 0;
  }

 private:
  py::object write_;
  PendingError& pending_;
  std::string text_;
};

// Polled by the training loop before every step. Python's own SIGINT handler only
// sets a flag while the engine runs without the GIL; every 50 ms this takes the GIL
// and lets Python run its handlers (PyErr_CheckSignals), which raises
// KeyboardInterrupt on Ctrl-C.
class SignalPoll {
 public:
  explicit SignalPoll(PendingError& pending)
      : pending_(pending), last_(std::chrono::steady_clock::now()) {}

  bool operator()() {
    if (pending_.error) return true;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(50)) return false;
    last_ = now;
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) pending_.error.emplace();
    return pending_.error.has_value();
  }

 private:
  PendingError& pending_;
  std::chrono::steady_clock::time_point last_;
};

py::object finite_or_none(double value) {
  return std::isfinite(value) ? py::object(py::float_(value)) : py::object(py::none());
}

py::dict summary_dict(const TrainSummary& summary) {
  py::dict out;
  out["status"] = summary.status;
  for (const auto& [name, value] : summary.final_metrics) out[py::str(name)] = value;
  out["final_train_loss"] = finite_or_none(summary.final_train_loss);
  out["steps"] = summary.steps;
  out["wall_seconds"] = summary.wall_seconds;
  out["ms_per_step"] = summary.ms_per_step;
  out["parameters"] = summary.parameters;
  out["attention_parameters"] = summary.attention_parameters;
  out["threads"] = summary.threads;
  return out;
}

py::dict train_in_process(const std::string& source, bool is_path,
                          const std::vector<std::string>& overrides, const std::string& out_dir,
                          bool progress_bar, py::object write, bool restart) {
  const RunConfig config = load_run_config({source, is_path, overrides});
  PendingError pending;
  std::optional<PythonLogBuffer> buffer;
  std::optional<std::ostream> log;
  if (!write.is_none()) {
    buffer.emplace(std::move(write), pending);
    log.emplace(&*buffer);
  }
  TrainOptions options;
  options.progress_bar = progress_bar;
  options.log = log ? &*log : nullptr;
  options.should_stop = SignalPoll(pending);
  options.restart = restart;
  TrainSummary summary;
  {
    py::gil_scoped_release release;
    summary = train(config, out_dir, options);
    if (log) log->flush();
  }
  // The run directory is complete (status "interrupted" when stopped); now Python
  // sees the KeyboardInterrupt or the log's error.
  if (pending.error) throw *pending.error;
  return summary_dict(summary);
}

}  // namespace

void bind_train(py::module_& module) {
  module.def("train", &train_in_process, py::arg("source"), py::arg("is_path"),
             py::arg("overrides"), py::arg("out_dir"), py::arg("progress_bar"), py::arg("write"),
             py::arg("restart") = false);
}

}  // namespace attnrank::python
