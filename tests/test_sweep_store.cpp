// The results database: round trip, durability settings, one writer at a time,
// corrupt / foreign / unwritable files, and merging shards.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/file.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "attnrank/config_io/config_io.h"
#include "attnrank/core/error.h"
#include "attnrank/experiment/results_store.h"
#include "attnrank/experiment/sweep.h"
#include "sweep_fixtures.h"

using namespace attnrank;
using attnrank::testing::fresh_dir;
namespace fs = std::filesystem;

namespace {

RunRecord sample_record(const std::string& id, const std::string& status, double mse) {
  RunConfig config = parse_config("model: {dim: 8, heads: 2}", {});
  RunRecord record;
  record.id = id;
  record.status = status;
  record.config_yaml = to_yaml(config);
  record.config = flat_config(config);
  record.test_mse = mse;
  record.trivial_mse = 1.0;
  record.final_train_loss = 0.5;
  record.steps = 100;
  record.wall_seconds = 1.5;
  record.ms_per_step = 0.25;
  record.parameters = 1234;
  record.attention_parameters = 321;
  record.threads = 2;
  record.sweep = "test";
  record.metrics = {{50, 0.9, 0.01, 1.5}, {100, 0.5, 0.001, 0.75}};
  if (status == "failed") record.error = "boom";
  return record;
}

// An outside connection holding the database's write lock.
struct ExternalWriter {
  sqlite3* db = nullptr;
  explicit ExternalWriter(const std::string& path) {
    sqlite3_open(path.c_str(), &db);
    sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
  }
  ~ExternalWriter() {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(db);
  }
};

template <typename Error>
void expect_open_error(const std::string& path, ResultsStore::Mode mode,
                       const std::string& needle) {
  try {
    ResultsStore store(path, mode);
    ADD_FAILURE() << "opened " << path;
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(needle), std::string::npos) << error.what();
  }
}

}  // namespace

TEST(ResultsStore, RecordsRoundTripWithMetrics) {
  const auto dir = fresh_dir("store_roundtrip");
  const std::string path = (dir / "results.db").string();
  {
    ResultsStore store(path, ResultsStore::Mode::kWrite);
    RunRecord done = sample_record("aaaa", "done", 0.125);
    done.run_dir = (dir / "results.runs" / "aaaa").string();
    store.record(done);
    RunRecord diverged = sample_record("bbbb", "diverged", NAN);
    diverged.run_dir = "/elsewhere/bbbb";
    store.record(diverged);
    store.record(sample_record("cccc", "failed", NAN));
  }
  ResultsStore store(path, ResultsStore::Mode::kRead);
  const auto runs = store.runs(true);
  ASSERT_EQ(runs.size(), 3u);
  const RunRecord& done = runs[0];
  EXPECT_EQ(done.id, "aaaa");
  EXPECT_EQ(done.status, "done");
  EXPECT_DOUBLE_EQ(done.test_mse, 0.125);
  EXPECT_EQ(done.steps, 100);
  EXPECT_EQ(done.parameters, 1234);
  EXPECT_EQ(done.attention_parameters, 321);
  EXPECT_EQ(done.value("model.heads"), "2");
  EXPECT_EQ(done.value("model.rank"), "4");
  EXPECT_EQ(done.config.front().first, "model.dim") << "documentation order kept";
  EXPECT_EQ(done.run_dir, (dir / "results.runs" / "aaaa").string());
  ASSERT_EQ(done.metrics.size(), 2u);
  EXPECT_EQ(done.metrics[1].step, 100);
  EXPECT_DOUBLE_EQ(done.metrics[1].grad_norm, 0.75);
  EXPECT_FALSE(done.finished_at.empty());
  EXPECT_TRUE(std::isnan(runs[1].test_mse));
  EXPECT_EQ(runs[1].run_dir, "/elsewhere/bbbb");
  EXPECT_EQ(runs[2].error, "boom");
  auto finished = store.finished_ids();
  std::sort(finished.begin(), finished.end());
  EXPECT_EQ(finished, (std::vector<std::string>{"aaaa", "bbbb"})) << "failed runs are redone";
  EXPECT_TRUE(store.runs(false)[0].metrics.empty());
  EXPECT_FALSE(store.find("zzzz").has_value());
  EXPECT_EQ(store.find("aaaa", true)->metrics.size(), 2u);
}

