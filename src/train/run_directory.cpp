#include "attnrank/train/run_directory.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "attnrank/config_io/config_io.h"
#include "attnrank/core/error.h"
#include "attnrank/core/files.h"
#include "attnrank/core/safetensors.h"

namespace attnrank {

namespace fs = std::filesystem;

namespace {

constexpr const char* kStateFormat = "attnrank-train-state";
constexpr const char* kStateVersion = "1";

// Files a run writes besides the named ones (task outputs such as icl_curve.csv
// are listed by the objective; these are the ones every run may have).
const std::vector<std::string>& run_file_names() {
  static const std::vector<std::string> names = {run_files::kSummary,    run_files::kModel,
                                                 run_files::kTrainState, run_files::kMetrics,
                                                 "icl_curve.csv",        run_files::kConfig};
  return names;
}

nlohmann::ordered_json finite_or_null(double value) {
  return std::isfinite(value) ? nlohmann::ordered_json(value) : nlohmann::ordered_json(nullptr);
}

double number_or_nan(const nlohmann::json& json, const char* key) {
  if (!json.contains(key) || !json[key].is_number()) return NAN;
  return json[key].get<double>();
}

// Integers of summary.json; 0 when missing (a cast of NaN would be undefined).
int64_t integer_or_zero(const nlohmann::json& json, const char* key) {
  const double value = number_or_nan(json, key);
  return std::isfinite(value) ? static_cast<int64_t>(value) : 0;
}

// Doubles kept bit-exact through text: C's hexadecimal float format.
std::string exact_text(double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%a", value);
  return buffer;
}

double parse_exact(const std::string& text, const std::string& what) {
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size()) throw FormatError(what);
  return value;
}

int64_t parse_count(const std::string& text, const std::string& what) {
  size_t used = 0;
  int64_t value = -1;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    throw FormatError(what);
  }
  if (used != text.size() || value < 0) throw FormatError(what);
  return value;
}

RunConfig neutral(RunConfig config) {
  config.train.threads = 0;
  config.train.checkpoint_every = CheckpointInterval{};
  config.train.tensorboard = false;
  return config;
}

void remove_run_files(const std::string& run_dir) {
  // summary.json and the weights first: until config.yaml changes, what is left
  // is at worst an unfinished run of the old config, never a finished one of two.
  for (const std::string& name : run_file_names()) {
    std::error_code error;
    fs::remove(fs::path(run_dir) / name, error);
    if (error)
      throw std::runtime_error("cannot remove " + (fs::path(run_dir) / name).string() + ": " +
                               error.message());
  }
  // TensorBoard files of the earlier attempt (train.tensorboard), so that
  // TensorBoard shows one run.
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(run_dir, error))
    if (entry.path().filename().string().starts_with("events.out.tfevents."))
      fs::remove(entry.path(), error);
}

}  // namespace

std::string run_file(const std::string& run_dir, const char* name) {
  return (fs::path(run_dir) / name).string();
}

std::string metrics_header(const std::vector<std::string>& validation_names) {
  std::string header = "step,train_loss,lr,grad_norm";
  for (const std::string& name : validation_names) header += "," + name;
  return header + "\n";
}

std::string format_metrics_row(const MetricsRow& row, size_t validation_columns) {
  std::string line =
      fmt::format("{},{:.9g},{:.9g},{:.9g}", row.step, row.train_loss, row.lr, row.grad_norm);
  for (size_t i = 0; i < validation_columns; ++i)
    line += i < row.validation.size() ? fmt::format(",{:.9g}", row.validation[i]) : ",";
  return line + "\n";
}

void write_summary(const std::string& run_dir, const TrainSummary& summary) {
  nlohmann::ordered_json json = {{"status", summary.status}};
  if (summary.squared_error) json["test_mse"] = finite_or_null(summary.test_mse);
  for (const auto& [name, value] : summary.evaluation)
    if (name != "test_mse") json[name] = finite_or_null(value);
  if (const auto best = summary.final_metrics.find(kBestEpochTrainLoss);
      best != summary.final_metrics.end())
    json[kBestEpochTrainLoss] = best->second;
  if (summary.squared_error) json["trivial_mse"] = summary.trivial_mse;
  json["trivial_loss"] = summary.trivial_loss;
  const double flops_per_ms = summary.gflop_per_step * 1e3;
  const nlohmann::ordered_json rest = {
      {"final_train_loss", finite_or_null(summary.final_train_loss)},
      {"steps", summary.steps},
      {"wall_seconds", summary.wall_seconds},
      {"ms_per_step", summary.ms_per_step},
      {"steps_per_second", summary.ms_per_step > 0 ? 1000.0 / summary.ms_per_step : 0.0},
      {"parameters", summary.parameters},
      {"attention_parameters", summary.attention_parameters},
      {"threads", summary.threads},
      {"kernel_isa", summary.kernel_isa},
      {"gflop_per_step", summary.gflop_per_step},
      {"gflops_per_second", summary.ms_per_step > 0 ? flops_per_ms / summary.ms_per_step : 0.0},
      {"peak_rss_mb", summary.peak_rss_mb},
      {"model_memory_mb", summary.model_memory_mb},
  };
  json.update(rest);
  // Only with train.eval_every, so runs without it keep their summary unchanged.
  if (std::isfinite(summary.ms_per_validation))
    json["ms_per_validation"] = summary.ms_per_validation;
  if (summary.resumed_from_step >= 0) json["resumed_from_step"] = summary.resumed_from_step;
  if (summary.checkpoints_written > 0) {
    json["checkpoints_written"] = summary.checkpoints_written;
    json["checkpoint_mb"] = summary.checkpoint_mb;
    json["checkpoint_seconds"] = summary.checkpoint_seconds;
  }
  write_file_atomically(run_file(run_dir, run_files::kSummary), json.dump(2) + "\n");
}

