// `attnrank sweep`, `merge` and `results` through the binary: real (tiny) training
// runs split into shards and merged, a sweep killed with SIGKILL and resumed, and
// every class of bad input (exit code 2, one line, nothing lost or created).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "attnrank/config_io/config_io.h"
#include "attnrank/experiment/results_store.h"
#include "attnrank/experiment/sweep.h"
#include "cli_runner.h"
#include "sweep_fixtures.h"

using namespace attnrank;
using attnrank::testing::count_lines;
using attnrank::testing::fresh_dir;
using attnrank::testing::run_attnrank;
using attnrank::testing::slurp;
namespace fs = std::filesystem;

namespace {

// Six real runs of a tiny model; `steps` sets how long each takes.
std::string tiny_spec(int steps) {
  return "name: tiny\n"
         "base:\n"
         "  model: {dim: 4, ffn: 16}\n"
         "  task: {points: 3}\n"
         "  train: {steps: " +
         std::to_string(steps) +
         ", batch: 16, eval_batches: 2, log_every: 50}\n"
         "grid:\n"
         "  model.heads: [1, 2, 4]\n"
         "  train.seed: [0, 1]\n";
}

fs::path write_spec(const fs::path& dir, const std::string& text) {
  const fs::path path = dir / "spec.yaml";
  std::ofstream(path) << text;
  return path;
}

// Built by appending: GCC 12 warns falsely (-Wrestrict) on "'" + std::string&&.
std::string quoted(const fs::path& path) {
  std::string text(1, '\'');
  text += path.string();
  text += '\'';
  return text;
}

// Exit code 2, exactly one line on stderr containing `needle`, nothing on stdout.
void expect_usage_error(const attnrank::testing::CommandResult& result, const std::string& needle) {
  EXPECT_EQ(result.exit_code, 2) << result.out << result.err;
  EXPECT_EQ(count_lines(result.err), 1) << result.err;
  EXPECT_NE(result.err.find(needle), std::string::npos) << result.err;
  EXPECT_TRUE(result.out.empty()) << result.out;
}

RunRecord stored_record(const std::string& id) {
  const RunConfig config = parse_config("model: {dim: 8, heads: 2}", {});
  RunRecord record;
  record.id = id;
  record.status = "done";
  record.config_yaml = to_yaml(config);
  record.config = flat_config(config);
  record.test_mse = 0.5;
  record.final_metrics = {{"test_mse", 0.5}};
  record.metrics = {{10, 1.0, 0.01, 0.5}};
  return record;
}

// A results database with `runs` records, closed (checkpointed into one file).
void make_database(const fs::path& path, int runs) {
  ResultsStore store(path.string(), ResultsStore::Mode::kWrite);
  for (int i = 0; i < runs; ++i) store.record(stored_record("run" + std::to_string(i)));
}

size_t run_count(const fs::path& path) {
  return ResultsStore(path.string(), ResultsStore::Mode::kRead).runs().size();
}

// `sweep` on a bad database: exit 2, the file byte for byte as it was, no run
// directories; `results` and `merge` (reading it) refuse it the same way.
void expect_database_refused(const fs::path& dir, const fs::path& database,
                             const std::string& needle) {
  const std::string before = slurp(database);
  const fs::path spec = write_spec(dir, tiny_spec(20));
  expect_usage_error(run_attnrank("sweep " + quoted(spec) + " --db " + quoted(database)), needle);
  EXPECT_EQ(slurp(database), before) << "the database was changed";
  EXPECT_FALSE(fs::exists(fs::path(database).replace_extension(".runs"))) << "nothing created";
  expect_usage_error(run_attnrank("results " + quoted(database)), needle);
  const fs::path merged = dir / "merged.db";
  expect_usage_error(run_attnrank("merge " + quoted(merged) + " " + quoted(database)), needle);
  EXPECT_FALSE(fs::exists(merged)) << "merge checks its inputs before creating the output";
  EXPECT_EQ(slurp(database), before);
}

// (std::regex is avoided: GCC 12 warns falsely on it in the sanitizer build.)

// The number just before `marker` in `text` ("6 trained now" -> 6); -1 if none.
int number_before(const std::string& text, const std::string& marker) {
  const size_t at = text.find(marker);
  if (at == std::string::npos) return -1;
  size_t begin = at;
  while (begin > 0 && std::isdigit(static_cast<unsigned char>(text[begin - 1]))) --begin;
  return begin == at ? -1 : std::stoi(text.substr(begin, at - begin));
}

// The number just after `marker` in `text` ("(2 done" after "(" -> 2); -1 if none.
int number_after(const std::string& text, const std::string& marker) {
  const size_t at = text.find(marker);
  if (at == std::string::npos) return -1;
  size_t end = at + marker.size();
  while (end < text.size() && std::isdigit(static_cast<unsigned char>(text[end]))) ++end;
  const size_t begin = at + marker.size();
  return end == begin ? -1 : std::stoi(text.substr(begin, end - begin));
}

// Id prefixes of the runs a sweep's progress lines report finished:
// "[3/6] done     44853f28 model.heads=1 ..." -> 44853f28.
std::set<std::string> reported_finished(const std::string& log) {
  std::set<std::string> ids;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] != '[') continue;
    const size_t close = line.find("] ");
    if (close == std::string::npos) continue;
    std::istringstream words(line.substr(close + 2));
    std::string status, id;
    words >> status >> id;
    if ((status == "done" || status == "diverged") && id.size() == 8 &&
        id.find_first_not_of("0123456789abcdef") == std::string::npos)
      ids.insert(id);
  }
  return ids;
}

