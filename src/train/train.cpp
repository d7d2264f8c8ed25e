#include "attnrank/train/train.h"

#include <fmt/core.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "attnrank/config_io/config_io.h"
#include "attnrank/core/error.h"
#include "attnrank/core/files.h"
#include "attnrank/core/progress.h"
#include "attnrank/core/threading.h"
#include "attnrank/kernels/kernels.h"
#include "attnrank/nn/model.h"
#include "attnrank/train/checkpoint.h"
#include "attnrank/train/objective.h"
#include "attnrank/train/optimizer.h"

namespace attnrank {

namespace {

double median_of(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 == 1 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
}

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

nlohmann::ordered_json finite_or_null(double value) {
  return std::isfinite(value) ? nlohmann::ordered_json(value) : nlohmann::ordered_json(nullptr);
}

size_t batch_bytes(const Batch& batch) {
  return (batch.inputs.size() + batch.targets.size()) * sizeof(float) +
         (batch.tokens.size() + batch.labels.size()) * sizeof(int32_t);
}

}  // namespace

int run_threads(int requested, double step_flops) {
  if (requested > 0) return requested;
  return step_flops < kSmallStepFlops ? 1 : hardware_threads();
}

TrainSummary train(const RunConfig& requested, const std::string& out_dir,
                   const TrainOptions& options) {
  namespace fs = std::filesystem;
  RunConfig config = requested;
  resolve_and_validate(config);
  const TrainConfig& tc = config.train;
  const std::unique_ptr<Objective> objective = make_objective(config);
  const SequenceSpec sequence = objective->sequence();
  set_threads(run_threads(tc.threads, training_step_flops(config.model, sequence, tc.batch)));
  Transformer<float> model(config.model, sequence);
  model.initialize(tc.seed);
  AdamW<float> optimizer(model.layout(), tc);

  std::error_code error;
  fs::create_directories(out_dir, error);
  if (error)
    throw ConfigError("--out: cannot create directory " + out_dir + ": " + error.message());
  const fs::path dir(out_dir);
  write_file_atomically((dir / "config.yaml").string(), to_yaml(config));
  const fs::path metrics_path = dir / "metrics.csv";
  std::ofstream metrics(metrics_path, std::ios::trunc);
  if (!metrics) throw ConfigError("--out: cannot write " + metrics_path.string());
  metrics << "step,train_loss,lr,grad_norm\n";

  const int batch = tc.batch;
  const size_t outputs_size = static_cast<size_t>(batch) * sequence.tokens * model.output_width();
  std::vector<float> outputs(outputs_size), d_outputs(outputs_size);
  Batch data;
  std::vector<double> step_ms;
  step_ms.reserve(static_cast<size_t>(std::min<int64_t>(tc.steps, 1 << 20)));

  TrainSummary summary;
  summary.status = "done";
  summary.parameters = model.parameter_count();
  summary.attention_parameters = model.attention_parameter_count();
  summary.threads = current_threads();
  summary.trivial_mse = objective->squared_error() ? objective->trivial_loss() : NAN;

  std::ostream* log = options.log;
  ProgressBar progress(log != nullptr ? *log : std::cout, tc.steps, options.progress_bar);
  const auto start = std::chrono::steady_clock::now();
  double interval_loss = 0.0;
  int64_t interval_steps = 0;
  double last_lr = 0.0, last_grad_norm = 0.0, last_row_loss = NAN;

  auto emit_row = [&](int64_t steps_done) {
    MetricsRow row{steps_done, interval_loss / std::max<int64_t>(1, interval_steps), last_lr,
                   last_grad_norm};
    metrics << fmt::format("{},{:.9g},{:.9g},{:.9g}\n", row.step, row.train_loss, row.lr,
                           row.grad_norm);
    metrics.flush();
    last_row_loss = row.train_loss;
    if (options.on_metrics) options.on_metrics(row);
    if (log != nullptr) {
      const double elapsed = progress.elapsed_seconds();
      const std::string text =
          fmt::format("{}loss {:.5f} lr {:.2e} {:.1f} steps/s", options.log_prefix, row.train_loss,
                      row.lr, elapsed > 0 ? steps_done / elapsed : 0.0);
      progress.update(steps_done, text, steps_done == tc.steps);
    }
    interval_loss = 0.0;
    interval_steps = 0;
  };

  for (int64_t step = 0; step < tc.steps; ++step) {
    if (options.should_stop && options.should_stop()) {
      summary.status = "interrupted";
      if (interval_steps > 0) emit_row(step);
      break;
    }
    const auto step_start = std::chrono::steady_clock::now();
    objective->training_batch(tc.seed, static_cast<uint64_t>(step), batch, data);
    forward_batch(model, data, outputs.data());
    const double loss = objective->loss(data, outputs.data(), d_outputs.data());
    model.backward(d_outputs.data());
    const double grad_norm = gradient_norm(model.gradients());
    last_grad_norm = grad_norm;
    if (!std::isfinite(loss) || !std::isfinite(grad_norm)) {
      summary.status = "diverged";
      interval_loss += loss;
      ++interval_steps;
      emit_row(step + 1);
      summary.steps = step;
      break;
    }
    if (tc.clip > 0 && grad_norm > tc.clip) {
      const float factor = static_cast<float>(tc.clip / grad_norm);
      for (float& g : model.gradients()) g *= factor;
    }
    last_lr = learning_rate(tc, step);
    optimizer.step(model.parameters(), model.gradients(), last_lr);
    const auto step_end = std::chrono::steady_clock::now();
    step_ms.push_back(std::chrono::duration<double, std::milli>(step_end - step_start).count());
    interval_loss += loss;
    ++interval_steps;
    summary.steps = step + 1;
    if ((step + 1) % tc.log_every == 0 || step + 1 == tc.steps) {
      emit_row(step + 1);
    } else if (log != nullptr && options.progress_bar) {
      const double elapsed = progress.elapsed_seconds();
      progress.update(
          step + 1, fmt::format("{}loss {:.5f} lr {:.2e} {:.1f} steps/s", options.log_prefix, loss,
                                last_lr, elapsed > 0 ? (step + 1) / elapsed : 0.0));
    }
  }
  progress.finish();
  summary.final_train_loss = last_row_loss;
  summary.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (step_ms.size() > 3) step_ms.erase(step_ms.begin(), step_ms.begin() + 3);
  summary.ms_per_step = median_of(step_ms);

  Evaluation evaluation;
  summary.test_mse = NAN;
  if (summary.status == "done") {
    evaluation = objective->evaluate(model, tc.seed, tc.eval_batches, batch);
    for (const auto& [name, value] : evaluation.metrics)
      if (std::isfinite(value)) summary.final_metrics[name] = value;
    if (objective->squared_error()) summary.test_mse = evaluation.metric("test_mse");
    // The headline metric decides whether the trained model is usable.
    if (evaluation.metrics.empty() || !std::isfinite(evaluation.metrics.front().second))
      summary.status = "diverged";
  }
  for (const auto& [name, contents] : evaluation.files)
    write_file_atomically((dir / name).string(), contents);
  if ((summary.status == "done" || summary.status == "interrupted") && options.write_checkpoint)
    save_checkpoint((dir / "model.safetensors").string(), model, config);

  const double flops = training_step_flops(config.model, sequence, batch);
  nlohmann::ordered_json json = {{"status", summary.status}};
  if (objective->squared_error()) json["test_mse"] = finite_or_null(summary.test_mse);
  for (const auto& [name, value] : evaluation.metrics)
    if (name != "test_mse") json[name] = finite_or_null(value);
  if (objective->squared_error()) json["trivial_mse"] = summary.trivial_mse;
  json["trivial_loss"] = objective->trivial_loss();
  const nlohmann::ordered_json rest = {
      {"final_train_loss", finite_or_null(summary.final_train_loss)},
      {"steps", summary.steps},
      {"wall_seconds", summary.wall_seconds},
      {"ms_per_step", summary.ms_per_step},
      {"steps_per_second", summary.ms_per_step > 0 ? 1000.0 / summary.ms_per_step : 0.0},
      {"parameters", summary.parameters},
      {"attention_parameters", summary.attention_parameters},
      {"threads", summary.threads},
      {"kernel_isa", kernels::active_isa()},
      {"gflop_per_step", flops / 1e9},
      {"gflops_per_second", summary.ms_per_step > 0 ? flops / 1e6 / summary.ms_per_step : 0.0},
      {"peak_rss_mb", peak_rss_mb()},
      // What the run must hold: parameters, gradients, two AdamW moments,
      // activations and their gradients, and the batch buffers.
      {"model_memory_mb",
       static_cast<double>(4 * model.parameter_count() * sizeof(float) + model.activation_bytes() +
                           2 * outputs_size * sizeof(float) + batch_bytes(data)) /
           (1024.0 * 1024.0)},
  };
  json.update(rest);
  write_file_atomically((dir / "summary.json").string(), json.dump(2) + "\n");
  if (log != nullptr && !options.progress_bar && summary.status == "diverged")
    *log << options.log_prefix << "diverged at step " << summary.steps + 1 << "\n";
  return summary;
}

Evaluation evaluate_checkpoint(const std::string& run_dir, int batches) {
  LoadedRun run = load_run(run_dir);
  const std::unique_ptr<Objective> objective = make_objective(run.config);
  set_threads(run_threads(
      run.config.train.threads,
      training_step_flops(run.config.model, objective->sequence(), run.config.train.batch)));
  const int count = batches > 0 ? batches : run.config.train.eval_batches;
  return objective->evaluate(*run.model, run.config.train.seed, count, run.config.train.batch);
}

}  // namespace attnrank
