#include "attnrank/report/statistics.h"

#include <algorithm>

namespace attnrank {

SampleStats sample_stats(std::vector<double> values) {
  std::erase_if(values, [](double v) { return !std::isfinite(v); });
  SampleStats stats;
  stats.count = static_cast<int>(values.size());
  if (values.empty()) return stats;
  std::sort(values.begin(), values.end());
  double sum = 0.0;
  for (double v : values) sum += v;
  stats.mean = sum / values.size();
  if (values.size() > 1) {
    double squares = 0.0;
    for (double v : values) squares += (v - stats.mean) * (v - stats.mean);
    stats.std = std::sqrt(squares / (values.size() - 1));
  }
  stats.min = values.front();
  stats.max = values.back();
  const size_t mid = values.size() / 2;
  stats.median = values.size() % 2 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
  return stats;
}

}  // namespace attnrank