TrainSummary read_summary(const std::string& run_dir) {
  const std::string path = run_file(run_dir, run_files::kSummary);
  std::ifstream in(path);
  if (!in) throw FormatError(path + ": missing");
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& error) {
    throw FormatError(path + ": not valid JSON (" + error.what() + ")");
  }
  if (!json.is_object() || !json.contains("status") || !json["status"].is_string())
    throw FormatError(path + ": no status");
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
    const bool named = key.rfind("test_", 0) == 0 || key.rfind("validation_", 0) == 0 ||
                       key == kBestEpochTrainLoss;
    if (named && value.is_number() && std::isfinite(value.get<double>()))
      summary.final_metrics[key] = value.get<double>();
  }
  return summary;
}

std::vector<MetricsRow> read_metrics_csv(const std::string& run_dir) {
  std::vector<MetricsRow> rows;
  std::ifstream in(run_file(run_dir, run_files::kMetrics));
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

MetricsFile::MetricsFile(const std::string& path, const std::string& initial) : path_(path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
  append(initial);
}

MetricsFile::~MetricsFile() {
  if (fd_ >= 0) ::close(fd_);
}

void MetricsFile::append(const std::string& line) {
  size_t written = 0;
  while (written < line.size()) {
    const ssize_t count = ::write(fd_, line.data() + written, line.size() - written);
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0)
      throw std::runtime_error("cannot write " + path_ + ": " +
                               (count < 0 ? std::strerror(errno) : "no progress"));
    written += static_cast<size_t>(count);
  }
  contents_ += line;
}

int64_t write_train_state(const std::string& run_dir, const RunConfig& config,
                          const TrainState& state) {
  const int64_t count = static_cast<int64_t>(state.parameters.size());
  if (state.first_moment.size() != state.parameters.size() ||
      state.second_moment.size() != state.parameters.size())
    throw std::invalid_argument("write_train_state: arenas of different sizes");
  SafeTensorFile file;
  file.add("parameters", {count}, state.parameters.data());
  file.add("adamw.first_moment", {count}, state.first_moment.data());
  file.add("adamw.second_moment", {count}, state.second_moment.data());
  file.metadata["format"] = kStateFormat;
  file.metadata["version"] = kStateVersion;
  file.metadata["config"] = to_yaml(config);
  file.metadata["step"] = std::to_string(state.step);
  file.metadata["optimizer_steps"] = std::to_string(state.optimizer_steps);
  file.metadata["metrics_csv"] = state.metrics_csv;
  for (const auto& [name, value] : state.loop) file.metadata["loop." + name] = exact_text(value);
  const std::string path = run_file(run_dir, run_files::kTrainState);
  write_safetensors(path, file);
  sync_directory(run_dir);
  std::error_code error;
  const auto size = fs::file_size(path, error);
  return error ? 0 : static_cast<int64_t>(size);
}

TrainState read_train_state(const std::string& run_dir, const RunConfig& config,
                            size_t parameter_count) {
  const std::string path = run_file(run_dir, run_files::kTrainState);
  const std::string fix = " (--restart starts the run over)";
  const SafeTensorFile file = read_safetensors(path);
  auto meta = [&](const char* key) -> const std::string& {
    const auto found = file.metadata.find(key);
    if (found == file.metadata.end())
      throw FormatError(path + ": not a training checkpoint (no '" + key + "')" + fix);
    return found->second;
  };
  if (meta("format") != kStateFormat)
    throw FormatError(path + ": not a training checkpoint (format '" + meta("format") + "')" + fix);
  if (meta("version") != kStateVersion)
    throw FormatError(path + ": checkpoint version " + meta("version") + ", this build reads " +
                      kStateVersion + fix);
  RunConfig saved;
  try {
    saved = parse_config(meta("config"), {}, path);
  } catch (const ConfigError& error) {
    throw FormatError(path + ": its config does not load: " + error.what() + fix);
  }
  if (const auto difference = config_difference(config, saved))
    throw FormatError(path + ": a checkpoint of another run (" + difference->theirs + " there, " +
                      difference->ours + " here)" + fix);
  TrainState state;
  state.step = parse_count(meta("step"), path + ": bad step" + fix);
  if (state.step > config.train.steps)
    throw FormatError(path + ": step " + std::to_string(state.step) + " is past the run's " +
                      std::to_string(config.train.steps) + fix);
  state.optimizer_steps =
      parse_count(meta("optimizer_steps"), path + ": bad optimizer_steps" + fix);
  state.metrics_csv = meta("metrics_csv");
  // The header, with validation columns or not (train.eval_every, part of the run).
  if (state.metrics_csv.rfind("step,train_loss,lr,grad_norm", 0) != 0)
    throw FormatError(path + ": metrics rows without their header" + fix);
  for (const auto& [key, value] : file.metadata)
    if (key.rfind("loop.", 0) == 0)
      state.loop[key.substr(5)] = parse_exact(value, path + ": bad " + key + fix);
  auto arena = [&](const char* name, std::vector<float>& out) {
    const SafeTensor& tensor = file.at(name);
    if (tensor.dtype != "F32" || tensor.shape.size() != 1 ||
        tensor.shape[0] != static_cast<int64_t>(parameter_count))
      throw FormatError(path + ": '" + name + "' does not match the model's " +
                        std::to_string(parameter_count) + " parameters" + fix);
    out = tensor.to_float();
  };
  arena("parameters", state.parameters);
  arena("adamw.first_moment", state.first_moment);
  arena("adamw.second_moment", state.second_moment);
  return state;
}

