// The SQLite results database. Durability: WAL mode with synchronous=FULL and one
// transaction per finished run, so a sweep killed with SIGKILL keeps every run it
// had committed and leaves a readable file. A lock file (flock, released by the
// kernel when the process dies) keeps a second writer out without ever going stale.
#include "attnrank/experiment/results_store.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "attnrank/core/error.h"

namespace attnrank {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "attnrank-results";
// Version 2 added runs.final_metrics; a version 1 database is upgraded when opened
// for writing and read as it is (final_metrics from test_mse) otherwise.
constexpr const char* kSchemaVersion = "2";

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs(
  id TEXT PRIMARY KEY,
  status TEXT NOT NULL CHECK(status IN ('done', 'diverged', 'failed')),
  error TEXT,
  config_yaml TEXT NOT NULL,
  config_json TEXT NOT NULL,
  test_mse REAL,
  trivial_mse REAL,
  final_train_loss REAL,
  steps INTEGER,
  wall_seconds REAL,
  ms_per_step REAL,
  parameters INTEGER,
  attention_parameters INTEGER,
  threads INTEGER,
  run_dir TEXT,
  sweep TEXT,
  finished_at TEXT NOT NULL,
  final_metrics TEXT);
CREATE TABLE IF NOT EXISTS metrics(
  run_id TEXT NOT NULL,
  step INTEGER NOT NULL,
  train_loss REAL,
  lr REAL,
  grad_norm REAL,
  PRIMARY KEY(run_id, step)) WITHOUT ROWID;
)sql";

constexpr const char* kRunColumns =
    "id, status, error, config_yaml, config_json, test_mse, trivial_mse, final_train_loss, "
    "steps, wall_seconds, ms_per_step, parameters, attention_parameters, threads, run_dir, "
    "sweep, finished_at, final_metrics";
// The same for a version 1 database, which has no final_metrics column.
constexpr const char* kRunColumnsV1 =
    "id, status, error, config_yaml, config_json, test_mse, trivial_mse, final_train_loss, "
    "steps, wall_seconds, ms_per_step, parameters, attention_parameters, threads, run_dir, "
    "sweep, finished_at, NULL";

