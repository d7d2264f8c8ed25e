// Running a sweep: every run of the shard that the database does not hold as
// finished, `jobs` at a time, each committed in its own transaction as it ends.
#include <fmt/core.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <exception>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "attnrank/config_io/config_io.h"
#include "attnrank/core/error.h"
#include "attnrank/core/resources.h"
#include "attnrank/core/threading.h"
#include "attnrank/experiment/results_store.h"
#include "attnrank/experiment/sweep.h"
#include "attnrank/nn/model.h"
#include "attnrank/train/objective.h"
#include "sweep_progress.h"

namespace attnrank {

namespace fs = std::filesystem;

namespace {

RunRecord base_record(const PlannedRun& run, const RunConfig& config, const std::string& dir,
                      const std::string& sweep) {
  RunRecord record;
  record.id = run.id;
  record.config_yaml = to_yaml(config);
  record.config = flat_config(config);
  record.run_dir = fs::absolute(dir).lexically_normal().string();
  record.sweep = sweep;
  return record;
}

void fill_summary(RunRecord& record, const TrainSummary& summary) {
  record.status = summary.status;
  record.test_mse = summary.test_mse;
  record.trivial_mse = summary.trivial_mse;
  record.final_train_loss = summary.final_train_loss;
  record.steps = summary.steps;
  record.wall_seconds = summary.wall_seconds;
  record.ms_per_step = summary.ms_per_step;
  record.parameters = summary.parameters;
  record.attention_parameters = summary.attention_parameters;
  record.threads = summary.threads;
  record.final_metrics.clear();
  for (const auto& [name, value] : summary.final_metrics)
    if (std::isfinite(value)) record.final_metrics[name] = value;
  if (std::isfinite(summary.test_mse)) record.final_metrics.emplace("test_mse", summary.test_mse);
  if (record.status != "done" && record.status != "diverged") {
    record.error = "train reported status '" + summary.status + "'";
    record.status = "failed";
  }
}

// A run that finished in its directory (summary.json is written last) but was not
// committed: the sweep died in between. Recording it saves retraining.
std::optional<RunRecord> recover(const PlannedRun& run, const std::string& dir,
                                 const std::string& sweep) {
  std::error_code error;
  if (!fs::exists(fs::path(dir) / "summary.json", error)) return std::nullopt;
  try {
    const RunConfig config = load_config((fs::path(dir) / "config.yaml").string(), {});
    if (run_identity(config) != run.id) return std::nullopt;
    const TrainSummary summary = read_summary(dir);
    if (summary.status != "done" && summary.status != "diverged") return std::nullopt;
    // A finished run wrote its weights before its summary: "done" without them is
    // a damaged directory, trained again rather than recorded.
    const fs::path weights = fs::path(dir) / "model.safetensors";
    if (summary.status == "done" &&
        (!fs::is_regular_file(weights, error) || fs::file_size(weights, error) == 0)) {
      // Its summary would make `train` report it finished: without it the run is
      // trained again (or resumed from its checkpoint).
      fs::remove(fs::path(dir) / "summary.json", error);
      return std::nullopt;
    }
    RunRecord record = base_record(run, config, dir, sweep);
    fill_summary(record, summary);
    record.metrics = read_metrics_csv(dir);
    return record;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::string describe(const RunRecord& record, const PlannedRun& run) {
  std::string text = run.id.substr(0, 8) + " " + run.label;
  if (record.status == "failed") return text + ": " + record.error;
  // Every final metric (test_mse for the point tasks), then the train loss.
  std::string metrics;
  for (const auto& [name, value] : record.final_metrics)
    metrics += fmt::format("{}{} {:.4g}", metrics.empty() ? ": " : ", ", name, value);
  if (metrics.empty()) metrics = ": no final metrics";
  return text + metrics + fmt::format(", train loss {:.4g}", record.final_train_loss);
}

// What one run's process holds besides its model: the binary, OpenBLAS and OpenMP
// buffers, the task's data. Peak RSS minus the model's estimated need, measured on
// 2026-12-04 (AMD EPYC): 10 MiB for configs/tiny.yaml, 25 MiB (1 thread) and 31 MiB
// (2 threads) for reference configuration 5; about 7 MiB more per thread.
constexpr double kProcessOverheadBytes = 24.0 * 1024 * 1024;
constexpr double kThreadOverheadBytes = 8.0 * 1024 * 1024;

// What a run's training needs to size it: one per model, task and batch (runs that
// differ in seeds, rates or steps need the same memory).
struct SizedRun {
  ModelConfig model;
  SequenceSpec sequence;
  int batch;
};

// The sweep's distinct sizes. A run whose task cannot be set up is left out (it then
// fails on its own, with the task's error in its log); a text task loads its corpus.
std::vector<SizedRun> distinct_sizes(const std::vector<PlannedRun>& runs) {
  std::vector<SizedRun> sizes;
  std::set<std::string> seen;
  for (const PlannedRun& run : runs) {
    RunConfig sized;
    sized.model = run.config.model;
    sized.task = run.config.task;
    sized.train.batch = run.config.train.batch;
    if (!seen.insert(to_yaml(sized)).second) continue;
    try {
      sizes.push_back(
          {run.config.model, make_objective(run.config)->sequence(), run.config.train.batch});
    } catch (const std::exception&) {
    }
  }
  return sizes;
}

}  // namespace

JobPlan plan_jobs(const std::vector<PlannedRun>& runs, int threads) {
  const int total_threads = threads > 0 ? threads : hardware_threads();
  const std::vector<SizedRun> sizes = distinct_sizes(runs);
  const auto threads_per_run = [total_threads](int jobs) {
    return std::max(1, total_threads / jobs);
  };
  // The largest run's parameters, optimiser state and activations (what train
  // checks) at the thread count each run gets when `jobs` run at a time: a small
  // model's step keeps a gradient copy per thread (training_shards).
  const auto largest = [&](int jobs) {
    double bytes = 0.0;
    for (const SizedRun& size : sizes)
      bytes = std::max(bytes, training_memory_bytes(size.model, size.sequence, size.batch,
                                                    threads_per_run(jobs)));
    return bytes;
  };
  JobPlan plan;
  plan.jobs = total_threads;
  const MemoryBudget budget = total_memory();
  if (!sizes.empty() && std::isfinite(budget.bytes)) {
    const auto need = [&](int jobs) {
      return jobs *
             (largest(jobs) + kProcessOverheadBytes + kThreadOverheadBytes * threads_per_run(jobs));
    };
    while (plan.jobs > 1 && need(plan.jobs) > budget.bytes) --plan.jobs;
    const double planned_bytes = need(plan.jobs);
    const double mebibytes = budget.bytes / (1024.0 * 1024.0);
    const double run_mebibytes = planned_bytes / plan.jobs / (1024.0 * 1024.0);
    if (planned_bytes > budget.bytes)
      plan.reason = fmt::format("memory: {:.0f} MiB ({}) cannot hold one run of {:.0f} MiB",
                                mebibytes, budget.limit, run_mebibytes);
    else if (plan.jobs < total_threads)
      plan.reason = fmt::format("memory: {:.0f} MiB ({}) holds {} runs of {:.0f} MiB", mebibytes,
                                budget.limit, plan.jobs, run_mebibytes);
  }
  plan.threads_per_run = threads_per_run(plan.jobs);
  return plan;
}

SweepOutcome run_sweep(const std::vector<PlannedRun>& runs, ResultsStore& store,
                       const Trainer& trainer, const SweepOptions& options) {
  SweepOutcome outcome;
  const std::vector<std::string> finished_ids = store.finished_ids();
  const std::set<std::string> finished(finished_ids.begin(), finished_ids.end());
  std::vector<const PlannedRun*> pending;
  for (const PlannedRun& run : runs) {
    if (!in_shard(run.id, options.shard)) continue;
    ++outcome.total;
    if (finished.contains(run.id)) {
      ++outcome.skipped;
      continue;
    }
    const std::string dir = (fs::path(options.runs_dir) / run.id).string();
    if (auto record = recover(run, dir, options.sweep_name)) {
      store.record(*record);
      ++outcome.recovered;
      continue;
    }
    pending.push_back(&run);
  }

  JobPlan plan;
  if (options.jobs == 0 && !pending.empty()) {
    plan = plan_jobs(runs, options.threads);  // the whole sweep's: the same in every shard
  } else {
    plan.jobs = std::max(1, options.jobs);
    const int total_threads = options.threads > 0 ? options.threads : hardware_threads();
    plan.threads_per_run = std::max(1, total_threads / plan.jobs);
  }
  // Thread counts follow the plan, not what is left, so that a resumed sweep gives
  // each run the same thread count (and results) as an uninterrupted one.
  const int jobs = std::clamp<int>(plan.jobs, 1, std::max<int>(1, pending.size()));
  const int threads_per_run = plan.threads_per_run;
  std::string why = plan.reason;
  if (jobs < plan.jobs)
    why = fmt::format("{}the plan is {} at a time, fewer runs to train{}",
                      why.empty() ? "" : why + "; ", plan.jobs,
                      options.jobs == 0 ? "; --jobs and --threads choose" : "");
  if (options.log && !pending.empty())
    *options.log << fmt::format(
                        "sweep {}: {} runs, {} finished before, {} to train, {} at a time with {} "
                        "thread{} each{}\n",
                        options.sweep_name, outcome.total, outcome.skipped + outcome.recovered,
                        pending.size(), jobs, threads_per_run, threads_per_run == 1 ? "" : "s",
                        why.empty() ? "" : " (" + why + ")")
                 << std::flush;
  SweepProgress progress(options.log, options.progress_bar, outcome.total,
                         outcome.skipped + outcome.recovered, jobs);

  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::atomic<bool> left_untouched{false};  // runs not started because of a stop
  std::mutex store_mutex;
  std::exception_ptr store_error;

  auto work = [&] {
    for (;;) {
      const size_t index = next++;
      if (index >= pending.size()) return;
      if (stop || sweep_stop_requested()) {
        left_untouched = true;
        return;
      }
      const PlannedRun& run = *pending[index];
      const std::string dir = (fs::path(options.runs_dir) / run.id).string();
      RunConfig config = run.config;
      config.train.threads = threads_per_run;
      RunRecord record = base_record(run, config, dir, options.sweep_name);
      progress.started();
      const auto start = std::chrono::steady_clock::now();
      try {
        // An earlier attempt of this run (its directory is named by the run's
        // identity) resumes from its checkpoint; train refuses anything else there.
        fs::create_directories(dir);
        fill_summary(record, trainer(config, dir));
        record.metrics = read_metrics_csv(dir);
      } catch (const RunInterrupted&) {
        stop = true;
        progress.interrupted();
        continue;
      } catch (const std::exception& error) {
        record.status = "failed";
        record.error = error.what();
      }
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (record.status == "failed") record.wall_seconds = seconds;
      {
        std::lock_guard lock(store_mutex);
        if (store_error) continue;
        try {
          store.record(record);
        } catch (...) {
          store_error = std::current_exception();
          stop = true;
          progress.interrupted();
          continue;
        }
        ++(record.status == "done"       ? outcome.done
           : record.status == "diverged" ? outcome.diverged
                                         : outcome.failed);
      }
      progress.finished(record.status, describe(record, run), seconds);
    }
  };
  // An error outside a run's own try (out of memory while preparing its record)
  // stops the sweep like a database error instead of escaping the thread.
  auto worker = [&] {
    try {
      work();
    } catch (...) {
      std::lock_guard lock(store_mutex);
      if (!store_error) store_error = std::current_exception();
      stop = true;
    }
  };
  std::vector<std::thread> workers;
  for (int j = 0; j < jobs; ++j) workers.emplace_back(worker);
  for (auto& thread : workers) thread.join();
  if (!pending.empty()) progress.finish();
  outcome.interrupted = (stop || left_untouched) && !store_error;
  if (store_error) std::rethrow_exception(store_error);
  return outcome;
}

}  // namespace attnrank