TEST(ResultsStore, RunDirectoriesMoveWithTheDatabase) {
  const auto dir = fresh_dir("store_move");
  fs::create_directories(dir / "a");
  {
    ResultsStore store((dir / "a" / "results.db").string(), ResultsStore::Mode::kWrite);
    RunRecord record = sample_record("aaaa", "done", 0.5);
    record.run_dir = (dir / "a" / "results.runs" / "aaaa").string();
    store.record(record);
  }
  fs::rename(dir / "a", dir / "b");
  ResultsStore store((dir / "b" / "results.db").string(), ResultsStore::Mode::kRead);
  EXPECT_EQ(store.runs()[0].run_dir, (dir / "b" / "results.runs" / "aaaa").string());
}

// WAL while a writer has it open (readers never block the sweep); a rollback
// journal once closed, so the file alone is the database (read-only media).
TEST(ResultsStore, UsesWriteAheadLoggingWhileOpenAndARollbackJournalWhenClosed) {
  const auto dir = fresh_dir("store_wal");
  const std::string path = (dir / "results.db").string();
  auto journal_mode = [&] {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, nullptr);
    EXPECT_EQ(sqlite3_step(stmt), SQLITE_ROW);
    const std::string mode = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return mode;
  };
  {
    ResultsStore store(path, ResultsStore::Mode::kWrite);
    EXPECT_EQ(journal_mode(), "wal");
  }
  EXPECT_EQ(journal_mode(), "delete");
  EXPECT_FALSE(fs::exists(path + "-wal"));
}

TEST(ResultsStore, OneWriterAtATimeReadersAlways) {
  const auto dir = fresh_dir("store_lock");
  const std::string path = (dir / "results.db").string();
  ResultsStore writer(path, ResultsStore::Mode::kWrite);
  writer.record(sample_record("aaaa", "done", 0.5));
  expect_open_error<ConfigError>(path, ResultsStore::Mode::kWrite, "locked by another writer");
  ResultsStore reader(path, ResultsStore::Mode::kRead);
  EXPECT_EQ(reader.runs().size(), 1u);
  writer.record(sample_record("bbbb", "done", 0.5));
  EXPECT_EQ(reader.runs().size(), 2u) << "a reader sees commits as they happen";
}

TEST(ResultsStore, AnOutsideWriteTransactionIsALockedDatabase) {
  const auto dir = fresh_dir("store_external");
  const std::string path = (dir / "results.db").string();
  { ResultsStore store(path, ResultsStore::Mode::kWrite); }
  {
    ExternalWriter outside(path);
    expect_open_error<ConfigError>(path, ResultsStore::Mode::kWrite, "locked by another writer");
  }
  ResultsStore store(path, ResultsStore::Mode::kWrite);
  {
    ExternalWriter outside(path);
    EXPECT_THROW(store.record(sample_record("aaaa", "done", 0.5)), ConfigError);
  }
  store.record(sample_record("aaaa", "done", 0.5));
  EXPECT_EQ(store.runs().size(), 1u) << "nothing half-written after the failed commit";
}

