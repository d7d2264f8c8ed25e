// Per-configuration statistics of a sweep's runs over seeds: count, mean +- std,
// min (the estimator the paper plotted) and median of the test MSE, and their
// table, CSV and JSON forms (`attnrank results`).
#pragma once
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "attnrank/results_store.h"

namespace attnrank {

struct SampleStats {
  int count = 0;  // finite values
  double mean = NAN;
  double std = NAN;  // sample standard deviation (n - 1); NaN below two values
  double min = NAN;
  double median = NAN;
  double max = NAN;
};
SampleStats sample_stats(std::vector<double> values);

struct GroupStats {
  std::vector<std::pair<std::string, std::string>> key;  // group-by key -> value
  int runs = 0;                                          // runs in the group
  int diverged = 0;                                      // of which diverged (no test MSE)
  int failed = 0;                                        // of which failed
  SampleStats test_mse;  // over runs with a finite test MSE (the seeds)
  SampleStats final_train_loss;
};

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
// summarises each group. Throws ConfigError for a key that no run has.
std::vector<GroupStats> aggregate(const std::vector<RunRecord>& runs,
                                  const std::vector<std::string>& group_by);

enum class TableFormat { kTable, kCsv, kJson };
TableFormat parse_table_format(const std::string& text);
std::string format_groups(const std::vector<GroupStats>& groups,
                          const std::vector<std::string>& group_by, TableFormat format);

// "0.0123" style number for tables; "-" for NaN.
std::string format_number(double value);

}  // namespace attnrank