// Command lines of running processes that contain `text`.
std::vector<std::string> processes_mentioning(const std::string& text) {
  std::vector<std::string> found;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator("/proc", error)) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string command = slurp(entry.path() / "cmdline");
    for (char& c : command)
      if (c == '\0') c = ' ';
    if (command.find(text) != std::string::npos) found.push_back(name + ": " + command);
  }
  return found;
}

}  // namespace

TEST(SweepCli, ShardsMergeResumeAndResultsThroughTheBinary) {
  const auto dir = fresh_dir("cli_shards");
  const fs::path spec = write_spec(dir, tiny_spec(100));
  int trained = 0;
  for (int shard = 0; shard < 2; ++shard) {
    const auto result = run_attnrank("sweep " + quoted(spec) + " --db " +
                                     quoted(dir / ("shard" + std::to_string(shard) + ".db")) +
                                     " --shard " + std::to_string(shard) + "/2 --threads 1");
    ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
    const int now = number_before(result.out, " trained now");
    ASSERT_GE(now, 0) << result.out;
    trained += now;
  }
  EXPECT_EQ(trained, 6) << "the shards split the sweep";

  const auto merge = run_attnrank("merge " + quoted(dir / "merged.db") + " " +
                                  quoted(dir / "shard0.db") + " " + quoted(dir / "shard1.db"));
  ASSERT_EQ(merge.exit_code, 0) << merge.err;
  EXPECT_NE(merge.out.find("6 runs in total"), std::string::npos) << merge.out;
  const auto merged = ResultsStore((dir / "merged.db").string(), ResultsStore::Mode::kRead).runs();
  for (const RunRecord& run : merged) {
    EXPECT_EQ(run.status, "done");
    EXPECT_TRUE(std::isfinite(run.metric("test_mse"))) << "the final metrics came through";
    EXPECT_EQ(run.final_metrics.count("test_mse"), 1u);
  }

  // The merged database holds the whole sweep: nothing left to train.
  const auto resume =
      run_attnrank("sweep " + quoted(spec) + " --db " + quoted(dir / "merged.db") + " --threads 1");
  ASSERT_EQ(resume.exit_code, 0) << resume.err;
  EXPECT_NE(resume.out.find("6 runs: 6 finished before"), std::string::npos) << resume.out;
  EXPECT_NE(resume.out.find("0 trained now"), std::string::npos) << resume.out;

  const auto json = run_attnrank("results " + quoted(dir / "merged.db") + " --format json");
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const auto groups = nlohmann::json::parse(json.out);
  ASSERT_EQ(groups.size(), 3u);
  for (const auto& group : groups) {
    EXPECT_EQ(group["seeds"], 2);
    EXPECT_EQ(group["metric"], "test_mse");
    EXPECT_TRUE(group["test_mse"]["mean"].is_number());
  }
  const auto loss = run_attnrank("results " + quoted(dir / "merged.db") +
                                 " --metric final_train_loss --format csv");
  ASSERT_EQ(loss.exit_code, 0) << loss.err;
  EXPECT_NE(loss.out.find(",final_train_loss,2,"), std::string::npos) << loss.out;
  expect_usage_error(run_attnrank("results " + quoted(dir / "merged.db") + " --metric test_loss"),
                     "metric 'test_loss': no run has it (available: ");
}