TEST(ResultsStore, CorruptForeignAndEmptyFiles) {
  const auto dir = fresh_dir("store_corrupt");
  const std::string garbage = (dir / "garbage.db").string();
  std::ofstream(garbage) << std::string(4096, 'x');
  expect_open_error<FormatError>(garbage, ResultsStore::Mode::kWrite, "not an intact SQLite");
  expect_open_error<FormatError>(garbage, ResultsStore::Mode::kRead, "not an intact SQLite");
  EXPECT_EQ(fs::file_size(garbage), 4096u) << "left as it was";

  const std::string foreign = (dir / "foreign.db").string();
  sqlite3* db = nullptr;
  sqlite3_open(foreign.c_str(), &db);
  sqlite3_exec(db, "CREATE TABLE things(x); INSERT INTO things VALUES (1)", nullptr, nullptr,
               nullptr);
  sqlite3_close(db);
  expect_open_error<FormatError>(foreign, ResultsStore::Mode::kWrite, "not an attnrank results");

  // A database whose pages were overwritten in the middle.
  const std::string damaged = (dir / "damaged.db").string();
  {
    ResultsStore store(damaged, ResultsStore::Mode::kWrite);
    for (int i = 0; i < 40; ++i) store.record(sample_record("run" + std::to_string(i), "done", i));
  }
  {
    std::fstream file(damaged, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(4096);  // pages 2 and 3: the meta table and its index
    const std::string noise(8192, '\x5a');
    file.write(noise.data(), static_cast<std::streamsize>(noise.size()));
  }
  EXPECT_THROW(ResultsStore(damaged, ResultsStore::Mode::kRead), FormatError);

  const std::string empty = (dir / "empty.db").string();
  std::ofstream{empty};
  expect_open_error<FormatError>(empty, ResultsStore::Mode::kRead, "empty");
  ResultsStore created(empty, ResultsStore::Mode::kWrite);  // an empty file becomes a database
  EXPECT_TRUE(created.runs().empty());
}

TEST(ResultsStore, UnwritableAndMissingPaths) {
  const auto dir = fresh_dir("store_paths");
  expect_open_error<ConfigError>((dir / "no" / "such" / "r.db").string(),
                                 ResultsStore::Mode::kWrite, "does not exist");
  std::ofstream(dir / "file") << "x";
  expect_open_error<ConfigError>((dir / "file" / "r.db").string(), ResultsStore::Mode::kWrite,
                                 "does not exist");
  expect_open_error<ConfigError>(dir.string(), ResultsStore::Mode::kWrite, "is a directory");
  expect_open_error<ConfigError>((dir / "missing.db").string(), ResultsStore::Mode::kRead,
                                 "no such results database");
  EXPECT_FALSE(fs::exists(dir / "missing.db")) << "reading never creates";
}

TEST(ResultsStore, MergeAddsNewRunsAndPrefersFinishedOverFailed) {
  const auto dir = fresh_dir("store_merge");
  const std::string a = (dir / "a.db").string(), b = (dir / "b.db").string();
  {
    ResultsStore store(a, ResultsStore::Mode::kWrite);
    store.record(sample_record("r1", "done", 0.1));
    store.record(sample_record("r2", "failed", NAN));
    store.record(sample_record("r3", "done", 0.3));
  }
  {
    ResultsStore store(b, ResultsStore::Mode::kWrite);
    store.record(sample_record("r2", "done", 0.2));
    store.record(sample_record("r3", "done", 99.0));  // already finished in a: a's wins
    store.record(sample_record("r4", "diverged", NAN));
  }
  ResultsStore out((dir / "out.db").string(), ResultsStore::Mode::kWrite);
  const MergeCounts first = out.merge_from(ResultsStore(a, ResultsStore::Mode::kRead));
  EXPECT_EQ(first.added, 3);
  const MergeCounts second = out.merge_from(ResultsStore(b, ResultsStore::Mode::kRead));
  EXPECT_EQ(second.added, 1);
  EXPECT_EQ(second.replaced, 1);
  EXPECT_EQ(second.kept, 1);
  EXPECT_EQ(out.runs().size(), 4u);
  EXPECT_EQ(out.find("r2")->status, "done");
  EXPECT_DOUBLE_EQ(out.find("r3")->test_mse, 0.3);
  EXPECT_EQ(out.find("r2", true)->metrics.size(), 2u);
  const MergeCounts again = out.merge_from(ResultsStore(b, ResultsStore::Mode::kRead));
  EXPECT_EQ(again.added + again.replaced, 0) << "merging is idempotent";
}

TEST(ResultsStore, FinalMetricsRoundTripAndMerge) {
  const auto dir = fresh_dir("store_final_metrics");
  const std::string a = (dir / "a.db").string();
  RunRecord text = sample_record("text", "done", NAN);
  text.final_metrics = {{"test_loss", 1.25}, {"validation_perplexity", 3.5}, {"test_nan", NAN}};
  RunRecord point = sample_record("point", "done", 0.125);
  point.final_metrics = {{"test_mse", 0.125}};
  {
    ResultsStore store(a, ResultsStore::Mode::kWrite);
    store.record(text);
    store.record(point);
  }
  {
    ResultsStore store(a, ResultsStore::Mode::kRead);
    const RunRecord read = *store.find("text");
    EXPECT_EQ(read.final_metrics,
              (std::map<std::string, double>{{"test_loss", 1.25}, {"validation_perplexity", 3.5}}))
        << "non-finite values are left out";
    EXPECT_DOUBLE_EQ(read.metric("test_loss"), 1.25);
    EXPECT_TRUE(std::isnan(read.metric("test_mse")));
    EXPECT_DOUBLE_EQ(store.find("point")->metric("test_mse"), 0.125);
  }
  // The column holds JSON that SQLite (and pandas) can read directly.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(a.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(db,
                     "SELECT json_extract(final_metrics, '$.validation_perplexity') FROM runs "
                     "WHERE id = 'text'",
                     -1, &stmt, nullptr);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_DOUBLE_EQ(sqlite3_column_double(stmt, 0), 3.5);
  sqlite3_finalize(stmt);
  sqlite3_close(db);

  ResultsStore merged((dir / "merged.db").string(), ResultsStore::Mode::kWrite);
  merged.merge_from(ResultsStore(a, ResultsStore::Mode::kRead));
  EXPECT_DOUBLE_EQ(merged.find("text")->metric("validation_perplexity"), 3.5) << "merge keeps them";
  EXPECT_DOUBLE_EQ(merged.find("point")->metric("test_mse"), 0.125);
}