bool same_run(const RunConfig& a, const RunConfig& b) {
  return neutral(a) == neutral(b);
}

std::optional<ConfigDifference> config_difference(const RunConfig& ours, const RunConfig& theirs) {
  // "section.key: value" per line of the resolved YAML.
  auto lines = [](const RunConfig& config) {
    std::vector<std::string> out;
    std::string section, line;
    std::istringstream in(to_yaml(neutral(config)));
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      if (line[0] != ' ') {
        section = line.substr(0, line.find(':'));
        continue;
      }
      out.push_back(section + "." + line.substr(line.find_first_not_of(' ')));
    }
    return out;
  };
  const std::vector<std::string> a = lines(ours), b = lines(theirs);
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    ConfigDifference difference{i < a.size() ? a[i] : "(nothing)",
                                i < b.size() ? b[i] : "(nothing)"};
    if (difference.ours != difference.theirs) return difference;
  }
  return std::nullopt;
}

RunStart prepare_run_directory(const std::string& run_dir, const RunConfig& config, bool restart) {
  const std::string where = "--out " + run_dir;
  std::error_code error;
  if (!fs::exists(run_dir, error)) {
    fs::create_directories(run_dir, error);
    if (error)
      throw ConfigError("--out: cannot create directory " + run_dir + ": " + error.message());
    return {};
  }
  if (!fs::is_directory(run_dir, error)) throw ConfigError(where + ": not a directory");
  const bool empty = fs::is_empty(run_dir, error);
  if (error) throw ConfigError(where + ": cannot read the directory: " + error.message());
  if (empty) return {};
  const std::string config_path = run_file(run_dir, run_files::kConfig);
  if (!fs::exists(config_path, error))
    throw ConfigError(where +
                      ": the directory is not empty and holds no attnrank run; "
                      "choose a new or empty directory");
  std::optional<RunConfig> existing;
  std::string problem;
  try {
    existing = load_config(config_path, {});
  } catch (const std::exception& failure) {
    problem = std::string("its config.yaml does not load: ") + failure.what();
  }
  if (existing)
    if (const auto difference = config_difference(config, *existing))
      problem =
          "it holds another run (" + difference->theirs + " there, " + difference->ours + " here)";
  if (!problem.empty()) {
    if (!restart)
      throw ConfigError(where + ": " + problem +
                        "; pass --restart to replace that run, or choose another directory");
    remove_run_files(run_dir);
    return {};
  }
  if (restart) {
    remove_run_files(run_dir);
    return {};
  }
  // The same run: finished, resumable, or started over.
  if (fs::exists(run_file(run_dir, run_files::kSummary), error)) {
    try {
      TrainSummary summary = read_summary(run_dir);
      if (summary.status == "done" || summary.status == "diverged") {
        RunStart start;
        start.kind = RunStart::Kind::kFinished;
        start.finished = std::move(summary);
        start.finished.already_finished = true;
        return start;
      }
    } catch (const FormatError&) {
      // A summary cut short: the run did not finish.
    }
  }
  if (fs::exists(run_file(run_dir, run_files::kTrainState), error)) {
    // The weights and summary of a stop describe the run at its checkpoint; the
    // run goes on from there, so they would soon be stale.
    for (const char* name : {run_files::kSummary, run_files::kModel})
      fs::remove(run_file(run_dir, name), error);
    RunStart start;
    start.kind = RunStart::Kind::kResume;  // the caller reads the state: it knows the model
    return start;
  }
  remove_run_files(run_dir);
  return {};
}

void remove_train_state(const std::string& run_dir) {
  std::error_code error;
  fs::remove(run_file(run_dir, run_files::kTrainState), error);
}

}  // namespace attnrank
