// The sweep runner with a fake trainer: resume, failures, parallel jobs, shards and
// merge, recovery from run directories, and a sweep killed with SIGKILL.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "attnrank/core/error.h"
#include "attnrank/experiment/results_store.h"
#include "attnrank/experiment/sweep.h"
#include "attnrank/nn/model.h"
#include "attnrank/train/objective.h"
#include "experiment/sweep_progress.h"
#include "sweep_fixtures.h"

using namespace attnrank;
using attnrank::testing::fake_train;
using attnrank::testing::fresh_dir;
using attnrank::testing::kSmallSpec;
namespace fs = std::filesystem;

namespace {

std::vector<PlannedRun> small_runs() {
  return expand_sweep(parse_sweep_spec(kSmallSpec, "small.yaml"));
}

SweepOptions options_for(const fs::path& dir) {
  SweepOptions options;
  options.runs_dir = (dir / "runs").string();
  options.sweep_name = "small";
  options.threads = 1;
  return options;
}

// Counts its calls; fails or diverges the runs it is told to.
struct CountingTrainer {
  std::atomic<int> calls{0};
  std::set<int64_t> failing_heads, diverging_heads;
  std::mutex mutex;
  std::vector<int> threads_seen;

  Trainer trainer() {
    return [this](const RunConfig& config, const std::string& dir) {
      ++calls;
      {
        std::lock_guard lock(mutex);
        threads_seen.push_back(config.train.threads);
      }
      if (failing_heads.contains(config.model.heads)) throw std::runtime_error("out of luck");
      TrainSummary summary = fake_train(config, dir);
      if (diverging_heads.contains(config.model.heads)) {
        summary.status = "diverged";
        summary.test_mse = NAN;
      }
      return summary;
    };
  }
};

}  // namespace

TEST(SweepRunner, TrainsEveryRunOnceAndResumesWithoutRetraining) {
  const auto dir = fresh_dir("runner_resume");
  const auto runs = small_runs();
  ResultsStore store((dir / "results.db").string(), ResultsStore::Mode::kWrite);
  CountingTrainer counting;
  const SweepOutcome first = run_sweep(runs, store, counting.trainer(), options_for(dir));
  EXPECT_EQ(first.total, 9);
  EXPECT_EQ(first.done, 9);
  EXPECT_EQ(counting.calls, 9);
  const auto recorded = store.runs(true);
  ASSERT_EQ(recorded.size(), 9u);
  for (const RunRecord& run : recorded) {
    EXPECT_EQ(run.status, "done");
    EXPECT_EQ(run.metrics.size(), 2u) << "the metrics curve is kept";
    EXPECT_TRUE(fs::exists(fs::path(run.run_dir) / "summary.json")) << run.run_dir;
    EXPECT_EQ(fs::path(run.run_dir).filename(), run.id);
    EXPECT_EQ(run.sweep, "small");
  }
  const SweepOutcome second = run_sweep(runs, store, counting.trainer(), options_for(dir));
  EXPECT_EQ(second.skipped, 9);
  EXPECT_EQ(second.done, 0);
  EXPECT_EQ(counting.calls, 9) << "finished runs are not trained again";
}

TEST(SweepRunner, FailedRunsAreRecordedAndRetriedDivergedRunsAreNot) {
  const auto dir = fresh_dir("runner_failed");
  const auto runs = small_runs();
  ResultsStore store((dir / "results.db").string(), ResultsStore::Mode::kWrite);
  CountingTrainer counting;
  counting.failing_heads = {2};
  counting.diverging_heads = {4};
  const SweepOutcome first = run_sweep(runs, store, counting.trainer(), options_for(dir));
  EXPECT_EQ(first.done, 3);
  EXPECT_EQ(first.failed, 3);
  EXPECT_EQ(first.diverged, 3);
  for (const RunRecord& run : store.runs()) {
    if (run.value("model.heads") == "2") {
      EXPECT_EQ(run.status, "failed");
      EXPECT_EQ(run.error, "out of luck");
    }
    if (run.value("model.heads") == "4") {
      EXPECT_EQ(run.status, "diverged");
    }
  }
  counting.failing_heads.clear();
  counting.calls = 0;
  const SweepOutcome second = run_sweep(runs, store, counting.trainer(), options_for(dir));
  EXPECT_EQ(counting.calls, 3) << "only the failed runs run again";
  EXPECT_EQ(second.done, 3);
  EXPECT_EQ(store.finished_ids().size(), 9u);
}