TEST(SweepCli, KilledWithSigkillLosesNoFinishedRunAndResumes) {
  const auto dir = fresh_dir("cli_kill");
  const fs::path spec = write_spec(dir, tiny_spec(2000));
  const fs::path database = dir / "results.db";
  const fs::path log = dir / "sweep.out";
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const int out = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, STDOUT_FILENO);
    dup2(out, STDERR_FILENO);
    execl(ATTNRANK_BINARY, ATTNRANK_BINARY, "sweep", spec.c_str(), "--db", database.c_str(),
          "--jobs", "1", "--threads", "1", static_cast<char*>(nullptr));
    _exit(127);
  }
  // A progress line is printed after its run is committed: kill at the first one.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(3);
  while (reported_finished(slurp(log)).empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << slurp(log);
  // The run in flight (a child `attnrank train`) dies with the sweep.
  const auto orphan_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!processes_mentioning(dir.string()).empty() &&
         std::chrono::steady_clock::now() < orphan_deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(processes_mentioning(dir.string()), std::vector<std::string>{});

  // Every run the sweep reported finished is in the database, which opens intact.
  const std::string said = slurp(log);
  const std::set<std::string> reported = reported_finished(said);
  ASSERT_GE(reported.size(), 1u) << said;
  std::map<std::string, std::string> finished_at;  // id -> when it was recorded
  std::map<std::string, fs::file_time_type> written;
  {
    ResultsStore reader(database.string(), ResultsStore::Mode::kRead);
    for (const RunRecord& run : reader.runs()) {
      ASSERT_TRUE(run.finished()) << run.id;
      finished_at[run.id] = run.finished_at;
      written[run.id] = fs::last_write_time(fs::path(run.run_dir) / "summary.json");
    }
  }
  for (const auto& prefix : reported) {
    bool found = false;
    for (const auto& [id, when] : finished_at) found = found || id.rfind(prefix, 0) == 0;
    EXPECT_TRUE(found) << "reported finished but not recorded: " << prefix;
  }
  ASSERT_LT(finished_at.size(), 6u) << "killed too late to test anything:\n" << said;

  // The same command again trains only what is missing.
  const auto resume =
      run_attnrank("sweep " + quoted(spec) + " --db " + quoted(database) + " --jobs 1 --threads 1");
  ASSERT_EQ(resume.exit_code, 0) << resume.out << resume.err;
  EXPECT_NE(resume.out.find("6 runs: " + std::to_string(finished_at.size()) + " finished before"),
            std::string::npos)
      << resume.out;
  ResultsStore store(database.string(), ResultsStore::Mode::kRead);
  EXPECT_EQ(store.finished_ids().size(), 6u);
  for (const auto& [id, when] : finished_at) {
    const RunRecord run = *store.find(id, true);
    EXPECT_EQ(run.finished_at, when) << id << " was recorded again";
    EXPECT_EQ(fs::last_write_time(fs::path(run.run_dir) / "summary.json"), written[id])
        << id << " was trained again";
    EXPECT_FALSE(run.metrics.empty());
  }
}

TEST(SweepCli, InterruptStopsTheRunsKeepsTheFinishedAndResumes) {
  const auto dir = fresh_dir("cli_interrupt");
  const fs::path spec = write_spec(dir, tiny_spec(2000));
  const fs::path database = dir / "results.db";
  const fs::path out = dir / "sweep.out", err = dir / "sweep.err";
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    signal(SIGINT, SIG_DFL);  // as on a terminal, whatever ran the tests
    const int out_fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err_fd = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out_fd, STDOUT_FILENO);
    dup2(err_fd, STDERR_FILENO);
    execl(ATTNRANK_BINARY, ATTNRANK_BINARY, "sweep", spec.c_str(), "--db", database.c_str(),
          "--jobs", "1", "--threads", "1", static_cast<char*>(nullptr));
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(3);
  while (reported_finished(slurp(out)).empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  // ... and until the next run has logged a row: its stop handler is installed.
  auto next_run_is_training = [&] {
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(dir / "results.runs", error))
      if (!fs::exists(entry.path() / "summary.json") &&
          slurp(entry.path() / "train.log").find("/2000]") != std::string::npos)
        return true;
    return false;
  };
  while (!next_run_is_training() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  kill(child, SIGINT);  // the sweep only: it must stop its running child itself
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << slurp(out) << slurp(err);
  EXPECT_EQ(WEXITSTATUS(status), 130) << slurp(err);
  EXPECT_NE(slurp(err).find("sweep interrupted; finished runs are recorded"), std::string::npos)
      << slurp(err);
  EXPECT_EQ(processes_mentioning(dir.string()), std::vector<std::string>{})
      << "the running train process was stopped before the sweep exited";
  const std::string said = slurp(out);
  const int done = number_after(said, " trained now (");
  ASSERT_GE(done, 1) << said;
  const size_t recorded = ResultsStore(database.string(), ResultsStore::Mode::kRead).runs().size();
  EXPECT_EQ(recorded, static_cast<size_t>(done)) << "exactly the runs reported done are recorded";
  ASSERT_LT(recorded, 6u);
  // The run that was going saved its training state when the sweep stopped it.
  std::vector<fs::path> stopped;
  for (const auto& entry : fs::directory_iterator(dir / "results.runs"))
    if (fs::exists(entry.path() / "train_state.safetensors")) stopped.push_back(entry.path());
  ASSERT_EQ(stopped.size(), 1u) << "one run was stopped mid-way";

  const auto resume =
      run_attnrank("sweep " + quoted(spec) + " --db " + quoted(database) + " --jobs 1 --threads 1");
  ASSERT_EQ(resume.exit_code, 0) << resume.err;
  // ... and went on from there, not from step 0.
  const std::string log = slurp(stopped[0] / "train.log");
  EXPECT_NE(log.find("resuming " + stopped[0].string() + " at step "), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(stopped[0] / "train_state.safetensors"));
  EXPECT_NE(resume.out.find("6 runs: " + std::to_string(recorded) + " finished before"),
            std::string::npos)
      << resume.out;
  EXPECT_EQ(ResultsStore(database.string(), ResultsStore::Mode::kRead).finished_ids().size(), 6u);
}