TEST(ResultsStore, ReadsAndUpgradesAVersion1Database) {
  const auto dir = fresh_dir("store_version1");
  const std::string path = (dir / "old.db").string();
  // The version 1 schema: no final_metrics column.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('format', 'attnrank-results'), ('schema_version', '1');
CREATE TABLE runs(id TEXT PRIMARY KEY, status TEXT NOT NULL, error TEXT,
  config_yaml TEXT NOT NULL, config_json TEXT NOT NULL, test_mse REAL, trivial_mse REAL,
  final_train_loss REAL, steps INTEGER, wall_seconds REAL, ms_per_step REAL,
  parameters INTEGER, attention_parameters INTEGER, threads INTEGER, run_dir TEXT,
  sweep TEXT, finished_at TEXT NOT NULL);
CREATE TABLE metrics(run_id TEXT NOT NULL, step INTEGER NOT NULL, train_loss REAL, lr REAL,
  grad_norm REAL, PRIMARY KEY(run_id, step)) WITHOUT ROWID;
INSERT INTO runs VALUES ('old', 'done', '', 'model: {}', '{"model.dim": "8"}', 0.25, 1, 0.3,
  100, 1.0, 0.5, 10, 5, 1, '', 'v1', '2026-01-01T00:00:00Z');
)sql",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  {
    ResultsStore reader(path, ResultsStore::Mode::kRead);
    const RunRecord old = reader.runs().at(0);
    EXPECT_EQ(old.final_metrics, (std::map<std::string, double>{{"test_mse", 0.25}}));
  }
  {
    ResultsStore writer(path, ResultsStore::Mode::kWrite);  // upgrades to version 2
    RunRecord text = sample_record("new", "done", NAN);
    text.final_metrics = {{"test_loss", 2.0}};
    writer.record(text);
    EXPECT_DOUBLE_EQ(writer.find("old")->metric("test_mse"), 0.25);
    EXPECT_DOUBLE_EQ(writer.find("new")->metric("test_loss"), 2.0);
  }
  ResultsStore reader(path, ResultsStore::Mode::kRead);
  EXPECT_EQ(reader.runs().size(), 2u);
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'schema_version'", -1, &stmt, nullptr);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), "2");
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}
