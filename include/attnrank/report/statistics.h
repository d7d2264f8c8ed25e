// Summary statistics of a sample (seeds of one configuration, Monte Carlo trials),
// shared by the sweep aggregation and the theory reports.
#pragma once
#include <cmath>
#include <vector>

namespace attnrank {

struct SampleStats {
  int count = 0;  // finite values
  double mean = NAN;
  double std = NAN;  // sample standard deviation (n - 1); NaN below two values
  double min = NAN;
  double median = NAN;
  double max = NAN;
};
// Statistics of the finite values (NaN and infinities are left out and not counted).
SampleStats sample_stats(std::vector<double> values);

}  // namespace attnrank