TEST(SweepCli, UnknownKeyInTheSpec) {
  const auto dir = fresh_dir("cli_unknown_key");
  const fs::path spec = write_spec(dir, "base: {model: {dim: 8}}\ngrid: {model.rnak: [1, 2]}\n");
  expect_usage_error(run_attnrank("sweep " + quoted(spec) + " --db " + quoted(dir / "r.db")),
                     "grid.model.rnak: unknown config key (did you mean 'model.rank'?)");
  EXPECT_FALSE(fs::exists(dir / "r.db"));
  EXPECT_FALSE(fs::exists(dir / "r.runs"));
  const fs::path top = write_spec(dir, "grid: {train.seed: [0]}\nfigures: {kind: curves}\n");
  expect_usage_error(run_attnrank("sweep " + quoted(top) + " --db " + quoted(dir / "r.db")),
                     "figures: unknown key");
}

TEST(SweepCli, EmptyGrid) {
  const auto dir = fresh_dir("cli_empty_grid");
  for (const char* grid : {"grid: {}", "grid: []", "grid: {model.heads: []}"}) {
    const fs::path spec = write_spec(dir, std::string("base: {model: {dim: 8}}\n") + grid + "\n");
    const auto result = run_attnrank("sweep " + quoted(spec) + " --db " + quoted(dir / "r.db"));
    expect_usage_error(result, "empty");
    EXPECT_FALSE(fs::exists(dir / "r.db")) << grid;
  }
}

TEST(SweepCli, GridKeyClashesWithDerived) {
  const auto dir = fresh_dir("cli_clash");
  const fs::path spec = write_spec(
      dir, "base: {model: {dim: 8}}\ngrid: {model.rank: [8, 4]}\nderived: {model.rank: d/heads}\n");
  expect_usage_error(run_attnrank("sweep " + quoted(spec) + " --db " + quoted(dir / "r.db")),
                     "derived.model.rank: also in the grid");
  EXPECT_FALSE(fs::exists(dir / "r.db"));
}

TEST(SweepCli, CorruptDatabaseOfRandomBytes) {
  const auto dir = fresh_dir("cli_random_bytes");
  std::mt19937 random(7);
  std::string bytes(8192, '\0');
  for (char& c : bytes) c = static_cast<char>(random() & 0xff);
  std::ofstream(dir / "results.db", std::ios::binary) << bytes;
  expect_database_refused(dir, dir / "results.db", "not an intact SQLite database");
}

TEST(SweepCli, TruncatedDatabase) {
  const auto dir = fresh_dir("cli_truncated");
  make_database(dir / "results.db", 60);
  const auto size = fs::file_size(dir / "results.db");
  ASSERT_GT(size, 16384u);
  fs::resize_file(dir / "results.db", size / 2);
  expect_database_refused(dir, dir / "results.db", "results.db: not an intact SQLite database");
}

TEST(SweepCli, DatabaseOfAnotherSchema) {
  const auto dir = fresh_dir("cli_foreign");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir / "results.db").c_str(), &db), SQLITE_OK);
  sqlite3_exec(db, "CREATE TABLE runs(id TEXT, loss REAL); INSERT INTO runs VALUES ('a', 1)",
               nullptr, nullptr, nullptr);
  sqlite3_close(db);
  expect_database_refused(dir, dir / "results.db", "not an attnrank results database");
}

TEST(SweepCli, UnwritableDatabasePath) {
  const auto dir = fresh_dir("cli_unwritable");
  const fs::path spec = write_spec(dir, tiny_spec(20));
  // /proc takes no new files, even from root.
  expect_usage_error(run_attnrank("sweep " + quoted(spec) + " --db /proc/attnrank-results.db"),
                     "/proc/attnrank-results.db: not writable");
  expect_usage_error(
      run_attnrank("sweep " + quoted(spec) + " --db " + quoted(dir / "missing" / "r.db")),
      "does not exist");
  expect_usage_error(run_attnrank("sweep " + quoted(spec) + " --db " + quoted(dir)),
                     "is a directory");
  if (geteuid() != 0) {  // permissions bind everyone but root
    fs::create_directories(dir / "locked");
    chmod((dir / "locked").c_str(), 0555);
    expect_usage_error(
        run_attnrank("sweep " + quoted(spec) + " --db " + quoted(dir / "locked" / "r.db")),
        "not writable");
    chmod((dir / "locked").c_str(), 0755);
  }
  EXPECT_FALSE(fs::exists(dir / "missing"));
}