bool is_busy(int code) {
  return (code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED;
}

bool is_corrupt(int code) {
  return (code & 0xff) == SQLITE_NOTADB || (code & 0xff) == SQLITE_CORRUPT;
}

[[noreturn]] void locked_error(const std::string& path) {
  throw ConfigError(path + ": database is locked by another writer; wait for it to finish");
}

[[noreturn]] void sqlite_error(sqlite3* db, int code, const std::string& path,
                               const std::string& what) {
  const std::string message = db ? sqlite3_errmsg(db) : sqlite3_errstr(code);
  if (is_busy(code)) locked_error(path);
  if (is_corrupt(code))
    throw FormatError(path + ": not an intact SQLite database (" + message + ")");
  if ((code & 0xff) == SQLITE_READONLY || (code & 0xff) == SQLITE_CANTOPEN ||
      (code & 0xff) == SQLITE_IOERR || (code & 0xff) == SQLITE_FULL)
    throw ConfigError(path + ": cannot " + what + " (" + message + ")");
  throw std::runtime_error(path + ": " + what + ": " + message);
}

// One prepared statement; finalised on scope exit.
class Statement {
 public:
  Statement(sqlite3* db, const std::string& sql, const std::string& path) : db_(db), path_(path) {
    const int code = sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt_, nullptr);
    if (code != SQLITE_OK) sqlite_error(db, code, path, "read");
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  void bind(int index, const std::string& text) {
    sqlite3_bind_text(stmt_, index, text.c_str(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  }
  void bind(int index, double value) {
    if (std::isfinite(value))
      sqlite3_bind_double(stmt_, index, value);
    else
      sqlite3_bind_null(stmt_, index);
  }
  void bind(int index, int64_t value) { sqlite3_bind_int64(stmt_, index, value); }

  // True while rows come; false when done.
  bool step(const std::string& what = "read") {
    const int code = sqlite3_step(stmt_);
    if (code == SQLITE_ROW) return true;
    if (code == SQLITE_DONE) return false;
    sqlite_error(db_, code, path_, what);
  }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  std::string text(int column) const {
    const auto* data = sqlite3_column_text(stmt_, column);
    return data ? std::string(reinterpret_cast<const char*>(data)) : std::string();
  }
  double real(int column) const {
    return sqlite3_column_type(stmt_, column) == SQLITE_NULL ? NAN
                                                             : sqlite3_column_double(stmt_, column);
  }
  int64_t integer(int column) const { return sqlite3_column_int64(stmt_, column); }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  const std::string& path_;
};

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm parts{};
  gmtime_r(&now, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return text;
}

// Run directories inside the database's directory are stored relative to it, so a
// database moved together with its runs keeps working.
std::string stored_run_dir(const std::string& database, const std::string& run_dir) {
  if (run_dir.empty()) return run_dir;
  const fs::path base = fs::absolute(fs::path(database)).parent_path().lexically_normal();
  const fs::path dir = fs::absolute(fs::path(run_dir)).lexically_normal();
  const fs::path relative = dir.lexically_relative(base);
  if (!relative.empty() && *relative.begin() != "..") return relative.string();
  return dir.string();
}

std::string resolved_run_dir(const std::string& database, const std::string& stored) {
  if (stored.empty() || fs::path(stored).is_absolute()) return stored;
  return (fs::absolute(fs::path(database)).parent_path() / stored).lexically_normal().string();
}

RunRecord read_run(const Statement& row, const std::string& database) {
  RunRecord run;
  run.id = row.text(0);
  run.status = row.text(1);
  run.error = row.text(2);
  run.config_yaml = row.text(3);
  try {
    const auto config = nlohmann::ordered_json::parse(row.text(4));
    for (const auto& [key, value] : config.items())
      run.config.emplace_back(key, value.get<std::string>());
  } catch (const nlohmann::json::exception& error) {
    throw FormatError(database + ": run " + run.id + ": unreadable config_json (" + error.what() +
                      ")");
  }
  run.test_mse = row.real(5);
  run.trivial_mse = row.real(6);
  run.final_train_loss = row.real(7);
  run.steps = row.integer(8);
  run.wall_seconds = row.real(9);
  run.ms_per_step = row.real(10);
  run.parameters = row.integer(11);
  run.attention_parameters = row.integer(12);
  run.threads = static_cast<int>(row.integer(13));
  run.run_dir = resolved_run_dir(database, row.text(14));
  run.sweep = row.text(15);
  run.finished_at = row.text(16);
  if (const std::string text = row.text(17); !text.empty()) {
    try {
      const auto metrics = nlohmann::json::parse(text);
      for (const auto& [name, value] : metrics.items())
        if (value.is_number()) run.final_metrics[name] = value.get<double>();
    } catch (const nlohmann::json::exception& error) {
      throw FormatError(database + ": run " + run.id + ": unreadable final_metrics (" +
                        error.what() + ")");
    }
  } else if (std::isfinite(run.test_mse)) {
    run.final_metrics["test_mse"] = run.test_mse;  // written before final_metrics existed
  }
  return run;
}

}  // namespace

std::string RunRecord::value(const std::string& key) const {
  for (const auto& [name, text] : config)
    if (name == key) return text;
  return "";
}

const std::vector<std::string>& record_metric_names() {
  static const std::vector<std::string> names = {
      "test_mse",     "trivial_mse", "final_train_loss", "steps",
      "wall_seconds", "ms_per_step", "parameters",       "attention_parameters"};
  return names;
}

double RunRecord::metric(const std::string& name) const {
  if (const auto found = final_metrics.find(name); found != final_metrics.end())
    return found->second;
  if (name == "test_mse") return test_mse;
  if (name == "trivial_mse") return trivial_mse;
  if (name == "final_train_loss") return final_train_loss;
  if (name == "steps") return static_cast<double>(steps);
  if (name == "wall_seconds") return wall_seconds;
  if (name == "ms_per_step") return ms_per_step;
  if (name == "parameters") return static_cast<double>(parameters);
  if (name == "attention_parameters") return static_cast<double>(attention_parameters);
  return NAN;
}

namespace {

// The expected columns of each table (schema version 2; version 1 lacks
// runs.final_metrics).
const std::vector<std::string> kRunsColumnList = {"id",
                                                  "status",
                                                  "error",
                                                  "config_yaml",
                                                  "config_json",
                                                  "test_mse",
                                                  "trivial_mse",
                                                  "final_train_loss",
                                                  "steps",
                                                  "wall_seconds",
                                                  "ms_per_step",
                                                  "parameters",
                                                  "attention_parameters",
                                                  "threads",
                                                  "run_dir",
                                                  "sweep",
                                                  "finished_at",
                                                  "final_metrics"};
const std::vector<std::string> kMetricsColumnList = {"run_id", "step", "train_loss", "lr",
                                                     "grad_norm"};

// "file:PATH?QUERY" with the characters a URI path cannot hold escaped.
std::string sqlite_uri(const std::string& path, const std::string& query) {
  std::string uri = "file:";
  for (const char c : fs::absolute(path).string()) {
    if (c == '%' || c == '?' || c == '#')
      uri += fmt::format("%{:02X}", static_cast<unsigned char>(c));
    else
      uri += c;
  }
  return uri + "?" + query;
}

}  // namespace

ResultsStore::ResultsStore(const std::string& path, Mode mode) : path_(path), mode_(mode) {
  std::error_code error;
  if (fs::is_directory(path, error))
    throw ConfigError(path + ": is a directory, expected a results database file");
  const bool exists = fs::exists(path, error);
  if (mode == Mode::kRead && !exists) throw ConfigError(path + ": no such results database");
  if (exists && !fs::is_regular_file(path, error))
    throw ConfigError(path +
                      ": not a regular file (a device or pipe), expected a results "
                      "database file");
  if (mode == Mode::kRead) {
    open_read_only();
    return;
  }
  const fs::path parent = fs::absolute(fs::path(path)).parent_path();
  if (!fs::is_directory(parent, error))
    throw ConfigError(path + ": cannot create the database: directory " + parent.string() +
                      " does not exist");
  // An existing file is checked read-only first: a foreign, corrupt or damaged file
  // is refused before anything (lock file, journal mode, tables) changes.
  if (exists && fs::file_size(path, error) > 0) {
    open_read_only();
    sqlite3_close(db_);
    db_ = nullptr;
  }
  take_lock();
  try {
    const int code =
        sqlite3_open_v2(path.c_str(), &db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (code != SQLITE_OK) sqlite_error(db_, code, path, "open the database");
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, 3000);
    if (sqlite3_db_readonly(db_, "main") == 1)
      throw ConfigError(path + ": database is not writable");
    check_integrity();
    create_or_check_schema();
  } catch (...) {
    if (db_) sqlite3_close(db_);
    db_ = nullptr;
    release_lock(/*failed=*/true);
    if (!exists) fs::remove(path, error);  // a database this call created and could not use
    throw;
  }
}

void ResultsStore::open_read_only() {
  auto open = [&](bool immutable) {
    const std::string target = immutable ? sqlite_uri(path_, "immutable=1") : path_;
    const int flags =
        SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | (immutable ? SQLITE_OPEN_URI : 0);
    const int code = sqlite3_open_v2(target.c_str(), &db_, flags, nullptr);
    if (code != SQLITE_OK) sqlite_error(db_, code, path_, "open the database");
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, 3000);
    check_integrity();
    check_schema();
  };
  try {
    open(false);
  } catch (const FormatError&) {
    if (db_) sqlite3_close(db_);
    db_ = nullptr;
    throw;
  } catch (const std::exception&) {
    // A database left in WAL mode cannot be opened read-only where its -shm file
    // cannot be created (read-only media). Without pending WAL content the file
    // alone is the whole database: read it as immutable.
    if (db_) sqlite3_close(db_);
    db_ = nullptr;
    std::error_code error;
    const std::string wal = path_ + "-wal";
    if (fs::exists(wal, error) && fs::file_size(wal, error) > 0)
      throw ConfigError(path_ + ": cannot read the database: it has unmerged changes in " + wal +
                        " and this location is read-only; open it once where it is writable "
                        "(attnrank results) or copy it together with " +
                        wal);
    try {
      open(true);
    } catch (...) {
      if (db_) sqlite3_close(db_);
      db_ = nullptr;
      throw;
    }
  }
}

void ResultsStore::take_lock() {
  // The lock file belongs to the resolved database path, so a symbolic link to the
  // database takes the same lock.
  std::error_code error;
  fs::path resolved = fs::weakly_canonical(fs::absolute(path_), error);
  if (error) resolved = fs::absolute(path_);
  lock_path_ = resolved.string() + ".lock";
  for (int attempt = 0; attempt < 8; ++attempt) {
    lock_fd_ = ::open(lock_path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    created_lock_ = lock_fd_ >= 0;
    if (lock_fd_ < 0 && errno == EEXIST) {
      lock_fd_ = ::open(lock_path_.c_str(), O_RDWR | O_CLOEXEC);
      if (lock_fd_ < 0 && errno == ENOENT) continue;  // removed between the two opens
    }
    if (lock_fd_ < 0)
      throw ConfigError(path_ + ": not writable (cannot create " + lock_path_ + ": " +
                        std::strerror(errno) + ")");
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      ::close(lock_fd_);
      lock_fd_ = -1;
      throw ConfigError(path_ + ": database is locked by another writer (an attnrank sweep or " +
                        "merge holds " + lock_path_ + "); wait for it to finish");
    }
    // A failed writer removes the lock file it created: make sure the file locked
    // is still the one at the path.
    struct stat held {
    }, current{};
    if (::fstat(lock_fd_, &held) == 0 && ::stat(lock_path_.c_str(), &current) == 0 &&
        held.st_ino == current.st_ino && held.st_dev == current.st_dev)
      return;
    ::close(lock_fd_);
    lock_fd_ = -1;
  }
  throw ConfigError(path_ + ": cannot take the writer lock " + lock_path_);
}

void ResultsStore::release_lock(bool failed) {
  if (lock_fd_ < 0) return;
  // Removed while still held, so no other writer can hold a lock on it.
  if (failed && created_lock_) ::unlink(lock_path_.c_str());
  ::close(lock_fd_);  // releases the flock
  lock_fd_ = -1;
}

ResultsStore::~ResultsStore() {
  if (db_ && mode_ == Mode::kWrite) {
    // Back to a rollback journal: the file alone is then the whole database, which
    // readers open on read-only media (a busy database stays in WAL; harmless).
    sqlite3_exec(db_, "PRAGMA journal_mode = DELETE", nullptr, nullptr, nullptr);
  }
  if (db_) sqlite3_close(db_);
  release_lock(false);
}

const char* ResultsStore::run_columns() const {
  return version_1_ ? kRunColumnsV1 : kRunColumns;
}

void ResultsStore::exec(const std::string& sql) const {
  char* message = nullptr;
  const int code = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message);
  if (code == SQLITE_OK) return;
  const std::string text = message ? message : sqlite3_errstr(code);
  sqlite3_free(message);
  if (is_busy(code)) locked_error(path_);
  if (is_corrupt(code)) throw FormatError(path_ + ": not an intact SQLite database (" + text + ")");
  if ((code & 0xff) == SQLITE_READONLY || (code & 0xff) == SQLITE_IOERR ||
      (code & 0xff) == SQLITE_FULL || (code & 0xff) == SQLITE_CANTOPEN)
    throw ConfigError(path_ + ": cannot write the database (" + text + ")");
  throw std::runtime_error(path_ + ": " + text);
}

