// attnrank theory random-features: optimal MSE of H random rank-1 hard-attention heads.
#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <ostream>

#include "attnrank/core/error.h"
#include "attnrank/report/output_files.h"
#include "attnrank/report/statistics.h"
#include "attnrank/theory/random_features.h"
#include "attnrank/theory/reports.h"

namespace attnrank {

namespace {

constexpr double kZ99 = 2.5758;  // two-sided 99% normal quantile

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::vector<int> head_grid(int max_heads) {
  std::vector<int> grid;
  for (int h = 1; h < max_heads; h *= 2) grid.push_back(h);
  grid.push_back(max_heads);
  return grid;
}

RandomHeads first_heads(const RandomHeads& heads, int count) {
  RandomHeads prefix;
  prefix.dim = heads.dim;
  prefix.queries.assign(heads.queries.begin(),
                        heads.queries.begin() + static_cast<size_t>(count) * heads.dim);
  prefix.keys.assign(heads.keys.begin(),
                     heads.keys.begin() + static_cast<size_t>(count) * heads.dim);
  return prefix;
}

void validate(const RandomFeaturesOptions& o) {
  if (o.dims.empty()) throw ConfigError("random-features: --dims must be non-empty");
  for (int d : o.dims)
    if (d < 2) throw ConfigError("random-features: --dims entries must be >= 2");
  if (o.max_heads < 1) throw ConfigError("random-features: --max-heads must be >= 1");
  if (o.trials < 1) throw ConfigError("random-features: --trials must be >= 1");
  const auto& names = head_direction_names();
  if (std::find(names.begin(), names.end(), o.directions) == names.end())
    throw ConfigError(
        "random-features: --directions must be independent, tied, authors or "
        "authors-normalised");
  if (o.solver != "auto" && o.solver != "cholesky" && o.solver != "cg")
    throw ConfigError("random-features: --solver must be auto, cholesky or cg");
  if (o.check_heads < 0 || o.check_heads > o.max_heads)
    throw ConfigError("random-features: --check-heads must be in [0, --max-heads]");
  if (!(o.memory_gb > 0) || !std::isfinite(o.memory_gb))
    throw ConfigError("random-features: --memory-gb must be a finite number > 0");
  if (!(o.tolerance > 0) || !std::isfinite(o.tolerance) || !(o.cg_tolerance > 0) ||
      !std::isfinite(o.cg_tolerance))
    throw ConfigError("random-features: --tolerance and --cg-tolerance must be finite and > 0");
  if (o.cg_max_iterations < 1)
    throw ConfigError("random-features: --cg-max-iterations must be >= 1");
  if (o.check_heads > 0 && o.check_samples < 2)
    throw ConfigError("random-features: --check-samples must be >= 2");
}

}  // namespace

void run_random_features(const RandomFeaturesOptions& o, const std::string& out_dir,
                         std::ostream& log) {
  validate(o);
  ensure_output_directory(out_dir);
  const auto& names = head_direction_names();
  const HeadDirections directions = static_cast<HeadDirections>(
      std::find(names.begin(), names.end(), o.directions) - names.begin());
  const double dense_gb = 8.0 * o.max_heads * double(o.max_heads) / 1e9;
  const bool cholesky = o.solver == "cholesky" || (o.solver == "auto" && dense_gb <= o.memory_gb);
  const std::vector<int> grid = head_grid(o.max_heads);
  fmt::print(log,
             "Random features: H rank-1 hard-attention heads ({} directions), optimal output "
             "weights, N = 2 nearest target; solver {} ({:.2f} GB dense matrix), {} trials\n",
             o.directions, cholesky ? "prefix Cholesky" : "matrix-free CG", dense_gb, o.trials);

  std::string raw_csv = "dim,heads,trial,mse\n", summary_csv = "dim,heads,mean,std,min,max\n";
  nlohmann::json per_dim = nlohmann::json::array();
  std::string plot_commands;
  struct Row {
    int dim, degree;
    double bound, seconds;
    std::vector<SampleStats> stats;
    std::string check;
  };
  std::vector<Row> rows;
  for (int dim : o.dims) {
    const auto start = std::chrono::steady_clock::now();
    const HeadTargetProduct b(dim, o.tolerance);
    std::vector<std::vector<double>> mse(grid.size());  // [point][trial]
    nlohmann::json trials_json = nlohmann::json::array();
    for (int trial = 0; trial < o.trials; ++trial) {
      const auto trial_start = std::chrono::steady_clock::now();
      const RandomHeads heads = draw_random_heads(dim, o.max_heads, o.seed, trial, directions);
      nlohmann::json trial_json = {{"trial", trial}};
      if (cholesky) {
        const PrefixCurve curve = optimal_mse_by_prefix(heads, b);
        for (size_t i = 0; i < grid.size(); ++i) mse[i].push_back(curve.mse[grid[i] - 1]);
        trial_json["dropped_heads"] = curve.dropped;
      } else {
        nlohmann::json cg_json = nlohmann::json::array();
        for (size_t i = 0; i < grid.size(); ++i) {
          const ConjugateGradientResult r = optimal_mse_conjugate_gradient(
              first_heads(heads, grid[i]), b, o.cg_tolerance, o.cg_max_iterations);
          mse[i].push_back(r.mse);
          cg_json.push_back({{"heads", grid[i]},
                             {"iterations", r.iterations},
                             {"relative_residual", r.relative_residual},
                             {"converged", r.converged}});
        }
        trial_json["conjugate_gradient"] = cg_json;
      }
      trial_json["seconds"] = seconds_since(trial_start);
      trials_json.push_back(trial_json);
      for (size_t i = 0; i < grid.size(); ++i)
        raw_csv += fmt::format("{},{},{},{:.9g}\n", dim, grid[i], trial, mse[i].back());
      fmt::print(log, "  d = {:>3} trial {}/{}: MSE(H = {}) = {:.5f} ({:.1f} s)\n", dim, trial + 1,
                 o.trials, o.max_heads, mse.back().back(), trial_json["seconds"].get<double>());
      log.flush();
    }
    Row row{dim, b.max_degree(), b.error_bound(), 0.0, {}, "skipped"};
    std::string data = "# heads mean std min max\n";
    nlohmann::json curve_json = nlohmann::json::array();
    for (size_t i = 0; i < grid.size(); ++i) {
      const SampleStats s = sample_stats(mse[i]);
      row.stats.push_back(s);
      summary_csv += fmt::format("{},{},{:.9g},{:.3g},{:.9g},{:.9g}\n", dim, grid[i], s.mean, s.std,
                                 s.min, s.max);
      data += fmt::format("{} {:.9g} {:.3g} {:.9g} {:.9g}\n", grid[i], s.mean, s.std, s.min, s.max);
      curve_json.push_back({{"heads", grid[i]},
                            {"mean", s.mean},
                            {"std", s.std},
                            {"min", s.min},
                            {"max", s.max},
                            {"trials", mse[i]}});
    }
    nlohmann::json check_json = nullptr;
    if (o.check_heads > 0) {
      // Trial 0's first heads: the same optimum as its curve at that H.
      const RandomHeads heads =
          first_heads(draw_random_heads(dim, o.check_heads, o.seed, 0, directions), o.check_heads);
      const std::vector<double> a = optimal_output_weights(heads, b);
      const double closed = closed_form_mse(heads, b, a);
      const MonteCarloEstimate mc = head_mixture_mse_monte_carlo(heads, a, o.check_samples, o.seed);
      // 99% interval: with four dimensions a 95% interval would miss about one run in five.
      const double z = (mc.mean - closed) / mc.standard_error;
      const bool inside = std::abs(z) <= kZ99;
      row.check = fmt::format("{:.4f} vs {:.4f}+-{:.4f} (z = {:+.2f}) {}", closed, mc.mean,
                              kZ99 * mc.standard_error, z, inside ? "inside" : "OUTSIDE");
      check_json = {
          {"heads", o.check_heads},      {"closed_form_mse", closed},
          {"monte_carlo_mse", mc.mean},  {"monte_carlo_standard_error", mc.standard_error},
          {"samples", mc.samples},       {"z", z},
          {"inside_99_interval", inside}};
    }
    row.seconds = seconds_since(start);
    rows.push_back(row);
    const std::string name = fmt::format("random_features_d{}.dat", dim);
    write_output_file(out_dir, name, data);
    plot_commands += fmt::format("{}'{}' using 1:2:4:5 with yerrorlines title 'd = {}'",
                                 plot_commands.empty() ? "" : ", \\\n     ", name, dim);
    per_dim.push_back({{"dim", dim},
                       {"gegenbauer_degree", b.max_degree()},
                       {"vote_correlation_error_bound", b.error_bound()},
                       {"seconds", row.seconds},
                       {"curve", curve_json},
                       {"trials", trials_json},
                       {"monte_carlo_check", check_json}});
  }

  fmt::print(log, "\n{:>4} {:>6} {:>8} ", "d", "degree", "bound");
  std::vector<size_t> shown;
  for (size_t i = 0; i < grid.size(); i += 4) shown.push_back(i);
  if (shown.back() != grid.size() - 1) shown.push_back(grid.size() - 1);
  for (size_t i : shown) fmt::print(log, "{:>17}", fmt::format("H={}", grid[i]));
  fmt::print(log, " {:>8}  MC check at H={} (closed vs MC +-99%)\n", "seconds", o.check_heads);
  for (const Row& row : rows) {
    fmt::print(log, "{:>4} {:>6} {:>8.1e} ", row.dim, row.degree, row.bound);
    for (size_t i : shown)
      fmt::print(log, "{:>17}", fmt::format("{:.4f}+-{:.4f}", row.stats[i].mean, row.stats[i].std));
    fmt::print(log, " {:>8.1f}  {}\n", row.seconds, row.check);
  }
  fmt::print(log,
             "(mean +- std over trials; 0.5 is the error of the best query-independent "
             "prediction (x_1 + x_2)/2, 0 the target)\n");

  write_output_file(out_dir, "random_features.csv", raw_csv);
  write_output_file(out_dir, "random_features_summary.csv", summary_csv);
  const nlohmann::json json = {{"experiment", "random-features"},
                               {"directions", o.directions},
                               {"solver", cholesky ? "cholesky" : "cg"},
                               {"max_heads", o.max_heads},
                               {"trials", o.trials},
                               {"seed", o.seed},
                               {"tolerance", o.tolerance},
                               {"dims", per_dim}};
  write_output_file(out_dir, "random_features.json", json.dump(2) + "\n");
  const std::string body = fmt::format(
      "set title 'Random rank-1 hard-attention heads, optimal output weights (N = 2 nearest; "
      "mean and min-max over {} trials)'\n"
      "set logscale x 2\nset format x '2^{{%L}}'\nset xlabel 'heads H'\nset ylabel 'MSE'\n"
      "set yrange [0:1]\nset grid\nset key top right\n"
      "plot {}, \\\n     0.5 with lines dashtype 2 lc 'black' title 'best query-independent "
      "prediction'\n",
      o.trials, plot_commands);
  log << render_gnuplot(out_dir, "random_features", body).message << "\n";
}

}  // namespace attnrank