TEST(SweepCli, DatabaseLockedByAnotherSweep) {
  const auto dir = fresh_dir("cli_locked");
  const fs::path database = dir / "results.db";
  const fs::path spec = write_spec(dir, tiny_spec(20));
  ResultsStore writer(database.string(), ResultsStore::Mode::kWrite);
  writer.record(stored_record("mine"));
  expect_usage_error(run_attnrank("sweep " + quoted(spec) + " --db " + quoted(database)),
                     "database is locked by another writer");
  expect_usage_error(run_attnrank("merge " + quoted(database) + " " + quoted(dir / "other.db")),
                     "other.db: no such results database");
  make_database(dir / "other.db", 2);
  expect_usage_error(run_attnrank("merge " + quoted(database) + " " + quoted(dir / "other.db")),
                     "database is locked by another writer");
  // Readers are never locked out, and the writer's data is intact.
  const auto read = run_attnrank("results " + quoted(database));
  EXPECT_EQ(read.exit_code, 0) << read.err;
  EXPECT_EQ(writer.runs().size(), 1u);
  EXPECT_FALSE(fs::exists(dir / "results.runs"));
}

TEST(SweepCli, DatabaseInAnotherProgramsWriteTransaction) {
  const auto dir = fresh_dir("cli_sqlite_writer");
  const fs::path database = dir / "results.db";
  make_database(database, 3);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(database.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  const fs::path spec = write_spec(dir, tiny_spec(20));
  expect_usage_error(run_attnrank("sweep " + quoted(spec) + " --db " + quoted(database)),
                     "database is locked by another writer");
  sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  EXPECT_EQ(run_count(database), 3u);
  EXPECT_FALSE(fs::exists(dir / "results.runs"));
}

TEST(SweepCli, BadOptionsExitTwoWithOneLine) {
  const auto dir = fresh_dir("cli_options");
  const fs::path spec = write_spec(dir, tiny_spec(20));
  const std::string sweep = "sweep " + quoted(spec) + " --db " + quoted(dir / "r.db");
  expect_usage_error(run_attnrank(sweep + " --shard 2/2"), "--shard '2/2'");
  expect_usage_error(run_attnrank(sweep + " --shard half"), "--shard 'half'");
  expect_usage_error(run_attnrank(sweep + " --jobs 0"), "--jobs");
  expect_usage_error(run_attnrank("sweep " + quoted(dir / "none.yaml") + " --db r.db"),
                     "none.yaml: sweep spec not found");
  EXPECT_FALSE(fs::exists(dir / "r.db"));
  make_database(dir / "r.db", 1);
  const std::string results = "results " + quoted(dir / "r.db");
  expect_usage_error(run_attnrank(results + " --format xml"), "--format 'xml'");
  expect_usage_error(run_attnrank(results + " --where model.colour=red"), "model.colour");
  expect_usage_error(run_attnrank(results + " --group-by model.colour"), "model.colour");
  expect_usage_error(run_attnrank(results + " --status finished"), "--status 'finished'");
  expect_usage_error(run_attnrank(results + " --metric test_accuracy"), "'test_accuracy'");
  expect_usage_error(run_attnrank("reproduce fig9 --out " + quoted(dir / "out")), "fig9");
  expect_usage_error(run_attnrank("reproduce fig1 --scale huge --out " + quoted(dir / "out")),
                     "--scale 'huge'");
  expect_usage_error(run_attnrank("reproduce fig1 --no-train --db " + quoted(dir / "none.db") +
                                  " --out " + quoted(dir / "out")),
                     "none.db: no such results database");
  EXPECT_EQ(run_count(dir / "r.db"), 1u);
}

TEST(SweepCli, ReproduceWritesFiguresCsvAndReportThenResumes) {
  const auto dir = fresh_dir("cli_reproduce");
  fs::create_directories(dir / "presets");
  // Stand-ins for two presets: a curves figure and a heads figure of tiny runs.
  std::ofstream(dir / "presets" / "fig1-small.yaml")
      << tiny_spec(100)
      << "figure: {kind: curves, x: model.rank, line: train.seed, title: tiny curves}\n";
  std::ofstream(dir / "presets" / "perfect-small.yaml")
      << "base: {model: {dim: 4, ffn: 16, heads: 1}, task: {points: 3},\n"
         "       train: {steps: 100, batch: 16, eval_batches: 2}}\n"
         "grid: {model.width_multiplier: [1, 2], train.seed: [0, 1]}\n"
         "figure: {kind: heads, x: model.width_multiplier}\n";
  const bool gnuplot = std::system("command -v gnuplot > /dev/null 2>&1") == 0;
  for (const std::string figure : {"fig1", "perfect"}) {
    SCOPED_TRACE(figure);
    const fs::path out = dir / figure;
    const std::string command = "reproduce " + figure + " --presets " + quoted(dir / "presets") +
                                " --out " + quoted(out) + " --threads 1";
    const auto result = run_attnrank(command);
    ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
    EXPECT_NE(result.out.find("report: " + (out / "report.md").string()), std::string::npos)
        << result.out;
    const std::string csv = slurp(out / (figure + ".csv"));
    EXPECT_EQ(count_lines(csv), 7) << csv;  // a header and 6 curve points or heads
    const std::string report = slurp(out / "report.md");
    EXPECT_NE(report.find("attnrank reproduce " + figure + " --scale small"), std::string::npos);
    EXPECT_NE(report.find(figure == "fig1" ? "## Separation" : "## Heads"), std::string::npos)
        << report;
    if (gnuplot) {
      EXPECT_GT(fs::file_size(out / (figure + ".png")), 1000u);
      EXPECT_GT(fs::file_size(out / (figure + ".svg")), 1000u);
      EXPECT_NE(report.find("![" + figure + "](" + figure + ".png)"), std::string::npos);
    }
    const auto again = run_attnrank(command + " --quiet");
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_NE(again.out.find("0 trained now"), std::string::npos) << again.out;
  }
  // Curves: one row per (seed, rank); heads: every head of 2 runs with c = 1 and 2
  // with c = 2.
  const std::string csv = slurp(dir / "fig1" / "fig1.csv");
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "panel,train.seed,model.rank,metric,seeds,mean,std,min,median");
  const std::string heads = slurp(dir / "perfect" / "perfect.csv");
  EXPECT_EQ(heads.substr(0, heads.find('\n')),
            "run_id,line,model.width_multiplier,layer,module,head,angle_to_identity_deg,frobenius,"
            "test_mse");
}