TEST(SweepRunner, ParallelJobsShareTheThreads) {
  const auto dir = fresh_dir("runner_jobs");
  ResultsStore store((dir / "results.db").string(), ResultsStore::Mode::kWrite);
  CountingTrainer counting;
  SweepOptions options = options_for(dir);
  options.jobs = 3;
  options.threads = 6;
  const SweepOutcome outcome = run_sweep(small_runs(), store, counting.trainer(), options);
  EXPECT_EQ(outcome.done, 9);
  EXPECT_EQ(counting.calls, 9);
  for (int threads : counting.threads_seen) EXPECT_EQ(threads, 2);
  EXPECT_EQ(store.finished_ids().size(), 9u);
}

// Without --jobs: one run per thread, as many as memory holds, whatever the
// number of runs; the threads shared out when memory bounds the runs.
TEST(SweepRunner, JobPlanGivesEachThreadARunWithinTheMemoryBudget) {
  const std::vector<PlannedRun> runs = small_runs();  // 9 runs of a few KiB each
  setenv("ATTNRANK_MEMORY_MB", "100000", 1);
  JobPlan plan = plan_jobs(runs, 4);
  EXPECT_EQ(plan.jobs, 4);
  EXPECT_EQ(plan.threads_per_run, 1);
  EXPECT_EQ(plan.reason, "");
  // Not the number of runs: one run gets the thread count it gets in the sweep.
  plan = plan_jobs({runs.front()}, 20);
  EXPECT_EQ(plan.jobs, 20);
  EXPECT_EQ(plan.threads_per_run, 1);
  // Each run: 24 MiB of process, 8 MiB per thread and its model (under 1 MiB).
  // 170 MiB hold five runs of one thread (six would need 192); 130 MiB hold three
  // runs of two threads (four would need 160).
  setenv("ATTNRANK_MEMORY_MB", "170", 1);
  plan = plan_jobs(runs, 8);
  EXPECT_EQ(plan.jobs, 5);
  EXPECT_EQ(plan.threads_per_run, 1);
  EXPECT_NE(plan.reason.find("memory: 170 MiB (ATTNRANK_MEMORY_MB) holds 5 runs of 32 MiB"),
            std::string::npos)
      << plan.reason;
  setenv("ATTNRANK_MEMORY_MB", "130", 1);
  plan = plan_jobs(runs, 8);
  EXPECT_EQ(plan.jobs, 3);
  EXPECT_EQ(plan.threads_per_run, 2);
  EXPECT_NE(plan.reason.find("memory: 130 MiB (ATTNRANK_MEMORY_MB) holds 3 runs of 40 MiB"),
            std::string::npos)
      << plan.reason;
  // Too little for one run: one at a time, said so (each run then checks for itself).
  setenv("ATTNRANK_MEMORY_MB", "20", 1);
  plan = plan_jobs(runs, 2);
  EXPECT_EQ(plan.jobs, 1);
  EXPECT_NE(plan.reason.find("20 MiB (ATTNRANK_MEMORY_MB) cannot hold one run of 40 MiB"),
            std::string::npos)
      << plan.reason;
  // A budget that is not a positive number is a usage error, not a silent 0.
  for (const char* bad : {"0", "-5", "abc", "nan", "12x"}) {
    setenv("ATTNRANK_MEMORY_MB", bad, 1);
    EXPECT_THROW(plan_jobs(runs, 2), ConfigError) << bad;
  }
  unsetenv("ATTNRANK_MEMORY_MB");
}

// The memory a run needs is estimated at the threads it gets: a small model's step
// keeps a gradient copy per further thread (training_shards), which the plan counts
// when it gives one run every thread.
TEST(SweepRunner, JobPlanSizesRunsAtTheirThreadCount) {
  const std::vector<PlannedRun> runs = expand_sweep(parse_sweep_spec(R"(
name: mid
base:
  model: {dim: 128, ffn: 512, layers: 2}
  task: {points: 8}
  train: {steps: 10, batch: 16}
grid:
  train.seed: [0]
)",
                                                                     "mid.yaml"));
  ASSERT_EQ(runs.size(), 1u);
  const RunConfig& config = runs.front().config;
  const SequenceSpec sequence = make_objective(config)->sequence();
  const double one_thread = training_memory_bytes(config.model, sequence, config.train.batch, 1);
  const double eight_threads = training_memory_bytes(config.model, sequence, config.train.batch, 8);
  ASSERT_GT(eight_threads - one_thread, 10.0 * 1024 * 1024) << "seven gradient copies";
  // Too little memory for even one run: the plan runs one, with all 8 threads, and
  // says what that run needs (24 MiB of process, 8 MiB per thread, its model at 8).
  setenv("ATTNRANK_MEMORY_MB", "20", 1);
  const JobPlan plan = plan_jobs(runs, 8);
  unsetenv("ATTNRANK_MEMORY_MB");
  EXPECT_EQ(plan.jobs, 1);
  EXPECT_EQ(plan.threads_per_run, 8);
  const double need_mib = eight_threads / (1024.0 * 1024.0) + 24 + 8 * 8;
  EXPECT_NE(plan.reason.find(fmt::format("cannot hold one run of {:.0f} MiB", need_mib)),
            std::string::npos)
      << plan.reason;
}

