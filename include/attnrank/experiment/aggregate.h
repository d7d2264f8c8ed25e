// Per-configuration statistics of a sweep's runs over seeds: count, mean +- std,
// min (the estimator the paper plotted) and median of a metric (the test MSE by
// default), and their table, CSV and JSON forms (`attnrank results`).
#pragma once
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "attnrank/experiment/results_store.h"
#include "attnrank/report/statistics.h"

namespace attnrank {

struct GroupStats {
  std::vector<std::pair<std::string, std::string>> key;  // group-by key -> value
  int runs = 0;                                          // runs in the group
  int diverged = 0;                                      // of which diverged (no metrics)
  int failed = 0;                                        // of which failed
  std::string metric;                                    // what `stats` summarises
  SampleStats stats;  // the metric over done runs where it is finite (the seeds)
  SampleStats final_train_loss;
};

// Every metric name `runs` can be aggregated by: record_metric_names() other than
// test_mse and trivial_mse, then every final metric (test_mse, test_loss, ...) that
// some run holds, sorted.
std::vector<std::string> available_metrics(const std::vector<RunRecord>& runs);
// Throws ConfigError naming `metric` and the available ones when no run holds it.
// A set of runs without any final metric (none finished yet) accepts test_mse.
void check_metric(const std::string& metric, const std::vector<RunRecord>& runs);

// `key=value` restriction; values compare as numbers when both sides are numbers.
struct RunFilter {
  std::string key;
  std::string value;
};
RunFilter parse_filter(const std::string& text);
bool matches(const RunRecord& run, const std::vector<RunFilter>& filters);

// Keys whose value differs between `runs`, in documentation order, except
// train.seed and train.threads: the natural group-by of a sweep.
std::vector<std::string> varying_keys(const std::vector<RunRecord>& runs);

// Groups `runs` by `group_by` (sorted: numbers numerically, then text) and
// summarises `metric` in each group (runs without it count as runs, not seeds;
// callers check the name with check_metric). Throws ConfigError for an unknown
// config key.
std::vector<GroupStats> aggregate(const std::vector<RunRecord>& runs,
                                  const std::vector<std::string>& group_by,
                                  const std::string& metric = "test_mse");

enum class TableFormat { kTable, kCsv, kJson };
TableFormat parse_table_format(const std::string& text);
std::string format_groups(const std::vector<GroupStats>& groups,
                          const std::vector<std::string>& group_by, TableFormat format);

// "0.0123" style number for tables; "-" for NaN.
std::string format_number(double value);

}  // namespace attnrank
