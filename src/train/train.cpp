#include "attnrank/train/train.h"

#include <fmt/core.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

#include "attnrank/config_io/config_io.h"
#include "attnrank/core/error.h"
#include "attnrank/core/files.h"
#include "attnrank/core/progress.h"
#include "attnrank/core/resources.h"
#include "attnrank/core/threading.h"
#include "attnrank/kernels/kernels.h"
#include "attnrank/nn/model.h"
#include "attnrank/train/checkpoint.h"
#include "attnrank/train/objective.h"
#include "attnrank/train/optimizer.h"
#include "attnrank/train/run_directory.h"
#include "metrics_log.h"

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
  RunConfig config = requested;
  resolve_and_validate(config);
  const TrainConfig& tc = config.train;
  const std::unique_ptr<Objective> objective = make_objective(config);
  const SequenceSpec sequence = objective->sequence();
  // Before anything is allocated or created: a run that cannot fit is refused with
  // what it needs and what there is, not ended by std::bad_alloc halfway.
  const int threads =
      run_threads(tc.threads, training_step_flops(config.model, sequence, tc.batch));
  const double model_bytes = training_memory_bytes(config.model, sequence, tc.batch, threads);
  check_memory(model_bytes,
               "training this model (parameters, optimiser state and one batch of activations)",
               "lower train.batch or the model size");
  check_thread_address_space(threads, "train.threads", model_bytes);
  set_threads(threads);
  Transformer<float> model(config.model, sequence);
  model.initialize(tc.model_seed());
  AdamW<float> optimizer(model.layout(), tc);

  const RunStart start = prepare_run_directory(out_dir, config, options.restart);
  if (start.kind == RunStart::Kind::kFinished) {
    if (options.log != nullptr)
      *options.log << options.log_prefix << out_dir << " holds this run, finished (status "
                   << start.finished.status << "); nothing to train (--restart trains it again)\n";
    return start.finished;
  }
  std::optional<TrainState> resumed;
  if (start.kind == RunStart::Kind::kResume)
    resumed = read_train_state(out_dir, config, model.parameters().size());
  write_file_atomically(run_file(out_dir, run_files::kConfig), to_yaml(config));
  const std::vector<std::string> validation_names =
      tc.eval_every > 0 ? objective->validation_names() : std::vector<std::string>{};
  MetricsFile metrics(run_file(out_dir, run_files::kMetrics),
                      resumed ? resumed->metrics_csv : metrics_header(validation_names));
  std::optional<EventFileWriter> events;
  if (tc.tensorboard) events.emplace(out_dir);

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
  summary.squared_error = objective->squared_error();
  summary.trivial_mse = summary.squared_error ? objective->trivial_loss() : NAN;

  // The loop's state between steps: what a checkpoint saves besides the arenas.
  double interval_loss = 0.0;
  int64_t interval_steps = 0;
  double last_lr = 0.0, last_grad_norm = 0.0, last_row_loss = NAN;
  BestEpochLoss best_epoch(tc.epoch_batches);
  int64_t first_step = 0;
  if (resumed) {
    std::copy(resumed->parameters.begin(), resumed->parameters.end(), model.parameters().begin());
    optimizer.restore(resumed->first_moment, resumed->second_moment, resumed->optimizer_steps);
    auto loop = [&](const char* name) {
      const auto found = resumed->loop.find(name);
      if (found == resumed->loop.end())
        throw FormatError(run_file(out_dir, run_files::kTrainState) + ": no loop." + name +
                          " (--restart starts the run over)");
      return found->second;
    };
    interval_loss = loop("interval_loss");
    interval_steps = static_cast<int64_t>(loop("interval_steps"));
    last_lr = loop("last_lr");
    last_grad_norm = loop("last_grad_norm");
    last_row_loss = loop("last_row_loss");
    best_epoch.restore(resumed->loop);
    first_step = resumed->step;
    summary.steps = first_step;
    summary.resumed_from_step = first_step;
    resumed.reset();  // its arenas are copied; free them
  }

  std::ostream* log = options.log;
  if (log != nullptr && summary.resumed_from_step >= 0)
    *log << options.log_prefix << "resuming " << out_dir << " at step " << first_step << "/"
         << tc.steps << "\n";
  ProgressBar progress(log != nullptr ? *log : std::cout, tc.steps, options.progress_bar,
                       first_step);
  const auto start_time = std::chrono::steady_clock::now();
  auto last_checkpoint = start_time;

  auto save_state = [&](int64_t steps_done) {
    const auto begin = std::chrono::steady_clock::now();
    TrainState state;
    state.step = steps_done;
    state.parameters = model.parameters();
    state.first_moment = optimizer.first_moment();
    state.second_moment = optimizer.second_moment();
    state.optimizer_steps = optimizer.steps_taken();
    state.metrics_csv = metrics.contents();
    state.loop = {{"interval_loss", interval_loss},
                  {"interval_steps", static_cast<double>(interval_steps)},
                  {"last_lr", last_lr},
                  {"last_grad_norm", last_grad_norm},
                  {"last_row_loss", last_row_loss}};
    best_epoch.save(state.loop);
    const int64_t bytes = write_train_state(out_dir, config, state);
    last_checkpoint = std::chrono::steady_clock::now();
    ++summary.checkpoints_written;
    summary.checkpoint_mb = static_cast<double>(bytes) / (1024.0 * 1024.0);
    summary.checkpoint_seconds += std::chrono::duration<double>(last_checkpoint - begin).count();
  };
  auto checkpoint_due = [&](int64_t steps_done) {
    const CheckpointInterval& every = tc.checkpoint_every;
    if (steps_done >= tc.steps) return false;  // the run ends now anyway
    if (every.steps > 0) return steps_done % every.steps == 0;
    if (every.seconds <= 0) return false;
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - last_checkpoint)
               .count() >= every.seconds;
  };

  std::vector<double> validation_ms;
  // Held-out metrics for the row at `steps_done`, when it has an evaluation.
  auto validate_at = [&](int64_t steps_done) {
    if (!evaluates_at(tc, steps_done)) return std::vector<double>{};
    const auto begin = std::chrono::steady_clock::now();
    std::vector<double> values = objective->validate(model, tc.seed, tc.eval_batches, batch);
    validation_ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - begin)
            .count());
    return values;
  };

  auto emit_row = [&](int64_t steps_done, bool validate) {
    MetricsRow row{steps_done, interval_loss / std::max<int64_t>(1, interval_steps), last_lr,
                   last_grad_norm, validate ? validate_at(steps_done) : std::vector<double>{}};
    metrics.append(format_metrics_row(row, validation_names.size()));
    if (events) events->add_scalars(row.step, tensorboard_scalars(row, validation_names));
    last_row_loss = row.train_loss;
    if (options.on_metrics) options.on_metrics(row);
    if (log != nullptr) {
      std::string text = fmt::format("{}loss {:.5f} lr {:.2e} {:.1f} steps/s", options.log_prefix,
                                     row.train_loss, row.lr, progress.steps_per_second(steps_done));
      if (!row.validation.empty())
        text += fmt::format(" {} {:.5f}", validation_names.front(), row.validation.front());
      progress.update(steps_done, text, steps_done == tc.steps);
    }
    interval_loss = 0.0;
    interval_steps = 0;
  };

  for (int64_t step = first_step; step < tc.steps; ++step) {
    if (options.before_step) options.before_step(step);
    if (options.should_stop && options.should_stop()) {
      summary.status = "interrupted";
      // The checkpoint holds the loop as it is, so a resumed run is the same run;
      // the partial row after it is for the reader of this stopped run only (a
      // resumed run rewrites metrics.csv from the checkpoint).
      save_state(step);
      if (interval_steps > 0) emit_row(step, false);
      break;
    }
    const auto step_start = std::chrono::steady_clock::now();
    objective->training_batch(tc.seed, training_batch_index(tc, step), batch, data);
    forward_batch(model, data, outputs.data());
    const double loss = objective->loss(data, outputs.data(), d_outputs.data());
    model.backward(d_outputs.data());
    const double grad_norm = gradient_norm(model.gradients());
    last_grad_norm = grad_norm;
    if (!std::isfinite(loss) || !std::isfinite(grad_norm)) {
      summary.status = "diverged";
      interval_loss += loss;
      ++interval_steps;
      emit_row(step + 1, false);
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
    best_epoch.add(loss);
    summary.steps = step + 1;
    if ((step + 1) % tc.log_every == 0 || step + 1 == tc.steps) {
      emit_row(step + 1, true);
    } else if (log != nullptr && options.progress_bar) {
      progress.update(
          step + 1, fmt::format("{}loss {:.5f} lr {:.2e} {:.1f} steps/s", options.log_prefix, loss,
                                last_lr, progress.steps_per_second(step + 1)));
    }
    if (checkpoint_due(step + 1)) save_state(step + 1);
  }
  progress.finish();
  summary.final_train_loss = last_row_loss;
  summary.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time).count();
  if (step_ms.size() > 3) step_ms.erase(step_ms.begin(), step_ms.begin() + 3);
  summary.ms_per_step = median_of(step_ms);
  if (!validation_ms.empty()) summary.ms_per_validation = median_of(validation_ms);

  Evaluation evaluation;
  summary.test_mse = NAN;
  if (summary.status == "done") {
    evaluation = objective->evaluate(model, tc.seed, tc.eval_batches, batch);
    for (const auto& [name, value] : evaluation.metrics)
      if (std::isfinite(value)) summary.final_metrics[name] = value;
    if (summary.squared_error) summary.test_mse = evaluation.metric("test_mse");
    // The headline metric decides whether the trained model is usable.
    if (evaluation.metrics.empty() || !std::isfinite(evaluation.metrics.front().second))
      summary.status = "diverged";
  }
  // The authors' statistic, for replayed data (docs/fidelity.md).
  if (tc.data == DataMode::kReplay && std::isfinite(best_epoch.best()))
    summary.final_metrics[kBestEpochTrainLoss] = best_epoch.best();
  if (events && !evaluation.metrics.empty()) {
    Scalars finals;
    for (const auto& [name, value] : evaluation.metrics)
      finals.emplace_back(tensorboard_tag(name), static_cast<float>(value));
    events->add_scalars(summary.steps, finals);
  }
  for (const auto& [name, contents] : evaluation.files)
    write_file_atomically(run_file(out_dir, name.c_str()), contents);
  if ((summary.status == "done" || summary.status == "interrupted") && options.write_checkpoint)
    save_checkpoint(run_file(out_dir, run_files::kModel), model, config);

  summary.evaluation = evaluation.metrics;
  summary.trivial_loss = objective->trivial_loss();
  summary.kernel_isa = kernels::active_isa();
  summary.gflop_per_step = training_step_flops(config.model, sequence, batch) / 1e9;
  summary.peak_rss_mb = peak_rss_mb();
  // What the run must hold: parameters, gradients, two AdamW moments, activations
  // and their gradients, and the batch buffers.
  summary.model_memory_mb =
      static_cast<double>(4 * model.parameter_count() * sizeof(float) + model.activation_bytes() +
                          2 * outputs_size * sizeof(float) + batch_bytes(data)) /
      (1024.0 * 1024.0);
  write_summary(out_dir, summary);
  // Ended (not stopped): the checkpoint has served. A kill before this line leaves
  // a finished summary beside it, which a rerun reads as finished.
  if (summary.status != "interrupted") remove_train_state(out_dir);
  if (log != nullptr && !options.progress_bar && summary.status == "diverged")
    *log << options.log_prefix << "diverged at step " << summary.steps + 1 << "\n";
  return summary;
}

Evaluation evaluate_checkpoint(const std::string& run_dir, int batches) {
  LoadedRun run = load_run(run_dir);
  const std::unique_ptr<Objective> objective = make_objective(run.config);
  const int threads = run_threads(
      run.config.train.threads,
      training_step_flops(run.config.model, objective->sequence(), run.config.train.batch));
  check_thread_address_space(threads, "train.threads");
  set_threads(threads);
  const int count = batches > 0 ? batches : run.config.train.eval_batches;
  return objective->evaluate(*run.model, run.config.train.seed, count, run.config.train.batch);
}

}  // namespace attnrank
