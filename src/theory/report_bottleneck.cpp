// attnrank theory bottleneck: best achievable error of one head against its size d_p, and
// the exact construction for d_p >= n.
#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <ostream>

#include "attnrank/core/error.h"
#include "attnrank/report/output_files.h"
#include "attnrank/report/statistics.h"
#include "attnrank/theory/bottleneck.h"
#include "attnrank/theory/reports.h"

namespace attnrank {

void run_bottleneck(const BottleneckOptions& o, const std::string& out_dir, std::ostream& log) {
  if (o.tokens < 2) throw ConfigError("bottleneck: --tokens must be >= 2");
  if (o.dim < o.tokens)
    throw ConfigError("bottleneck: --dim must be >= --tokens (full-rank inputs)");
  if (o.targets < 1 || o.restarts < 1 || o.iterations < 1)
    throw ConfigError("bottleneck: --targets, --restarts and --iterations must be >= 1");
  ensure_output_directory(out_dir);
  const int n = o.tokens, max_size = n + 2;
  BottleneckFitOptions fit_options;
  fit_options.restarts = o.restarts;
  fit_options.max_iterations = o.iterations;
  fit_options.seed = o.seed;

  std::vector<std::vector<double>> fit_errors(max_size + 1), fit_max(max_size + 1),
      exact_double(max_size + 1), exact_float(max_size + 1);
  std::vector<double> uniform_errors;
  std::string csv =
      "target,head_size,fit_frobenius,fit_max,exact_frobenius_double,"
      "exact_max_double,exact_max_float\n";
  for (int t = 0; t < o.targets; ++t) {
    const BottleneckProblem problem = random_bottleneck_problem(n, o.dim, o.seed, t);
    uniform_errors.push_back(
        frobenius_distance(std::vector<double>(problem.target.size(), 1.0 / n), problem.target));
    for (int dp = 1; dp <= max_size; ++dp) {
      const BottleneckFit fit = fit_bottleneck_head(problem, dp, fit_options);
      fit_errors[dp].push_back(fit.frobenius_error);
      fit_max[dp].push_back(fit.max_error);
      std::string exact_columns = ",,";
      if (dp >= n - 1) {
        const HeadWeights head = exact_bottleneck_head(problem, dp);
        const std::vector<double> mapping = head_context_mapping(problem, head);
        const double frob = frobenius_distance(mapping, problem.target);
        const double max_double = max_abs_distance(mapping, problem.target);
        const double max_float =
            max_abs_distance(head_context_mapping_float(problem, head), problem.target);
        exact_double[dp].push_back(max_double);
        exact_float[dp].push_back(max_float);
        exact_columns = fmt::format("{:.3e},{:.3e},{:.3e}", frob, max_double, max_float);
      }
      csv += fmt::format("{},{},{:.9g},{:.9g},{}\n", t, dp, fit.frobenius_error, fit.max_error,
                         dp >= n - 1 ? exact_columns : std::string(",,"));
    }
  }
  const SampleStats uniform = sample_stats(uniform_errors);
  fmt::print(log,
             "Low-rank bottleneck: one head, n = {} tokens, d = {}, {} random positive "
             "column-stochastic targets P (||1/n - P||_F = {:.3f} on average)\n",
             n, o.dim, o.targets, uniform.mean);
  fmt::print(log, "{:>4} {:>24} {:>12} {:>14} {:>14}\n", "d_p", "fit ||P_hat-P||_F (min-max)",
             "fit max|.|", "exact (double)", "exact (float)");
  std::string fit_dat = "# head_size mean min max\n", exact_dat = "# head_size double float\n";
  nlohmann::json sizes = nlohmann::json::array();
  for (int dp = 1; dp <= max_size; ++dp) {
    const SampleStats s = sample_stats(fit_errors[dp]), m = sample_stats(fit_max[dp]);
    const bool exact = dp >= n - 1;
    const double worst_double = exact ? sample_stats(exact_double[dp]).max : NAN;
    const double worst_float = exact ? sample_stats(exact_float[dp]).max : NAN;
    fmt::print(log, "{:>4} {:>24} {:>12.2e} {:>14} {:>14}\n", dp,
               fmt::format("{:.2e} ({:.1e}-{:.1e})", s.mean, s.min, s.max), m.max,
               exact ? fmt::format("{:.1e}", worst_double) : "-",
               exact ? fmt::format("{:.1e}", worst_float) : "-");
    // Log axes: an error of exactly 0 is drawn at 1e-17.
    fit_dat += fmt::format("{} {:.6g} {:.6g} {:.6g}\n", dp, std::max(s.mean, 1e-17),
                           std::max(s.min, 1e-17), std::max(s.max, 1e-17));
    if (exact)
      exact_dat += fmt::format("{} {:.6g} {:.6g}\n", dp, std::max(worst_double, 1e-17),
                               std::max(worst_float, 1e-17));
    sizes.push_back(
        {{"head_size", dp},
         {"fit_frobenius", fit_errors[dp]},
         {"fit_max", fit_max[dp]},
         {"exact_max_double", exact ? nlohmann::json(exact_double[dp]) : nlohmann::json(nullptr)},
         {"exact_max_float", exact ? nlohmann::json(exact_float[dp]) : nlohmann::json(nullptr)}});
  }
  fmt::print(log,
             "(fit: best of {} L-BFGS starts, {} iterations each; exact: the explicit "
             "construction for d_p >= n - 1, max |P_hat - P| over entries and targets)\n",
             o.restarts, o.iterations);
  write_output_file(out_dir, "bottleneck.csv", csv);
  write_output_file(out_dir, "bottleneck_fit.dat", fit_dat);
  write_output_file(out_dir, "bottleneck_exact.dat", exact_dat);
  const nlohmann::json json = {{"experiment", "bottleneck"},
                               {"tokens", n},
                               {"dim", o.dim},
                               {"targets", o.targets},
                               {"restarts", o.restarts},
                               {"iterations", o.iterations},
                               {"seed", o.seed},
                               {"uniform_prediction_frobenius", uniform_errors},
                               {"head_sizes", sizes}};
  write_output_file(out_dir, "bottleneck.json", json.dump(2) + "\n");
  const std::string body = fmt::format(
      "set title 'One attention head, n = {} tokens: best error against head size d_p'\n"
      "set logscale y\nset format y '10^{{%L}}'\nset xlabel 'head size d_p'\n"
      "set ylabel '||P_{{head}} - P||'\nset xtics 1\nset grid\nset key bottom left\n"
      "set arrow from {},graph 0 to {},graph 1 nohead dashtype 2\n"
      "set label 'd_p = n - 1' at {},graph 0.5 offset 0.5,0\n"
      "plot 'bottleneck_fit.dat' using 1:2:3:4 with yerrorlines pt 7 title 'optimised fit, "
      "Frobenius (mean, min-max)', \\\n"
      "     'bottleneck_exact.dat' using 1:2 with points pt 5 ps 1.5 title 'exact construction, "
      "max error (double)', \\\n"
      "     'bottleneck_exact.dat' using 1:3 with points pt 9 ps 1.5 title 'exact construction, "
      "max error (float)'\n",
      n, n - 1, n - 1, n - 1);
  log << render_gnuplot(out_dir, "bottleneck", body).message << "\n";
}

}  // namespace attnrank
