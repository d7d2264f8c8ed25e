#include "report_files.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "attnrank/core/error.h"

namespace attnrank {

void ensure_output_directory(const std::string& dir) {
  if (dir.empty()) throw ConfigError("--out: an output directory is required");
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error || !std::filesystem::is_directory(dir))
    throw ConfigError("--out: cannot create directory " + dir);
}

void write_output_file(const std::string& dir, const std::string& name, const std::string& text) {
  const std::filesystem::path path = std::filesystem::path(dir) / name;
  std::ofstream out(path);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

SampleStats sample_stats(const std::vector<double>& values) {
  SampleStats s;
  if (values.empty()) return s;
  double sum = 0.0;
  for (double v : values) sum += v;
  s.mean = sum / values.size();
  double squares = 0.0;
  for (double v : values) squares += (v - s.mean) * (v - s.mean);
  s.std = values.size() > 1 ? std::sqrt(squares / (values.size() - 1)) : 0.0;
  s.min = *std::min_element(values.begin(), values.end());
  s.max = *std::max_element(values.begin(), values.end());
  return s;
}

}  // namespace attnrank
