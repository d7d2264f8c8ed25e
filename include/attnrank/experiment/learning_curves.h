// Learning curves of run directories (`attnrank plot`): metrics.csv read back
// with every column, drawn with gnuplot like the reproduce figures.
#pragma once
#include <string>
#include <vector>

namespace attnrank {

// A run directory's metrics.csv: its column names (the first is "step") and its
// rows, NaN where a cell is empty (a row without a held-out evaluation). A last
// row cut short by a kill is left out. Throws ConfigError for a missing directory,
// a missing or empty metrics.csv, or a file that is not a metrics table.
struct MetricsTable {
  std::vector<std::string> columns;
  std::vector<std::vector<double>> rows;
};
MetricsTable read_metrics_table(const std::string& run_dir);

struct LearningCurvesOptions {
  // Columns to draw, one panel each; empty: train_loss and every validation_*
  // column of the runs.
  std::vector<std::string> metrics;
  bool log_y = false;
  std::string out = "curves.png";  // .png or .svg
};

// Draws the runs' curves (one line per run, labelled by its directory as given)
// into options.out; returns the path written. Throws ConfigError for bad input (a
// run above, an unknown metric, a metric without values, an output that is not
// .png or .svg) and std::runtime_error when gnuplot is missing or fails.
std::string plot_learning_curves(const std::vector<std::string>& run_dirs,
                                 const LearningCurvesOptions& options);

}  // namespace attnrank