void ResultsStore::check_integrity() {
  Statement check(db_, "PRAGMA quick_check", path_);
  std::string problems;
  while (check.step("check the database")) {
    const std::string line = check.text(0);
    if (line != "ok") problems += (problems.empty() ? "" : "; ") + line;
  }
  if (!problems.empty()) throw FormatError(path_ + ": corrupt database (" + problems + ")");
}

std::vector<std::string> ResultsStore::table_columns(const std::string& table) const {
  std::vector<std::string> columns;
  Statement info(db_, "PRAGMA table_info(" + table + ")", path_);
  while (info.step()) columns.push_back(info.text(1));
  return columns;
}

void ResultsStore::check_schema() {
  int tables = 0;
  bool has_meta = false;
  {
    Statement list(db_, "SELECT name FROM sqlite_master WHERE type = 'table'", path_);
    while (list.step()) ++tables, has_meta = has_meta || list.text(0) == "meta";
  }
  empty_ = tables == 0;
  if (tables > 0 && !has_meta)
    throw FormatError(path_ + ": an SQLite database, but not an attnrank results database");
  if (tables > 0) {
    Statement meta(db_, "SELECT key, value FROM meta", path_);
    std::string format, version;
    while (meta.step()) {
      if (meta.text(0) == "format") format = meta.text(1);
      if (meta.text(0) == "schema_version") version = meta.text(1);
    }
    if (format != kFormat)
      throw FormatError(path_ + ": an SQLite database, but not an attnrank results database");
    if (version == "1") {
      version_1_ = true;
    } else if (version != kSchemaVersion) {
      throw FormatError(path_ + ": results database schema version " + version +
                        ", this attnrank reads versions 1 and " + kSchemaVersion);
    }
    // The tables must be ours too: a file with our meta but other tables is refused
    // before anything writes to it.
    std::vector<std::string> runs = kRunsColumnList;
    if (version_1_) runs.pop_back();
    if (table_columns("runs") != runs || table_columns("metrics") != kMetricsColumnList)
      throw FormatError(path_ +
                        ": has attnrank's meta table but not its runs and metrics "
                        "tables; not an intact attnrank results database");
  }
  if (mode_ == Mode::kRead && empty_)
    throw FormatError(path_ + ": empty file, not an attnrank results database");
}

