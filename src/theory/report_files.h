// Small helpers shared by the theory reports: output directory, text files, statistics.
#pragma once
#include <string>
#include <vector>

namespace attnrank {

// Creates `dir` (and parents); throws ConfigError naming it if that fails.
void ensure_output_directory(const std::string& dir);
// Writes `text` to dir/name; throws std::runtime_error naming the file if that fails.
void write_output_file(const std::string& dir, const std::string& name, const std::string& text);

struct SampleStats {
  double mean = 0.0, std = 0.0, min = 0.0, max = 0.0;
};
// Mean, sample standard deviation (0 for one value), min and max.
SampleStats sample_stats(const std::vector<double>& values);

}  // namespace attnrank