// The plan is the sweep's: a shard, a resumed sweep or one with most runs done
// gives its runs the same threads as the whole sweep.
TEST(SweepRunner, WithoutJobsEveryRunGetsThePlansThreadsWhateverIsLeft) {
  const auto dir = fresh_dir("runner_planned_jobs");
  setenv("ATTNRANK_MEMORY_MB", "100000", 1);
  std::ostringstream log;
  {
    ResultsStore store((dir / "results.db").string(), ResultsStore::Mode::kWrite);
    CountingTrainer counting;
    SweepOptions options = options_for(dir);
    options.jobs = 0;
    options.threads = 4;
    options.shard = Shard{0, 3};
    run_sweep(small_runs(), store, counting.trainer(), options);
    options.shard = Shard{};
    options.log = &log;
    const SweepOutcome outcome = run_sweep(small_runs(), store, counting.trainer(), options);
    EXPECT_EQ(outcome.skipped + outcome.done, 9);
    EXPECT_EQ(counting.calls, 9);
    for (int threads : counting.threads_seen) EXPECT_EQ(threads, 1);
  }
  {
    // 4 threads, 4 runs per the plan; here only the last of the 9 is left.
    ResultsStore store((dir / "last.db").string(), ResultsStore::Mode::kWrite);
    CountingTrainer counting;
    SweepOptions options = options_for(dir / "last");
    options.jobs = 0;
    options.threads = 4;
    const auto runs = small_runs();
    run_sweep({runs.begin(), runs.end() - 1}, store, counting.trainer(), options);
    std::ostringstream last_log;
    options.log = &last_log;
    run_sweep(runs, store, counting.trainer(), options);
    EXPECT_EQ(counting.threads_seen.back(), 1);
    EXPECT_NE(last_log.str().find("1 at a time with 1 thread each (the plan is 4 at a time, fewer "
                                  "runs to train; --jobs and --threads choose)"),
              std::string::npos)
        << last_log.str();
  }
  unsetenv("ATTNRANK_MEMORY_MB");
}

TEST(SweepRunner, ShardsMergeIntoTheWholeSweep) {
  const auto dir = fresh_dir("runner_shards");
  const auto runs = small_runs();
  CountingTrainer counting;
  int total = 0;
  for (int index = 0; index < 3; ++index) {
    ResultsStore shard((dir / ("shard" + std::to_string(index) + ".db")).string(),
                       ResultsStore::Mode::kWrite);
    SweepOptions options = options_for(dir);
    options.shard = {index, 3};
    total += run_sweep(runs, shard, counting.trainer(), options).total;
  }
  EXPECT_EQ(total, 9);
  EXPECT_EQ(counting.calls, 9);
  ResultsStore merged((dir / "merged.db").string(), ResultsStore::Mode::kWrite);
  for (int index = 0; index < 3; ++index)
    merged.merge_from(ResultsStore((dir / ("shard" + std::to_string(index) + ".db")).string(),
                                   ResultsStore::Mode::kRead));
  EXPECT_EQ(merged.finished_ids().size(), 9u);
  counting.calls = 0;
  EXPECT_EQ(run_sweep(runs, merged, counting.trainer(), options_for(dir)).skipped, 9);
  EXPECT_EQ(counting.calls, 0);
}

TEST(SweepRunner, FinishedRunDirectoriesAreRecoveredWithoutTraining) {
  const auto dir = fresh_dir("runner_recover");
  const auto runs = small_runs();
  // A run that finished on disk but whose commit never happened.
  const std::string run_dir = (dir / "runs" / runs[4].id).string();
  fs::create_directories(run_dir);
  fake_train(runs[4].config, run_dir);
  // A run directory cut short: no summary.json.
  const std::string partial = (dir / "runs" / runs[5].id).string();
  fs::create_directories(partial);
  std::ofstream(partial + "/metrics.csv") << "step,train_loss,lr,grad_norm\n10,0.5,0.01,1\n";

  ResultsStore store((dir / "results.db").string(), ResultsStore::Mode::kWrite);
  CountingTrainer counting;
  const SweepOutcome outcome = run_sweep(runs, store, counting.trainer(), options_for(dir));
  EXPECT_EQ(outcome.recovered, 1);
  EXPECT_EQ(counting.calls, 8);
  EXPECT_EQ(store.find(runs[4].id, true)->metrics.size(), 2u);
  EXPECT_EQ(store.find(runs[5].id, true)->metrics.size(), 2u) << "the partial run was redone";
}