TEST(SweepCli, ReproduceTextPresetOnTheParameterAxis) {
  if (!fs::exists("/usr/share/games/fortunes")) GTEST_SKIP() << "package fortunes not installed";
  const auto dir = fresh_dir("cli_reproduce_text");
  fs::create_directories(dir / "presets");
  // A stand-in for width-lm: tiny causal LMs, head size rule x width, loss
  // against parameter count.
  std::ofstream(dir / "presets" / "width-lm-small.yaml")
      << "base: {model: {heads: 2, ffn: 16, norm: layer, norm_first: true},\n"
         "       task: {name: lm, length: 8}, train: {steps: 30, batch: 4}}\n"
         "grid: {model.head_size: [standard, fixed], model.dim: [4, 8], train.seed: [0, 1]}\n"
         "figure: {kind: curves, x: parameters, line: model.head_size,\n"
         "         metric: test_bits_per_char, log_y: false}\n";
  const fs::path out = dir / "out";
  const auto result = run_attnrank("reproduce width-lm --presets " + quoted(dir / "presets") +
                                   " --out " + quoted(out) + " --threads 1 --quiet");
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
  const std::string csv = slurp(out / "width-lm.csv");
  EXPECT_EQ(count_lines(csv), 5) << csv;  // a header and 2 rules x 2 widths
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "panel,model.head_size,configuration,parameters,metric,seeds,mean,std,min,median");
  EXPECT_NE(csv.find(",test_bits_per_char,2,"), std::string::npos) << csv;
  const std::string report = slurp(out / "report.md");
  EXPECT_NE(report.find("| head size | configuration | parameters |"), std::string::npos) << report;
  // The printed follow-up command groups by the grid's keys, not by the size.
  EXPECT_NE(report.find("--group-by model.head_size,model.dim"), std::string::npos) << report;
  const auto table =
      run_attnrank("results " + quoted(out / "results.db") +
                   " --group-by model.head_size,model.dim --metric test_bits_per_char");
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("test_bits_per_char"), std::string::npos) << table.out;
}

// A results database written by the engine before the layering refactor (every
// closed config choice: norms, positions, head sizes, tasks, distributions) resumes
// today with nothing retrained: run identities and the schema did not move.
TEST(SweepCli, DatabaseFromBeforeTheRefactorResumes) {
  const fs::path dir = fresh_dir("layout_v1");
  const fs::path data = fs::path(ATTNRANK_SOURCE_DIR) / "tests" / "data";
  fs::copy_file(data / "layout_v1_results.db", dir / "results.db");
  const auto result = run_attnrank("sweep " + (data / "layout_v1_sweep.yaml").string() + " --db " +
                                   (dir / "results.db").string() + " --jobs 1");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("72 runs: 72 finished before, 0 trained now"), std::string::npos)
      << result.out;
}