void ResultsStore::create_or_check_schema() {
  check_schema();
  if (mode_ == Mode::kRead) return;
  // WAL: readers (attnrank results) never block the sweep, and a crash mid-write
  // leaves the last committed state.
  exec("PRAGMA journal_mode = WAL");
  exec("PRAGMA synchronous = FULL");
  begin_write();
  try {
    exec(kSchema);
    exec(fmt::format("INSERT OR IGNORE INTO meta VALUES ('format', '{}'), ('schema_version', '{}')",
                     kFormat, kSchemaVersion));
    if (version_1_) {
      // Old rows keep final_metrics NULL, read as {"test_mse": test_mse}.
      exec("ALTER TABLE runs ADD COLUMN final_metrics TEXT");
      exec(
          fmt::format("UPDATE meta SET value = '{}' WHERE key = 'schema_version'", kSchemaVersion));
    }
    exec("COMMIT");
    version_1_ = false;
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

void ResultsStore::begin_write() {
  if (mode_ != Mode::kWrite) throw std::logic_error(path_ + ": opened read-only");
  // IMMEDIATE takes the write lock now, so a busy database fails here, before any
  // change, with a clear message.
  exec("BEGIN IMMEDIATE");
}

void ResultsStore::write_record(const RunRecord& record) {
  nlohmann::ordered_json config = nlohmann::ordered_json::object();
  for (const auto& [key, value] : record.config) config[key] = value;
  nlohmann::ordered_json final_metrics = nlohmann::ordered_json::object();
  for (const auto& [name, value] : record.final_metrics)
    if (std::isfinite(value)) final_metrics[name] = value;
  {
    Statement insert(db_,
                     fmt::format("INSERT OR REPLACE INTO runs ({}) VALUES (?, ?, ?, ?, ?, ?, ?, "
                                 "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                 kRunColumns),
                     path_);
    insert.bind(1, record.id);
    insert.bind(2, record.status);
    insert.bind(3, record.error);
    insert.bind(4, record.config_yaml);
    insert.bind(5, config.dump());
    insert.bind(6, record.test_mse);
    insert.bind(7, record.trivial_mse);
    insert.bind(8, record.final_train_loss);
    insert.bind(9, record.steps);
    insert.bind(10, record.wall_seconds);
    insert.bind(11, record.ms_per_step);
    insert.bind(12, record.parameters);
    insert.bind(13, record.attention_parameters);
    insert.bind(14, static_cast<int64_t>(record.threads));
    insert.bind(15, stored_run_dir(path_, record.run_dir));
    insert.bind(16, record.sweep);
    insert.bind(17, record.finished_at.empty() ? utc_now() : record.finished_at);
    insert.bind(18, final_metrics.dump());
    insert.step("write the database");
  }
  {
    Statement erase(db_, "DELETE FROM metrics WHERE run_id = ?", path_);
    erase.bind(1, record.id);
    erase.step("write the database");
  }
  Statement metric(db_, "INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?, ?)", path_);
  for (const MetricsRow& row : record.metrics) {
    metric.bind(1, record.id);
    metric.bind(2, row.step);
    metric.bind(3, row.train_loss);
    metric.bind(4, row.lr);
    metric.bind(5, row.grad_norm);
    metric.step("write the database");
    metric.reset();
  }
}

void ResultsStore::record(const RunRecord& record) {
  begin_write();
  try {
    write_record(record);
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

std::vector<RunRecord> ResultsStore::runs(bool with_metrics) const {
  std::vector<RunRecord> runs;
  {
    Statement select(db_, fmt::format("SELECT {} FROM runs ORDER BY rowid", run_columns()), path_);
    while (select.step()) runs.push_back(read_run(select, path_));
  }
  if (with_metrics) {
    Statement select(
        db_, "SELECT step, train_loss, lr, grad_norm FROM metrics WHERE run_id = ? ORDER BY step",
        path_);
    for (RunRecord& run : runs) {
      select.bind(1, run.id);
      while (select.step())
        run.metrics.push_back({select.integer(0), select.real(1), select.real(2), select.real(3)});
      select.reset();
    }
  }
  return runs;
}

std::optional<RunRecord> ResultsStore::find(const std::string& id, bool with_metrics) const {
  std::optional<RunRecord> run;
  {
    Statement select(db_, fmt::format("SELECT {} FROM runs WHERE id = ?", run_columns()), path_);
    select.bind(1, id);
    if (select.step()) run = read_run(select, path_);
  }
  if (run && with_metrics) {
    Statement select(
        db_, "SELECT step, train_loss, lr, grad_norm FROM metrics WHERE run_id = ? ORDER BY step",
        path_);
    select.bind(1, id);
    while (select.step())
      run->metrics.push_back({select.integer(0), select.real(1), select.real(2), select.real(3)});
  }
  return run;
}

std::vector<std::string> ResultsStore::finished_ids() const {
  std::vector<std::string> ids;
  Statement select(db_, "SELECT id FROM runs WHERE status IN ('done', 'diverged')", path_);
  while (select.step()) ids.push_back(select.text(0));
  return ids;
}

MergeCounts ResultsStore::merge_from(const ResultsStore& other) {
  MergeCounts counts;
  const std::vector<RunRecord> incoming = other.runs(true);
  begin_write();
  try {
    for (const RunRecord& run : incoming) {
      const std::optional<RunRecord> existing = find(run.id);
      if (existing && (existing->finished() || !run.finished())) {
        ++counts.kept;
        continue;
      }
      write_record(run);
      ++(existing ? counts.replaced : counts.added);
    }
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  return counts;
}

}  // namespace attnrank
