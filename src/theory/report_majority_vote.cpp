// attnrank theory majority-vote: error of the two-layer majority-vote network against the
// number of heads, and the heads needed for a target error against d.
#include <fmt/format.h>
#include <fmt/ostream.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <ostream>

#include "attnrank/core/error.h"
#include "attnrank/report/output_files.h"
#include "attnrank/report/statistics.h"
#include "attnrank/theory/majority_vote.h"
#include "attnrank/theory/random_features.h"
#include "attnrank/theory/reports.h"

namespace attnrank {

void run_majority_vote(const MajorityVoteOptions& o, const std::string& out_dir,
                       std::ostream& log) {
  if (o.dims.empty() || o.heads.empty())
    throw ConfigError("majority-vote: --dims and --heads must be non-empty");
  for (int d : o.dims)
    if (d < 2) throw ConfigError("majority-vote: --dims entries must be >= 2");
  for (int h : o.heads)
    if (h < 1) throw ConfigError("majority-vote: --heads entries must be >= 1");
  for (double t : o.targets)
    if (!(t > 0 && t < 1)) throw ConfigError("majority-vote: --targets must be in (0, 1)");
  if (o.draws < 1 || o.samples < 2)
    throw ConfigError("majority-vote: --draws must be >= 1 and --samples >= 2");
  if (o.one_layer_max_heads < 0)
    throw ConfigError("majority-vote: --one-layer-max-heads must be >= 0 (0: skip)");
  ensure_output_directory(out_dir);

  fmt::print(log,
             "Majority vote (two layers of rank-1 hard-attention heads, N = 2 nearest): MSE, "
             "Monte Carlo through the engine ({} voter draws x {} samples) vs expected\n",
             o.draws, o.samples);
  fmt::print(log, "{:>4} {:>6} {:>18} {:>10} {:>10} {:>10}\n", "d", "H", "MC (+-95%)", "expected",
             "sqrt-law", "one layer");
  std::string csv =
      "dim,heads,monte_carlo_mse,standard_error,expected_mse,asymptotic_mse,"
      "one_layer_mse\n";
  nlohmann::json dims_json = nlohmann::json::array();
  std::string plot_commands;
  const char* separator = ", \\\n     ";
  int color = 1;
  for (int dim : o.dims) {
    // One-layer comparison: the same tied voters as features, optimal linear output weights.
    std::vector<double> one_layer;
    int one_layer_max = 0;
    for (int h : o.heads)
      if (h <= o.one_layer_max_heads) one_layer_max = std::max(one_layer_max, h);
    if (one_layer_max > 0) {
      const HeadTargetProduct b(dim);
      one_layer = optimal_mse_by_prefix(
                      draw_random_heads(dim, one_layer_max, o.seed, 0, HeadDirections::kTied), b)
                      .mse;
    }
    std::string data = "# heads mc se expected asymptotic one_layer\n";
    nlohmann::json points = nlohmann::json::array();
    for (int heads : o.heads) {
      double sum = 0.0, variance = 0.0;
      for (int draw = 0; draw < o.draws; ++draw) {
        const MajorityVoteNetwork net = build_majority_vote(draw_random_heads(
            dim, heads, o.seed, static_cast<uint64_t>(draw), HeadDirections::kTied));
        const MonteCarloEstimate mc =
            majority_vote_mse_monte_carlo(net, o.samples, o.seed * 1000003 + draw);
        sum += mc.mean;
        variance += mc.standard_error * mc.standard_error;
      }
      const double mc_mean = sum / o.draws, mc_se = std::sqrt(variance) / o.draws;
      const double expected = majority_vote_expected_mse(dim, heads);
      const double asymptotic = majority_vote_asymptotic_mse(dim, heads);
      const double one = heads <= one_layer_max ? one_layer[heads - 1] : NAN;
      fmt::print(log, "{:>4} {:>6} {:>18} {:>10.4f} {:>10.4f} {:>10}\n", dim, heads,
                 fmt::format("{:.4f}+-{:.4f}", mc_mean, 1.96 * mc_se), expected, asymptotic,
                 std::isnan(one) ? std::string("-") : fmt::format("{:.4f}", one));
      csv += fmt::format("{},{},{:.9g},{:.3g},{:.9g},{:.9g},{}\n", dim, heads, mc_mean, mc_se,
                         expected, asymptotic, std::isnan(one) ? "" : fmt::format("{:.9g}", one));
      data += fmt::format("{} {:.9g} {:.3g} {:.9g} {:.9g} {}\n", heads, mc_mean, mc_se, expected,
                          asymptotic, std::isnan(one) ? "NaN" : fmt::format("{:.9g}", one));
      points.push_back(
          {{"heads", heads},
           {"monte_carlo_mse", mc_mean},
           {"standard_error", mc_se},
           {"expected_mse", expected},
           {"asymptotic_mse", asymptotic},
           {"one_layer_mse", std::isnan(one) ? nlohmann::json(nullptr) : nlohmann::json(one)}});
    }
    const std::string name = fmt::format("majority_vote_d{}.dat", dim);
    write_output_file(out_dir, name, data);
    plot_commands += fmt::format(
        "{}'{}' using 1:2:3 with yerrorbars lc {} pt 7 title 'd = {}: two layers (Monte Carlo)'"
        "{}'{}' using 1:4 with lines lc {} notitle"
        "{}'{}' using 1:6 with linespoints lc {} dashtype 2 pt 4 title 'd = {}: one layer'",
        plot_commands.empty() ? "" : separator, name, color, dim, separator, name, color, separator,
        name, color, dim);
    ++color;
    dims_json.push_back({{"dim", dim}, {"points", points}});
  }

  // Heads needed for a target error: polynomial (about d / eps^2) growth in d.
  fmt::print(log, "\nheads needed (smallest odd H) for expected MSE <= target:\n{:>4}", "d");
  for (double t : o.targets) fmt::print(log, "{:>12}", fmt::format("eps={}", t));
  fmt::print(log, "\n");
  std::string needed_csv = "dim,target_mse,heads\n", needed_dat = "# dim";
  for (double t : o.targets) needed_dat += fmt::format(" eps={}", t);
  needed_dat += "\n";
  nlohmann::json needed_json = nlohmann::json::array();
  std::vector<int> sweep_dims = o.dims;
  for (int extra : {128, 256, 512})
    if (extra > sweep_dims.back()) sweep_dims.push_back(extra);
  for (int dim : sweep_dims) {
    fmt::print(log, "{:>4}", dim);
    needed_dat += fmt::format("{}", dim);
    for (double t : o.targets) {
      const int heads = majority_vote_heads_needed(dim, t);
      fmt::print(log, "{:>12}", heads);
      needed_csv += fmt::format("{},{},{}\n", dim, t, heads);
      needed_dat += fmt::format(" {}", heads);
      needed_json.push_back({{"dim", dim}, {"target_mse", t}, {"heads", heads}});
    }
    fmt::print(log, "\n");
    needed_dat += "\n";
  }
  fmt::print(log, "(large-H law: MSE ~ c_d sqrt(2 pi / H) ~ sqrt(d / H), so H ~ d / eps^2)\n");

  write_output_file(out_dir, "majority_vote.csv", csv);
  write_output_file(out_dir, "majority_vote_heads_needed.csv", needed_csv);
  write_output_file(out_dir, "majority_vote_heads_needed.dat", needed_dat);
  const nlohmann::json json = {{"experiment", "majority-vote"},
                               {"draws", o.draws},
                               {"samples_per_draw", o.samples},
                               {"seed", o.seed},
                               {"dims", dims_json},
                               {"heads_needed", needed_json}};
  write_output_file(out_dir, "majority_vote.json", json.dump(2) + "\n");

  const std::string body = fmt::format(
      "set title 'N = 2 nearest neighbour, rank-1 heads: two layers (majority vote; points "
      "Monte Carlo, lines expected) vs one layer'\n"
      "set logscale xy\nset xlabel 'heads H'\nset ylabel 'test MSE'\nset grid\n"
      "set key bottom left font ',9'\nplot {}\n",
      plot_commands);
  log << render_gnuplot(out_dir, "majority_vote", body).message << "\n";
  std::string needed_plot;
  for (size_t i = 0; i < o.targets.size(); ++i)
    needed_plot += fmt::format(
        "{}'majority_vote_heads_needed.dat' using 1:{} with linespoints "
        "lc {} pt 7 title 'MSE <= {}', (x / {:.6g}) with lines dashtype 2 "
        "lc {} notitle",
        i == 0 ? "" : separator, i + 2, i + 1, o.targets[i], o.targets[i] * o.targets[i], i + 1);
  const std::string needed_body = fmt::format(
      "set title 'Heads the two-layer majority vote needs: polynomial in d (dashed: d / eps^2)'\n"
      "set logscale xy\nset xrange [4:1024]\nset xlabel 'dimension d'\nset ylabel 'heads H'\n"
      "set grid\n"
      "set key top left\nplot {}\n",
      needed_plot);
  log << render_gnuplot(out_dir, "majority_vote_heads_needed", needed_body).message << "\n";
}

}  // namespace attnrank