// ---- Hostile input and faults (issue 15) ----------------------------------

TEST(SweepCli, DeeplyNestedDerivedExpressionIsAnErrorNotACrash) {
  const auto dir = fresh_dir("cli_nested_derived");
  const std::string nested = std::string(50000, '(') + "1" + std::string(50000, ')');
  const fs::path spec = write_spec(dir,
                                   "base:\n  model: {dim: 8, ffn: 16}\n"
                                   "grid:\n  train.seed: [0]\n"
                                   "derived:\n  model.heads: \"" +
                                       nested + "\"\n");
  const auto result = run_attnrank("sweep " + quoted(spec) + " --db " + quoted(dir / "r.db"));
  expect_usage_error(result, "nested more than 100 levels deep");
  EXPECT_LT(result.err.size(), 1000u) << "the expression is not echoed whole";
  EXPECT_FALSE(fs::exists(dir / "r.db"));
}

TEST(SweepCli, DeeplyNestedYamlSpecIsAnError) {
  const auto dir = fresh_dir("cli_nested_yaml");
  const fs::path spec = write_spec(dir, "grid:\n  model.heads: " + std::string(100000, '[') + "\n");
  expect_usage_error(run_attnrank("sweep " + quoted(spec) + " --db " + quoted(dir / "r.db")),
                     "invalid YAML");
  EXPECT_FALSE(fs::exists(dir / "r.db"));
}

TEST(SweepCli, DerivedValueOutOfRangeAndHugeGridAreRefused) {
  const auto dir = fresh_dir("cli_derived_range");
  const fs::path spec = write_spec(dir,
                                   "base:\n  model: {dim: 8, ffn: 16}\n"
                                   "grid:\n  train.seed: [0]\n"
                                   "derived:\n  model.heads: 1e300\n");
  expect_usage_error(run_attnrank("sweep " + quoted(spec) + " --db " + quoted(dir / "r.db")),
                     "out of range for an integer key");
  // 10^9 runs: refused from the counts, before any run is expanded.
  std::string grid = "grid:\n";
  for (const char* key : {"model.dim", "model.ffn", "model.layers", "task.points", "train.seed",
                          "train.steps", "train.batch", "train.eval_batches", "train.log_every"})
    grid += std::string("  ") + key + ": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n";
  const fs::path huge = write_spec(dir, grid);
  expect_usage_error(run_attnrank("sweep " + quoted(huge) + " --db " + quoted(dir / "r.db")),
                     "1000000000 runs, more than the 1000000");
  EXPECT_FALSE(fs::exists(dir / "r.db"));
}

