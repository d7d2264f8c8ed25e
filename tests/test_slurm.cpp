// `--shard auto` from each launcher's variables (and inconsistent ones), Slurm time
// limits, and `attnrank submit`: its scripts, its dry run, and its two sbatch calls
// against a stand-in sbatch. The live round trip against a real Slurm is
// tests/slurm_live.sh (CTest label slurm).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "attnrank/core/error.h"
#include "attnrank/experiment/results_store.h"
#include "attnrank/experiment/slurm.h"
#include "cli_runner.h"
#include "sweep_fixtures.h"

using namespace attnrank;
using attnrank::testing::count_lines;
using attnrank::testing::fresh_dir;
using attnrank::testing::run_attnrank;
using attnrank::testing::slurp;
namespace fs = std::filesystem;

namespace {

using Environment = std::map<std::string, std::string>;

ResolvedShard shard_of(const Environment& environment) {
  return shard_from_environment([&](const char* name) -> const char* {
    const auto found = environment.find(name);
    return found == environment.end() ? nullptr : found->second.c_str();
  });
}

void expect_shard(const Environment& environment, int index, int count) {
  const ResolvedShard shard = shard_of(environment);
  EXPECT_EQ(shard.shard.index, index);
  EXPECT_EQ(shard.shard.count, count);
  EXPECT_FALSE(shard.source.empty());
}

// shard_of throws a ConfigError whose message contains `needle`.
void expect_refused(const Environment& environment, const std::string& needle) {
  try {
    shard_of(environment);
    ADD_FAILURE() << "accepted; expected an error containing: " << needle;
  } catch (const ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find(needle), std::string::npos) << error.what();
    EXPECT_EQ(std::string(error.what()).find('\n'), std::string::npos) << "one line";
  }
}

// Every variable shard_from_environment reads, unset for the binary's tests (the
// suite may itself run inside a Slurm job or under mpirun).
void clear_launcher_environment() {
  for (const char* name :
       {"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN",
        "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_STEP", "SLURM_PROCID", "SLURM_NTASKS",
        "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMI_SIZE", "PMIX_RANK"})
    unsetenv(name);
}

std::string quoted(const fs::path& path) {
  std::string text(1, '\'');
  text += path.string();
  text += '\'';
  return text;
}

// Eight tiny real runs.
fs::path write_spec(const fs::path& dir) {
  const fs::path path = dir / "spec.yaml";
  std::ofstream(path) << "name: tinyslurm\n"
                         "base:\n"
                         "  model: {dim: 4, ffn: 8}\n"
                         "  task: {points: 3}\n"
                         "  train: {steps: 20, batch: 8, eval_batches: 1, log_every: 10}\n"
                         "grid:\n"
                         "  model.heads: [1, 2]\n"
                         "  train.seed: [0, 1, 2, 3]\n";
  return path;
}

SubmitOptions submit_options(const fs::path& dir) {
  SubmitOptions options;
  options.target = write_spec(dir).string();
  options.shards = 3;
  options.time = "1:00:00";
  options.cpus = 2;
  options.out_dir = (dir / "out").string();
  options.binary = "/opt/attnrank/bin/attnrank";
  options.command_line = "attnrank submit spec.yaml --shards 3";
  return options;
}

}  // namespace

TEST(ShardAuto, SlurmArrayTask) {
  expect_shard({{"SLURM_ARRAY_TASK_ID", "2"}, {"SLURM_ARRAY_TASK_COUNT", "4"}}, 2, 4);
  expect_shard({{"SLURM_ARRAY_TASK_ID", "0"},
                {"SLURM_ARRAY_TASK_COUNT", "4"},
                {"SLURM_ARRAY_TASK_MIN", "0"},
                {"SLURM_ARRAY_TASK_MAX", "3"}},
               0, 4);
  // Arrays need not start at 0: --array=1-8.
  expect_shard({{"SLURM_ARRAY_TASK_ID", "1"},
                {"SLURM_ARRAY_TASK_COUNT", "8"},
                {"SLURM_ARRAY_TASK_MIN", "1"},
                {"SLURM_ARRAY_TASK_MAX", "8"}},
               0, 8);
  expect_shard({{"SLURM_ARRAY_TASK_ID", "8"},
                {"SLURM_ARRAY_TASK_COUNT", "8"},
                {"SLURM_ARRAY_TASK_MIN", "1"},
                {"SLURM_ARRAY_TASK_MAX", "8"}},
               7, 8);
  // --array=10-40:10 (10, 20, 30, 40).
  expect_shard({{"SLURM_ARRAY_TASK_ID", "30"},
                {"SLURM_ARRAY_TASK_COUNT", "4"},
                {"SLURM_ARRAY_TASK_MIN", "10"},
                {"SLURM_ARRAY_TASK_MAX", "40"},
                {"SLURM_ARRAY_TASK_STEP", "10"}},
               2, 4);
  // The array wins over the batch step's SLURM_PROCID / SLURM_NTASKS.
  expect_shard({{"SLURM_ARRAY_TASK_ID", "3"},
                {"SLURM_ARRAY_TASK_COUNT", "4"},
                {"SLURM_PROCID", "0"},
                {"SLURM_NTASKS", "1"}},
               3, 4);
  const auto shard = shard_of({{"SLURM_ARRAY_TASK_ID", "5"},
                               {"SLURM_ARRAY_TASK_COUNT", "6"},
                               {"SLURM_ARRAY_TASK_MIN", "0"}});
  EXPECT_NE(shard.source.find("SLURM_ARRAY_TASK_ID=5"), std::string::npos) << shard.source;
}

