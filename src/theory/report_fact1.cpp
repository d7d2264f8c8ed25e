// attnrank theory fact1: test MSE of the Fact 1 construction against beta.
#include <fmt/format.h>
#include <fmt/ostream.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <ostream>

#include "attnrank/core/error.h"
#include "attnrank/report/output_files.h"
#include "attnrank/report/statistics.h"
#include "attnrank/theory/fact1.h"
#include "attnrank/theory/reports.h"

namespace attnrank {

namespace {

// Least-squares slope of log(mse) against log(beta) over the `count` largest positive betas
// with a positive error: -1 is the predicted softmax rate.
double log_log_slope(const std::vector<double>& betas, const std::vector<double>& mse, int count) {
  std::vector<std::pair<double, double>> points;
  for (size_t i = betas.size(); i-- > 0 && static_cast<int>(points.size()) < count;)
    if (betas[i] > 0 && mse[i] > 0) points.emplace_back(std::log(betas[i]), std::log(mse[i]));
  if (points.size() < 2) return NAN;
  double mx = 0, my = 0;
  for (auto [x, y] : points) {
    mx += x;
    my += y;
  }
  mx /= points.size();
  my /= points.size();
  double sxy = 0, sxx = 0;
  for (auto [x, y] : points) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) * (x - mx);
  }
  return sxy / sxx;
}

}  // namespace

void run_fact1(const Fact1Options& options, const std::string& out_dir, std::ostream& log) {
  if (options.dims.empty() || options.points.empty() || options.betas.empty())
    throw ConfigError("fact1: --dims, --points and --betas must be non-empty");
  for (int dim : options.dims)
    if (dim < 2) throw ConfigError("fact1: --dims entries must be >= 2");
  for (int points : options.points)
    if (points < 2) throw ConfigError("fact1: --points entries must be >= 2");
  for (double beta : options.betas)
    if (!(beta >= 0) || !std::isfinite(beta))
      throw ConfigError("fact1: --betas must be finite and >= 0");
  if (options.samples < 2) throw ConfigError("fact1: --samples must be >= 2");
  ensure_output_directory(out_dir);
  std::string csv = "task,dim,points,attention,beta,mse,standard_error\n";
  nlohmann::json series = nlohmann::json::array();
  std::string plot_commands;
  double reference = 0.0;  // mse * beta at the largest beta of the first soft series
  fmt::print(log, "Fact 1: one head, r = d, W_Q W_K^T = +-beta I, W_V W_O = I ({} samples)\n",
             options.samples);
  fmt::print(log, "{:<9} {:>4} {:>4} {:>11} {:>11} {:>11} {:>11} {:>9}\n", "task", "d", "N",
             "soft b=1", "soft b=100", "soft b=1e4", "hard max", "slope");
  for (const TaskKind kind : {TaskKind::kNearest, TaskKind::kFarthest}) {
    const std::string task(name_of(kind));
    for (int dim : options.dims) {
      for (int points : options.points) {
        std::vector<double> soft(options.betas.size()), soft_se(options.betas.size()),
            hard(options.betas.size());
        for (size_t i = 0; i < options.betas.size(); ++i) {
          const double beta = options.betas[i];
          const MonteCarloEstimate s = fact1_mse(kind, dim, points, AttentionKind::kSoftmax, beta,
                                                 options.samples, options.seed);
          const MonteCarloEstimate h = fact1_mse(kind, dim, points, AttentionKind::kHardmax, beta,
                                                 options.samples, options.seed);
          soft[i] = s.mean;
          soft_se[i] = s.standard_error;
          hard[i] = h.mean;
          csv += fmt::format("{},{},{},softmax,{},{:.9g},{:.3g}\n", task, dim, points, beta, s.mean,
                             s.standard_error);
          csv += fmt::format("{},{},{},hardmax,{},{:.9g},{:.3g}\n", task, dim, points, beta, h.mean,
                             h.standard_error);
        }
        double hard_max = 0.0;
        for (size_t i = 0; i < hard.size(); ++i)
          if (options.betas[i] > 0) hard_max = std::max(hard_max, hard[i]);
        const double slope = log_log_slope(options.betas, soft, 4);
        auto soft_at = [&](double beta) {
          for (size_t i = 0; i < options.betas.size(); ++i)
            if (options.betas[i] == beta) return fmt::format("{:.3e}", soft[i]);
          return std::string("-");
        };
        fmt::print(log, "{:<9} {:>4} {:>4} {:>11} {:>11} {:>11} {:>11.3g} {:>9.3f}\n", task, dim,
                   points, soft_at(1), soft_at(100), soft_at(10000), hard_max, slope);
        series.push_back({{"task", task},
                          {"dim", dim},
                          {"points", points},
                          {"betas", options.betas},
                          {"softmax_mse", soft},
                          {"softmax_standard_error", soft_se},
                          {"hardmax_mse", hard},
                          {"hardmax_max_mse_beta_positive", hard_max},
                          {"softmax_log_log_slope", slope}});
        // Figure data: softmax points with beta > 0 and mse > 0 (log axes).
        const std::string name = fmt::format("fact1_{}_d{}_n{}.dat", task, dim, points);
        std::string data = "# beta mse standard_error\n";
        for (size_t i = 0; i < options.betas.size(); ++i)
          if (options.betas[i] > 0 && soft[i] > 0) {
            data += fmt::format("{} {:.9g} {:.3g}\n", options.betas[i], soft[i], soft_se[i]);
            if (reference == 0.0 && i + 1 == options.betas.size())
              reference = soft[i] * options.betas[i];
          }
        write_output_file(out_dir, name, data);
        plot_commands +=
            fmt::format("{}'{}' using 1:2:3 with yerrorlines title '{} d={} N={}'",
                        plot_commands.empty() ? "" : ", \\\n     ", name, task, dim, points);
      }
    }
  }
  fmt::print(log,
             "hard attention: exactly 0 for every beta > 0 (argmax of beta <x, y> is the "
             "nearest point); softmax slope predicted -1 (error ~ 1/beta); limit 0\n");
  write_output_file(out_dir, "fact1.csv", csv);
  const nlohmann::json json = {
      {"experiment", "fact1"}, {"samples", options.samples},      {"seed", options.seed},
      {"analytic_limit", 0.0}, {"predicted_softmax_slope", -1.0}, {"series", series}};
  write_output_file(out_dir, "fact1.json", json.dump(2) + "\n");
  if (reference > 0.0)
    plot_commands += fmt::format(
        ", \\\n     {:.6g}/x with lines dashtype 2 lc 'black' title "
        "'slope -1 (MSE = c / {{/Symbol b}})'",
        reference);
  const std::string body = fmt::format(
      "set title 'Fact 1: one full-rank softmax head, W_QW_K^T = +-{{/Symbol b}}I "
      "(hard attention: MSE = 0 for every {{/Symbol b}} > 0)'\n"
      "set logscale xy\nset xlabel '{{/Symbol b}}'\nset ylabel 'test MSE'\n"
      "set key bottom left font ',9'\nset grid\nset format y '10^{{%L}}'\nplot {}\n",
      plot_commands);
  log << render_gnuplot(out_dir, "fact1", body).message << "\n";
}

}  // namespace attnrank
