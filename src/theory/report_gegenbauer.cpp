// attnrank theory gegenbauer: expansions of zonal functions and the spectrum of the N = 2
// nearest-neighbour target.
#include <fmt/format.h>
#include <fmt/ostream.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <ostream>

#include "attnrank/core/error.h"
#include "attnrank/report/output_files.h"
#include "attnrank/report/statistics.h"
#include "attnrank/theory/gegenbauer.h"
#include "attnrank/theory/reports.h"

namespace attnrank {

namespace {

ZonalExpansion expand_named(const std::string& function, int dim, int degree) {
  if (function == "sign") return sign_expansion(dim, degree);
  if (function == "asin")
    return gegenbauer_expand([](double t) { return std::asin(t); }, dim, degree);
  if (function == "relu")
    return gegenbauer_expand([](double t) { return t > 0 ? t : 0.0; }, dim, degree, {0.0});
  if (function == "abs")
    return gegenbauer_expand([](double t) { return std::abs(t); }, dim, degree, {0.0});
  throw ConfigError("gegenbauer: --function must be sign, asin, relu or abs");
}

// Smallest degree k with energy above k at most `fraction` of the total (-1: beyond K).
int degree_for_tail(const ZonalExpansion& e, double fraction) {
  double captured = 0.0;
  for (int k = 0; k <= e.max_degree(); ++k) {
    captured += e.degree_energy(k);
    if (e.energy - captured <= fraction * e.energy) return k;
  }
  return -1;
}

}  // namespace

void run_gegenbauer(const GegenbauerOptions& o, const std::string& out_dir, std::ostream& log) {
  if (o.dims.empty()) throw ConfigError("gegenbauer: --dims must be non-empty");
  for (int d : o.dims)
    if (d < 2) throw ConfigError("gegenbauer: --dims entries must be >= 2");
  if (o.max_degree < 1) throw ConfigError("gegenbauer: --max-degree must be >= 1");
  expand_named(o.function, 3, 1);  // validates the name before any work
  ensure_output_directory(out_dir);

  fmt::print(log,
             "N = 2 nearest-neighbour target f = (x_1+x_2)/2 + sign(<y,u>) (x_1-x_2)/2, "
             "u = (x_1-x_2)/|x_1-x_2|:\nits query-dependent half is the zonal function sign(t) "
             "in y; energy above degree k (fraction of 1), K = {}\n",
             o.max_degree);
  const std::vector<int> marks = {1, 3, 9, 33, 129, 513, o.max_degree};
  fmt::print(log, "{:>4}", "d");
  for (int k : marks)
    if (k <= o.max_degree) fmt::print(log, "{:>10}", fmt::format(">{}", k));
  fmt::print(log, "{:>9}{:>9}{:>14}\n", "k(10%)", "k(1%)", "closed-quad");

  std::string target_csv = "dim,degree,coefficient,energy,energy_above\n";
  std::string function_csv = target_csv;
  nlohmann::json dims_json = nlohmann::json::array();
  std::string target_plot, function_plot;
  for (int dim : o.dims) {
    const ZonalExpansion target = sign_expansion(dim, o.max_degree);
    // The closed form against the quadrature over the first degrees, as a running check.
    const int checked = std::min(o.max_degree, 511);
    const ZonalExpansion quad = gegenbauer_expand(
        [](double t) { return t > 0 ? 1.0 : (t < 0 ? -1.0 : 0.0); }, dim, checked, {0.0});
    double discrepancy = 0.0;
    for (int k = 0; k <= checked; ++k)
      discrepancy = std::max(discrepancy, std::abs(quad.coefficients[k] - target.coefficients[k]));
    const ZonalExpansion function =
        o.function == "sign" ? target : expand_named(o.function, dim, o.max_degree);

    std::string target_dat = "# degree energy_above\n", function_dat = "# degree energy\n";
    std::vector<double> tails(o.max_degree + 1);
    double captured_target = 0.0, captured_function = 0.0;
    for (int k = 0; k <= o.max_degree; ++k) {
      captured_target += target.degree_energy(k);
      captured_function += function.degree_energy(k);
      tails[k] = std::max(0.0, target.energy - captured_target);
      target_csv += fmt::format("{},{},{:.17g},{:.17g},{:.17g}\n", dim, k, target.coefficients[k],
                                target.degree_energy(k), tails[k]);
      function_csv += fmt::format("{},{},{:.17g},{:.17g},{:.17g}\n", dim, k,
                                  function.coefficients[k], function.degree_energy(k),
                                  std::max(0.0, function.energy - captured_function));
      if (k % 2 == 1) target_dat += fmt::format("{} {:.9g}\n", k, tails[k]);
      if (k >= 1 && function.degree_energy(k) > 1e-300)  // log axes
        function_dat += fmt::format("{} {:.9g}\n", k, function.degree_energy(k));
    }
    fmt::print(log, "{:>4}", dim);
    for (int k : marks)
      if (k <= o.max_degree) fmt::print(log, "{:>10.4f}", tails[k]);
    fmt::print(log, "{:>9}{:>9}{:>14.1e}\n", degree_for_tail(target, 0.1),
               degree_for_tail(target, 0.01), discrepancy);

    const std::string target_name = fmt::format("gegenbauer_target_d{}.dat", dim);
    const std::string function_name = fmt::format("gegenbauer_{}_d{}.dat", o.function, dim);
    write_output_file(out_dir, target_name, target_dat);
    write_output_file(out_dir, function_name, function_dat);
    const char* separator = ", \\\n     ";
    target_plot += fmt::format("{}'{}' using 1:2 with lines lw 2 title 'd = {}'",
                               target_plot.empty() ? "" : separator, target_name, dim);
    function_plot += fmt::format("{}'{}' using 1:2 with points pt 7 ps 0.5 title 'd = {}'",
                                 function_plot.empty() ? "" : separator, function_name, dim);
    dims_json.push_back({{"dim", dim},
                         {"target_degree1_energy", target.degree_energy(1)},
                         {"target_energy_above", tails},
                         {"degree_for_10_percent", degree_for_tail(target, 0.1)},
                         {"degree_for_1_percent", degree_for_tail(target, 0.01)},
                         {"sign_closed_form_vs_quadrature_max_difference", discrepancy},
                         {"function", o.function},
                         {"function_energy", function.energy},
                         {"function_coefficients", function.coefficients}});
  }
  fmt::print(log,
             "(closed-quad: largest |closed form - quadrature| over sign's first {} "
             "coefficients)\n",
             std::min(o.max_degree, 511) + 1);
  write_output_file(out_dir, "gegenbauer_target.csv", target_csv);
  write_output_file(out_dir, fmt::format("gegenbauer_{}.csv", o.function), function_csv);
  const nlohmann::json json = {{"experiment", "gegenbauer"},
                               {"max_degree", o.max_degree},
                               {"function", o.function},
                               {"dims", dims_json}};
  write_output_file(out_dir, "gegenbauer.json", json.dump(2) + "\n");

  const std::string target_body = fmt::format(
      "set title 'Energy of the N = 2 nearest-neighbour target above degree k "
      "(Gegenbauer expansion of sign(<y,u>) on S^{{d-1}})'\n"
      "set logscale xy\nset xlabel 'degree k'\nset ylabel 'fraction of the query-dependent energy "
      "above degree k'\nset grid\nset key bottom left\nset format y '10^{{%L}}'\nplot {}\n",
      target_plot);
  log << render_gnuplot(out_dir, "gegenbauer_target", target_body).message << "\n";
  const std::string function_body = fmt::format(
      "set title 'Energy per degree of {}(t), t = <u,v> on S^{{d-1}}'\n"
      "set logscale xy\nset xlabel 'degree k'\nset ylabel 'f_k^2'\nset grid\nset key bottom left\n"
      "set format y '10^{{%L}}'\nplot {}\n",
      o.function, function_plot);
  log << render_gnuplot(out_dir, fmt::format("gegenbauer_{}", o.function), function_body).message
      << "\n";
}

}  // namespace attnrank