TEST(ShardAuto, SrunMpirunAndPmiRanks) {
  expect_shard({{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "4"}}, 3, 4);
  expect_shard({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"}}, 1, 2);
  expect_shard({{"PMI_RANK", "5"}, {"PMI_SIZE", "6"}}, 5, 6);
  expect_shard({{"PMIX_RANK", "2"}, {"PMI_SIZE", "3"}}, 2, 3);
  // srun's variables come before the MPI ones they are set with.
  expect_shard({{"SLURM_PROCID", "1"},
                {"SLURM_NTASKS", "2"},
                {"PMI_RANK", "1"},
                {"PMI_SIZE", "2"},
                {"PMIX_RANK", "1"}},
               1, 2);
}

TEST(ShardAuto, NothingSetOrInconsistentValues) {
  expect_refused({}, "no shard in the environment");
  expect_refused({{"SLURM_NTASKS", "4"}}, "no shard in the environment");
  expect_refused({{"SLURM_ARRAY_TASK_ID", "2"}}, "SLURM_ARRAY_TASK_COUNT is not");
  expect_refused({{"SLURM_ARRAY_TASK_ID", "4"}, {"SLURM_ARRAY_TASK_COUNT", "4"}},
                 "index 4 is not in 0..3");
  expect_refused({{"SLURM_ARRAY_TASK_ID", "x"}, {"SLURM_ARRAY_TASK_COUNT", "4"}},
                 "SLURM_ARRAY_TASK_ID=x is not a non-negative integer");
  expect_refused({{"SLURM_ARRAY_TASK_ID", "-1"}, {"SLURM_ARRAY_TASK_COUNT", "4"}},
                 "SLURM_ARRAY_TASK_ID=-1 is not a non-negative integer");
  expect_refused({{"SLURM_ARRAY_TASK_ID", "1"}, {"SLURM_ARRAY_TASK_COUNT", "0"}}, "at least 1");
  expect_refused({{"SLURM_ARRAY_TASK_ID", "0"},
                  {"SLURM_ARRAY_TASK_COUNT", "4"},
                  {"SLURM_ARRAY_TASK_MIN", "1"}},
                 "below the array's minimum");
  // --array=1,3,7: not one evenly stepped range.
  expect_refused({{"SLURM_ARRAY_TASK_ID", "3"},
                  {"SLURM_ARRAY_TASK_COUNT", "3"},
                  {"SLURM_ARRAY_TASK_MIN", "1"},
                  {"SLURM_ARRAY_TASK_MAX", "7"},
                  {"SLURM_ARRAY_TASK_STEP", "1"}},
                 "not one evenly stepped range");
  expect_refused({{"SLURM_ARRAY_TASK_ID", "15"},
                  {"SLURM_ARRAY_TASK_COUNT", "4"},
                  {"SLURM_ARRAY_TASK_MIN", "10"},
                  {"SLURM_ARRAY_TASK_STEP", "10"}},
                 "not on the array's step");
  // A plain sbatch job: SLURM_PROCID=0 without SLURM_NTASKS says nothing of shards.
  expect_refused({{"SLURM_PROCID", "0"}}, "SLURM_PROCID=0 is set but SLURM_NTASKS is not");
  expect_refused({{"SLURM_PROCID", "4"}, {"SLURM_NTASKS", "4"}}, "index 4 is not in 0..3");
  expect_refused({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", ""}},
                 "OMPI_COMM_WORLD_SIZE= is not a non-negative integer");
  expect_refused({{"PMI_RANK", "0"}}, "PMI_SIZE is not");
  expect_refused({{"PMIX_RANK", "0"}}, "OMPI_COMM_WORLD_SIZE or PMI_SIZE or SLURM_NTASKS is not");
}

TEST(ShardAuto, ExplicitSliceStillParses) {
  const ResolvedShard shard = resolve_shard("1/3");
  EXPECT_EQ(shard.shard.index, 1);
  EXPECT_EQ(shard.shard.count, 3);
  EXPECT_TRUE(shard.source.empty());
  EXPECT_THROW(resolve_shard("automatic"), ConfigError);
}

TEST(SlurmTime, EverySbatchFormat) {
  EXPECT_EQ(slurm_time_seconds("30"), 30 * 60);
  EXPECT_EQ(slurm_time_seconds("1"), 60);
  EXPECT_EQ(slurm_time_seconds("5:30"), 5 * 60 + 30);
  EXPECT_EQ(slurm_time_seconds("6:00:00"), 6 * 3600);
  EXPECT_EQ(slurm_time_seconds("2-0"), 2 * 86400);
  EXPECT_EQ(slurm_time_seconds("1-2:30"), 86400 + 2 * 3600 + 30 * 60);
  EXPECT_EQ(slurm_time_seconds("1-0:0:5"), 86400 + 5);
  for (const char* bad : {"", "0", "0:00:00", "1:2:3:4", "abc", "-5", "1-", "6h", "1:-3"})
    EXPECT_THROW(slurm_time_seconds(bad), ConfigError) << bad;
}

TEST(Submit, ScriptsOfASpec) {
  const auto dir = fresh_dir("slurm_scripts");
  SubmitOptions options = submit_options(dir);
  options.partition = "long";
  options.sbatch_options = {"--account=proj"};
  const SubmitPlan plan = plan_submission(options);
  EXPECT_FALSE(plan.figure);
  EXPECT_EQ(plan.runs, 8);
  EXPECT_EQ(plan.name, "attnrank-tinyslurm");
  EXPECT_EQ(plan.signal_before, 300);
  EXPECT_EQ(plan.database, (dir / "out" / "results.db").string());
  const std::string& array = plan.array_script;
  for (const char* line :
       {"#SBATCH --array=0-2\n", "#SBATCH --cpus-per-task=2\n", "#SBATCH --time=1:00:00\n",
        "#SBATCH --requeue\n", "#SBATCH --signal=B:USR1@300\n", "#SBATCH --partition=long\n",
        "#SBATCH --account=proj\n", "#SBATCH --open-mode=append\n", "--shard auto",
        "--threads 2 --jobs 1", "scontrol requeue", "shard-${SLURM_ARRAY_TASK_ID}-of-3.db",
        "attnrank='/opt/attnrank/bin/attnrank'"})
    EXPECT_NE(array.find(line), std::string::npos) << line << "\n" << array;
  const std::string& merge = plan.merge_script;
  for (const char* line :
       {"#SBATCH --job-name=attnrank-tinyslurm-merge\n", "#SBATCH --partition=long\n",
        "shard-*-of-3.db", "\" merge \"$db\"", "--dry-run", "#SBATCH --time=1:00:00\n"})
    EXPECT_NE(merge.find(line), std::string::npos) << line << "\n" << merge;
  EXPECT_EQ(merge.find("--array"), std::string::npos);
  EXPECT_EQ(merge.find("reproduce"), std::string::npos) << "a spec has no figure";
  EXPECT_FALSE(fs::exists(dir / "out")) << "planning writes nothing";

  // Both are valid bash.
  write_submission(plan);
  for (const auto& path : {plan.array_path, plan.merge_path}) {
    const std::string check = std::string("bash -n ") + ::quoted(fs::path(path));
    EXPECT_EQ(std::system(check.c_str()), 0) << path;
    EXPECT_NE(fs::status(path).permissions() & fs::perms::owner_exec, fs::perms::none);
  }
  EXPECT_TRUE(fs::is_directory(plan.shards_dir));
  EXPECT_TRUE(fs::is_directory(plan.logs_dir));
}

TEST(Submit, ScriptsOfAFigure) {
  const auto dir = fresh_dir("slurm_figure");
  SubmitOptions options = submit_options(dir);
  options.target = "fig1";
  options.scale = "paper";
  options.presets_dir = std::string(ATTNRANK_SOURCE_DIR) + "/configs/reproduce";
  options.shards = 32;
  options.time = "6:00:00";
  options.out_dir.clear();
  const SubmitPlan plan = plan_submission(options);
  EXPECT_TRUE(plan.figure);
  EXPECT_EQ(plan.name, "attnrank-fig1-paper");
  EXPECT_EQ(plan.spec_path, fs::path(options.presets_dir + "/fig1-paper.yaml").lexically_normal());
  EXPECT_EQ(plan.out_dir, fs::absolute("reproduce/fig1-paper").string());
  EXPECT_NE(plan.merge_script.find("reproduce 'fig1' --scale 'paper' --presets"), std::string::npos)
      << plan.merge_script;
  EXPECT_NE(plan.merge_script.find("--no-train --db \"$db\""), std::string::npos);
}

TEST(Submit, BadOptions) {
  const auto dir = fresh_dir("slurm_bad");
  const auto refused = [&](auto change, const std::string& needle) {
    SubmitOptions options = submit_options(dir);
    change(options);
    try {
      plan_submission(options);
      ADD_FAILURE() << "accepted; expected: " << needle;
    } catch (const ConfigError& error) {
      EXPECT_NE(std::string(error.what()).find(needle), std::string::npos) << error.what();
    }
  };
  refused([](SubmitOptions& o) { o.shards = 0; }, "--shards: must be at least 1");
  refused([](SubmitOptions& o) { o.shards = 9; }, "--shards 9: the sweep has only 8 runs");
  refused([](SubmitOptions& o) { o.cpus = 0; }, "--cpus");
  refused([](SubmitOptions& o) { o.time = "6h"; }, "--time '6h'");
  refused(
      [](SubmitOptions& o) {
        o.time = "1";
        o.signal_before = 60;
      },
      "--signal-before 60: must be shorter than the time limit (60 s)");
  refused([](SubmitOptions& o) { o.target = "fig9"; }, "neither a sweep spec file nor a figure");
  refused([](SubmitOptions& o) { o.partition = "a b"; }, "space or shell character");
  refused([](SubmitOptions& o) { o.sbatch_options = {"account=x"}; }, "--sbatch 'account=x'");
  refused([&](SubmitOptions& o) { o.out_dir = (dir / "with space").string(); }, "a space");
  // A one-minute limit: the signal comes half-way.
  SubmitOptions short_limit = submit_options(dir);
  short_limit.time = "1";
  EXPECT_EQ(plan_submission(short_limit).signal_before, 30);
}

TEST(SlurmCli, ShardAutoThroughTheBinary) {
  clear_launcher_environment();
  const auto dir = fresh_dir("slurm_cli_shard");
  const fs::path spec = write_spec(dir);
  const auto none = run_attnrank("sweep " + quoted(spec) + " --db " + quoted(dir / "a.db") +
                                 " --shard auto --dry-run");
  EXPECT_EQ(none.exit_code, 2) << none.out << none.err;
  EXPECT_EQ(count_lines(none.err), 1) << none.err;
  EXPECT_NE(none.err.find("attnrank: error: --shard auto: no shard in the environment"),
            std::string::npos)
      << none.err;
  EXPECT_FALSE(fs::exists(dir / "a.db"));
  const auto reproduce = run_attnrank("reproduce fig1 --presets " +
                                      quoted(fs::path(ATTNRANK_SOURCE_DIR) / "configs/reproduce") +
                                      " --out " + quoted(dir / "fig") + " --shard auto");
  EXPECT_EQ(reproduce.exit_code, 2) << reproduce.out << reproduce.err;
  EXPECT_NE(reproduce.err.find("--shard auto: no shard"), std::string::npos) << reproduce.err;

  // Array tasks 1..4 (--array=1-4) split the sweep: each run trained exactly once.
  int trained = 0;
  std::string plans;
  for (int task = 1; task <= 4; ++task) {
    setenv("SLURM_ARRAY_TASK_ID", std::to_string(task).c_str(), 1);
    setenv("SLURM_ARRAY_TASK_COUNT", "4", 1);
    setenv("SLURM_ARRAY_TASK_MIN", "1", 1);
    setenv("SLURM_ARRAY_TASK_MAX", "4", 1);
    const std::string db = quoted(dir / ("shard" + std::to_string(task) + ".db"));
    const auto plan =
        run_attnrank("sweep " + quoted(spec) + " --db " + db + " --shard auto --dry-run");
    ASSERT_EQ(plan.exit_code, 0) << plan.err;
    plans += plan.out;
    const auto run =
        run_attnrank("sweep " + quoted(spec) + " --db " + db + " --shard auto --threads 1");
    ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
    EXPECT_NE(run.out.find("shard " + std::to_string(task - 1) +
                           "/4 (from SLURM_ARRAY_TASK_ID=" + std::to_string(task)),
              std::string::npos)
        << run.out;
    trained +=
        static_cast<int>(ResultsStore((dir / ("shard" + std::to_string(task) + ".db")).string(),
                                      ResultsStore::Mode::kRead)
                             .runs()
                             .size());
  }
  clear_launcher_environment();
  EXPECT_EQ(trained, 8) << plans;
  // An inconsistent environment is refused, naming the variables.
  setenv("SLURM_ARRAY_TASK_ID", "7", 1);
  setenv("SLURM_ARRAY_TASK_COUNT", "4", 1);
  const auto bad =
      run_attnrank("sweep " + quoted(spec) + " --db " + quoted(dir / "b.db") + " --shard auto");
  clear_launcher_environment();
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("SLURM_ARRAY_TASK_ID=7 SLURM_ARRAY_TASK_COUNT=4: index 7 is not in 0..3"),
            std::string::npos)
      << bad.err;
}

TEST(SlurmCli, SubmitDryRunAndSubmissionWithAStandInSbatch) {
  clear_launcher_environment();
  const auto dir = fresh_dir("slurm_cli_submit");
  const fs::path spec = write_spec(dir);
  const fs::path out = dir / "out";
  const auto dry = run_attnrank("submit " + quoted(spec) + " --shards 4 --time 1 --out " +
                                quoted(out) + " --dry-run");
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_NE(dry.out.find("#SBATCH --array=0-3"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("#SBATCH --signal=B:USR1@30"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("--dependency=afterany:ARRAY_JOB_ID"), std::string::npos) << dry.out;
  EXPECT_FALSE(fs::exists(out)) << "a dry run writes nothing";
  // --sbatch takes one value per use, wherever it stands.
  const auto options = run_attnrank("submit --sbatch=--qos=long --sbatch=--account=proj " +
                                    quoted(spec) + " --shards 2 --dry-run");
  ASSERT_EQ(options.exit_code, 0) << options.err;
  EXPECT_NE(options.out.find("#SBATCH --qos=long\n#SBATCH --account=proj\n"), std::string::npos)
      << options.out;

  // A stand-in sbatch that logs its arguments and answers like --parsable.
  const fs::path bin = dir / "bin";
  fs::create_directories(bin);
  {
    std::ofstream script(bin / "sbatch");
    script << "#!/bin/sh\necho \"$*\" >> " << quoted(dir / "sbatch.log") << "\nn=$(wc -l < "
           << quoted(dir / "sbatch.log") << ")\necho \"$((41 + n));cluster\"\n";
  }
  fs::permissions(bin / "sbatch", fs::perms::owner_all);
  const std::string old_path = std::getenv("PATH") ? std::getenv("PATH") : "";
  setenv("PATH", (bin.string() + ":" + old_path).c_str(), 1);
  const auto result = run_attnrank("submit " + quoted(spec) + " --shards 4 --time 1 --out " +
                                   quoted(out) + " --sbatch=--account=proj");
  setenv("PATH", old_path.c_str(), 1);
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
  EXPECT_NE(result.out.find("array job 42 (4 tasks, 8 runs) and merge job 43"), std::string::npos)
      << result.out;
  const std::string calls = slurp(dir / "sbatch.log");
  EXPECT_EQ(calls, "--parsable " + (out / "slurm-array.sh").string() +
                       "\n--parsable --dependency=afterany:42 " +
                       (out / "slurm-merge.sh").string() + "\n");
  EXPECT_NE(slurp(out / "slurm-array.sh").find("#SBATCH --account=proj\n"), std::string::npos);
  EXPECT_NE(slurp(out / "slurm-merge.sh").find("#SBATCH --account=proj\n"), std::string::npos);

  // Without sbatch: an error naming it, exit 1.
  setenv("PATH", dir.c_str(), 1);
  const auto missing = run_attnrank("submit " + quoted(spec) + " --shards 4 --out " + quoted(out));
  setenv("PATH", old_path.c_str(), 1);
  EXPECT_EQ(missing.exit_code, 1) << missing.out << missing.err;
  EXPECT_NE(missing.err.find("cannot run sbatch"), std::string::npos) << missing.err;
}