TEST(SweepRunner, AnInterruptedRunIsNotRecordedAndStopsTheSweep) {
  const auto dir = fresh_dir("runner_interrupt");
  ResultsStore store((dir / "results.db").string(), ResultsStore::Mode::kWrite);
  int calls = 0;
  Trainer trainer = [&](const RunConfig& config, const std::string& run_dir) {
    if (++calls == 3) throw RunInterrupted("stopped by signal 2");
    return fake_train(config, run_dir);
  };
  const SweepOutcome outcome = run_sweep(small_runs(), store, trainer, options_for(dir));
  EXPECT_TRUE(outcome.interrupted);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(store.runs().size(), 2u);
}

TEST(SweepRunner, KilledSweepLosesNoFinishedRunAndResumes) {
  const auto dir = fresh_dir("runner_kill");
  const std::string database = (dir / "results.db").string();
  const fs::path marker = dir / "third_run_started";
  const auto runs = small_runs();
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The sweep: two runs finish, the third hangs until the parent kills us.
    try {
      ResultsStore store(database, ResultsStore::Mode::kWrite);
      int calls = 0;
      Trainer trainer = [&](const RunConfig& config, const std::string& run_dir) {
        if (++calls == 3) {
          std::ofstream(run_dir + "/metrics.csv") << "step,train_loss,lr,grad_norm\n1,1,1,1\n";
          std::ofstream{marker};
          for (;;) pause();
        }
        return fake_train(config, run_dir);
      };
      run_sweep(runs, store, trainer, options_for(dir));
    } catch (...) {
    }
    _exit(0);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!fs::exists(marker) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(fs::exists(marker)) << "the child sweep never reached its third run";
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));

  {
    ResultsStore reader(database, ResultsStore::Mode::kRead);  // intact and readable
    EXPECT_EQ(reader.finished_ids().size(), 2u);
  }
  ResultsStore store(database, ResultsStore::Mode::kWrite);  // the lock died with the child
  CountingTrainer counting;
  const SweepOutcome outcome = run_sweep(runs, store, counting.trainer(), options_for(dir));
  EXPECT_EQ(outcome.skipped, 2);
  EXPECT_EQ(counting.calls, 7);
  EXPECT_EQ(store.finished_ids().size(), 9u);
  EXPECT_EQ(store.find(runs[2].id, true)->metrics.size(), 2u) << "the killed run was redone";
}

TEST(SweepRunner, ProgressLinesWhenNotATerminal) {
  const auto dir = fresh_dir("runner_progress");
  ResultsStore store((dir / "results.db").string(), ResultsStore::Mode::kWrite);
  CountingTrainer counting;
  std::ostringstream log;
  SweepOptions options = options_for(dir);
  options.log = &log;
  run_sweep(small_runs(), store, counting.trainer(), options);
  const std::string text = log.str();
  EXPECT_EQ(text.find('\r'), std::string::npos);
  EXPECT_NE(text.find("[1/9] done"), std::string::npos) << text;
  EXPECT_NE(text.find("[9/9] done"), std::string::npos) << text;
  EXPECT_NE(text.find("ETA"), std::string::npos) << text;
  EXPECT_NE(text.find("model.heads=4 train.seed=2"), std::string::npos) << text;
}

TEST(SweepRunner, ReadSummaryCollectsNamedFinalMetrics) {
  const auto dir = fresh_dir("runner_summary");
  std::ofstream(dir / "summary.json") << R"({
  "status": "done", "test_mse": 0.5, "trivial_mse": 1, "final_train_loss": 0.4,
  "steps": 10, "wall_seconds": 2, "ms_per_step": 0.1, "parameters": 50,
  "attention_parameters": 20, "threads": 1,
  "test_loss": 1.5, "test_bits_per_char": 2.25, "validation_perplexity": 4.0,
  "test_name": "text", "test_missing": null, "test_flag": true, "test_nested": {"a": 1},
  "peak_rss_mb": 12, "loss_test": 3
})";
  const TrainSummary summary = read_summary(dir.string());
  EXPECT_EQ(summary.final_metrics, (std::map<std::string, double>{{"test_bits_per_char", 2.25},
                                                                  {"test_loss", 1.5},
                                                                  {"test_mse", 0.5},
                                                                  {"validation_perplexity", 4.0}}));
  EXPECT_DOUBLE_EQ(summary.test_mse, 0.5);
  EXPECT_EQ(summary.parameters, 50);
  std::ofstream(dir / "summary.json") << R"({"status": "diverged", "test_mse": null})";
  const TrainSummary diverged = read_summary(dir.string());
  EXPECT_TRUE(diverged.final_metrics.empty());
  EXPECT_EQ(diverged.steps, 0) << "missing integers read as 0";
}