TEST(SweepCli, ForeignDatabaseWithOurMetaIsLeftExactlyAsItWas) {
  const auto dir = fresh_dir("cli_foreign_meta");
  const fs::path database = dir / "results.db";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(database.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                         "INSERT INTO meta VALUES ('format', 'attnrank-results'),"
                         " ('schema_version', '2');"
                         "CREATE TABLE runs(id TEXT, loss REAL);",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  const std::string before = slurp(database);
  const fs::path spec = write_spec(dir, tiny_spec(20));
  expect_usage_error(run_attnrank("sweep " + quoted(spec) + " --db " + quoted(database)),
                     "not its runs and metrics tables");
  expect_usage_error(run_attnrank("merge " + quoted(database) + " " + quoted(dir / "none.db")),
                     "no such results database");
  make_database(dir / "good.db", 1);
  expect_usage_error(run_attnrank("merge " + quoted(database) + " " + quoted(dir / "good.db")),
                     "not its runs and metrics tables");
  EXPECT_EQ(slurp(database), before) << "the foreign database was changed";
  for (const char* left : {"results.runs", "results.db.lock", "results.db-wal", "results.db-shm"})
    EXPECT_FALSE(fs::exists(dir / left)) << left;
}

TEST(SweepCli, WriterLockHoldsThroughASymbolicLink) {
  const auto dir = fresh_dir("cli_lock_link");
  const fs::path database = dir / "c.db";
  fs::create_symlink(database, dir / "link.db");
  const fs::path spec = write_spec(dir, tiny_spec(20));
  ResultsStore writer(database.string(), ResultsStore::Mode::kWrite);
  expect_usage_error(
      run_attnrank("sweep " + quoted(spec) + " --db " + quoted(dir / "link.db") + " --quiet"),
      "database is locked by another writer");
  EXPECT_FALSE(fs::exists(dir / "link.runs"));
}

TEST(SweepCli, RefusedSweepAndMergeChangeNothing) {
  const auto dir = fresh_dir("cli_nothing_changed");
  const fs::path spec = write_spec(dir, tiny_spec(20));
  // --runs naming a file.
  std::ofstream(dir / "file") << "x";
  expect_usage_error(run_attnrank("sweep " + quoted(spec) + " --db " + quoted(dir / "a.db") +
                                  " --runs " + quoted(dir / "file")),
                     "--runs");
  EXPECT_FALSE(fs::exists(dir / "a.db"));
  EXPECT_FALSE(fs::exists(dir / "a.db.lock"));
  // --db x.runs: the database and its run directory would be one path.
  expect_usage_error(run_attnrank("sweep " + quoted(spec) + " --db " + quoted(dir / "x.runs")),
                     "--runs");
  EXPECT_FALSE(fs::exists(dir / "x.runs"));
  EXPECT_FALSE(fs::exists(dir / "x.runs.lock"));
  // A device as the merge output: no /dev/null.lock.
  make_database(dir / "good.db", 1);
  expect_usage_error(run_attnrank("merge /dev/null " + quoted(dir / "good.db")),
                     "not a regular file");
  EXPECT_FALSE(fs::exists("/dev/null.lock"));
  // Thread counts above the maximum.
  expect_usage_error(
      run_attnrank("sweep " + quoted(spec) + " --db " + quoted(dir / "b.db") + " --threads 100"),
      "--threads: 100 is more than the 64");
  expect_usage_error(run_attnrank("reproduce fig1 --jobs 0 --out " + quoted(dir / "out")),
                     "--jobs");
  EXPECT_FALSE(fs::exists(dir / "b.db"));
  EXPECT_FALSE(fs::exists(dir / "out"));
}

TEST(SweepCli, CorruptConfigJsonInTheDatabaseExitsTwo) {
  const auto dir = fresh_dir("cli_config_json");
  const fs::path database = dir / "r.db";
  make_database(database, 2);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(database.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE runs SET config_json = '{' WHERE id = 'run1'", nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  expect_usage_error(run_attnrank("results " + quoted(database)), "unreadable config_json");
}

// A closed database is one file in rollback-journal mode (header bytes 18 and 19
// are 1; WAL writes 2), so readers open it on read-only media.
TEST(SweepCli, DatabaseIsLeftReadableFromReadOnlyMedia) {
  const auto dir = fresh_dir("cli_read_only");
  const fs::path database = dir / "r.db";
  const fs::path spec = write_spec(dir, tiny_spec(20));
  const auto sweep =
      run_attnrank("sweep " + quoted(spec) + " --db " + quoted(database) + " --quiet --jobs 2");
  ASSERT_EQ(sweep.exit_code, 0) << sweep.err;
  const std::string bytes = slurp(database);
  ASSERT_GT(bytes.size(), 20u);
  EXPECT_EQ(bytes[18], 1) << "left in WAL mode";
  EXPECT_EQ(bytes[19], 1) << "left in WAL mode";
  EXPECT_FALSE(fs::exists(dir / "r.db-wal"));
  EXPECT_FALSE(fs::exists(dir / "r.db-shm"));
  // A database a writer left in WAL mode (killed) and whose directory cannot take
  // the -shm file: the read falls back to an immutable open. Simulated with a WAL
  // header and no -wal file in a read-only directory (effective for non-root).
  std::string wal = bytes;
  wal[18] = wal[19] = 2;
  fs::create_directories(dir / "ro");
  std::ofstream(dir / "ro" / "w.db", std::ios::binary) << wal;
  chmod((dir / "ro").c_str(), 0555);
  const auto read = run_attnrank("results " + quoted(dir / "ro" / "w.db") + " --runs");
  chmod((dir / "ro").c_str(), 0755);
  EXPECT_EQ(read.exit_code, 0) << read.err;
  EXPECT_EQ(count_lines(read.out), 7) << read.out;
  EXPECT_EQ(slurp(dir / "ro" / "w.db"), wal);
}

TEST(SweepCli, RecoveredDoneRunNeedsItsWeights) {
  const auto dir = fresh_dir("cli_recover_weights");
  const fs::path database = dir / "r.db";
  const fs::path spec = write_spec(dir, tiny_spec(20));
  ASSERT_EQ(
      run_attnrank("sweep " + quoted(spec) + " --db " + quoted(database) + " --quiet").exit_code,
      0);
  // The database is lost; one run directory lost its weights.
  fs::remove(database);
  fs::path damaged;
  for (const auto& entry : fs::directory_iterator(dir / "r.runs")) damaged = entry.path();
  fs::remove(damaged / "model.safetensors");
  const auto again =
      run_attnrank("sweep " + quoted(spec) + " --db " + quoted(database) + " --quiet");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(number_after(again.out, "finished before ("), 5) << again.out;
  EXPECT_EQ(number_before(again.out, " trained now"), 1) << again.out;
  EXPECT_TRUE(fs::exists(damaged / "model.safetensors"));
}