TEST(SweepRunner, NamedFinalMetricsReachTheDatabase) {
  const auto dir = fresh_dir("runner_named");
  const auto runs = small_runs();
  // One run finished on disk before the sweep (read back from summary.json) ...
  const std::string recovered = (dir / "runs" / runs[0].id).string();
  fs::create_directories(recovered);
  fake_train(runs[0].config, recovered);
  ResultsStore store((dir / "results.db").string(), ResultsStore::Mode::kWrite);
  CountingTrainer counting;
  run_sweep(runs, store, counting.trainer(), options_for(dir));
  // ... and the others trained now: both paths keep every final metric.
  for (const RunRecord& run : store.runs()) {
    SCOPED_TRACE(run.id);
    ASSERT_EQ(run.final_metrics.size(), 2u);
    EXPECT_NEAR(run.metric("test_loss"), 3 * run.test_mse, 1e-5);
    EXPECT_NEAR(run.metric("test_mse"), run.test_mse, 1e-12);
  }
  EXPECT_EQ(counting.calls, 8);
}

TEST(SweepRunner, TerminalStatusLineShowsDoneRunningAndEta) {
  std::ostringstream out;
  SweepProgress progress(&out, /*terminal=*/true, /*total=*/5, /*already=*/1, /*jobs=*/2);
  progress.started();
  progress.started();
  EXPECT_NE(out.str().find("\r[sweep] 1/5 runs done, 2 running, elapsed "), std::string::npos)
      << out.str();
  EXPECT_NE(out.str().find("ETA ?"), std::string::npos) << "no estimate before a run ends";
  progress.finished("done", "abcd1234 model.heads=2: test_mse 0.5", 10.0);
  const std::string text = out.str();
  EXPECT_NE(text.find("\r[2/5] done     abcd1234 model.heads=2: test_mse 0.5 (10s)\x1b[K\n"),
            std::string::npos)
      << text;
  // Three runs left at 10 s each, two at a time: 15 s.
  EXPECT_NE(text.find("[sweep] 2/5 runs done, 1 running, elapsed "), std::string::npos) << text;
  EXPECT_NE(text.find("ETA 15s"), std::string::npos) << text;
  progress.finished("failed", "ef567890 model.heads=4: boom", 1.0);
  EXPECT_NE(out.str().find("3/5 runs done, 0 running, 1 failed"), std::string::npos) << out.str();
}

TEST(SweepRunner, AStopRequestKeepsFinishedRunsAndStartsNoNewOne) {
  const auto dir = fresh_dir("runner_stop");
  ResultsStore store((dir / "results.db").string(), ResultsStore::Mode::kWrite);
  int calls = 0;
  Trainer trainer = [&](const RunConfig& config, const std::string& run_dir) {
    if (++calls == 3) request_sweep_stop();  // a signal arrives during the third run
    return fake_train(config, run_dir);
  };
  clear_sweep_stop();
  const SweepOutcome outcome = run_sweep(small_runs(), store, trainer, options_for(dir));
  EXPECT_TRUE(sweep_stop_requested());
  clear_sweep_stop();
  EXPECT_TRUE(outcome.interrupted);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(outcome.done, 3) << "the run that was finishing is kept";
  EXPECT_EQ(store.finished_ids().size(), 3u);
  // A stop request that comes after the last run started interrupts nothing.
  calls = 0;
  Trainer last = [&](const RunConfig& config, const std::string& run_dir) {
    if (++calls == 6) request_sweep_stop();
    return fake_train(config, run_dir);
  };
  const SweepOutcome rest = run_sweep(small_runs(), store, last, options_for(dir));
  clear_sweep_stop();
  EXPECT_FALSE(rest.interrupted);
  EXPECT_EQ(rest.skipped, 3);
  EXPECT_EQ(store.finished_ids().size(), 9u);
}
