// The Markdown report of a reproduced figure: what ran, how to run it again, the
// figure and the numbers behind it.
#include <fmt/core.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <tuple>

#include "attnrank/experiment/aggregate.h"
#include "attnrank/experiment/claims.h"
#include "attnrank/experiment/reproduce.h"
#include "attnrank/report/output_files.h"

namespace attnrank {

namespace fs = std::filesystem;

namespace {

std::string cell(const std::string& text) {
  return fmt::format(" {} |", text);
}

std::string number_text(double x) {
  return fmt::format("{}", x);
}

// Ratios near 1 (bits per character differ in the second decimal) need more digits
// than the tenfold separations of the rank figures.
std::string ratio_text(double ratio) {
  return ratio < 2 ? fmt::format("{:.3f}", ratio) : fmt::format("{:.1f}", ratio);
}

std::string curves_table(const FigureSpec& figure, const std::vector<CurvePoint>& points) {
  std::string header = "|", rule = "|";
  for (const auto* key : {&figure.panel, &figure.line})
    if (!key->empty()) header += cell(key_symbol(*key)), rule += " ---: |";
  if (figure.x_is_size()) header += cell("configuration"), rule += " --- |";
  header += cell(key_symbol(figure.x)), rule += " ---: |";
  header += fmt::format(" seeds | {0} mean ± std | min | median |\n", figure.metric_label());
  rule += " ---: | ---: | ---: | ---: |\n";
  std::string table = header + rule;
  for (const CurvePoint& p : points) {
    table += "|";
    if (!figure.panel.empty()) table += cell(p.panel);
    if (!figure.line.empty()) table += cell(p.line);
    if (figure.x_is_size()) table += cell(p.configuration);
    table += fmt::format(" {} | {} | {} ± {} | {} | {} |\n", number_text(p.x), p.seeds,
                         format_number(p.mean), format_number(p.std), format_number(p.min),
                         format_number(p.median));
  }
  return table;
}

// Each x a row, each line a column of mean ± std (seeds): the comparison the
// lines exist for (standard vs fixed head size at the same H).
std::string lines_table(const FigureSpec& figure, const std::vector<CurvePoint>& points) {
  std::vector<std::string> lines;
  std::vector<std::pair<std::string, double>> rows;
  std::map<std::tuple<std::string, double, std::string>, const CurvePoint*> cells;
  for (const CurvePoint& p : points) {
    if (std::find(lines.begin(), lines.end(), p.line) == lines.end()) lines.push_back(p.line);
    if (std::find(rows.begin(), rows.end(), std::pair(p.panel, p.x)) == rows.end())
      rows.emplace_back(p.panel, p.x);
    cells[{p.panel, p.x, p.line}] = &p;
  }
  std::string table = "|", rule = "|";
  if (!figure.panel.empty()) table += cell(key_symbol(figure.panel)), rule += " ---: |";
  table += cell(key_symbol(figure.x)), rule += " ---: |";
  for (const auto& line : lines)
    table += cell(key_symbol(figure.line) + " = " + line), rule += " ---: |";
  table += "\n" + rule + "\n";
  for (const auto& [panel, x] : rows) {
    table += "|";
    if (!figure.panel.empty()) table += cell(panel);
    table += cell(number_text(x));
    for (const auto& line : lines) {
      const auto found = cells.find({panel, x, line});
      table += cell(found == cells.end() ? "–"
                                         : format_number(found->second->mean) + " ± " +
                                               format_number(found->second->std));
    }
    table += "\n";
  }
  return table;
}

std::string heads_table(const FigureSpec& figure, const std::vector<HeadPoint>& points) {
  std::map<std::pair<std::string, double>, std::vector<const HeadPoint*>> groups;
  for (const HeadPoint& p : points) groups[{p.line, p.x}].push_back(&p);
  std::string table = "|";
  if (!figure.line.empty()) table += cell(key_symbol(figure.line));
  table += fmt::format(" {}", key_symbol(figure.x)) +
           " | runs | heads | angle to I (mean, min..max) | ‖K Q^T‖_F (mean, min..max) | " +
           figure.metric_label() + " (mean) |\n|";
  if (!figure.line.empty()) table += " ---: |";
  table += " ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (const auto& [key, members] : groups) {
    std::vector<double> angles, norms, mse;
    std::vector<std::string> runs;
    for (const HeadPoint* p : members) {
      angles.push_back(p->angle_to_identity);
      norms.push_back(p->frobenius);
      if (std::find(runs.begin(), runs.end(), p->run_id) == runs.end()) {
        runs.push_back(p->run_id);
        mse.push_back(p->metric);
      }
    }
    const SampleStats a = sample_stats(angles), n = sample_stats(norms), m = sample_stats(mse);
    table += "|";
    if (!figure.line.empty()) table += cell(key.first);
    table += fmt::format(" {} | {} | {} | {:.1f}° ({:.1f}..{:.1f}) | {} ({}..{}) | {} |\n",
                         number_text(key.second), runs.size(), members.size(), a.mean, a.min, a.max,
                         format_number(n.mean), format_number(n.min), format_number(n.max),
                         format_number(m.mean));
  }
  return table;
}

}  // namespace

std::vector<std::string> separation_lines(const FigureSpec& figure,
                                          const std::vector<CurvePoint>& points) {
  std::vector<std::string> lines;
  std::map<std::pair<std::string, std::string>, std::vector<const CurvePoint*>> curves;
  std::vector<std::pair<std::string, std::string>> order;
  for (const CurvePoint& p : points) {
    if (!curves.contains({p.panel, p.line})) order.emplace_back(p.panel, p.line);
    curves[{p.panel, p.line}].push_back(&p);
  }
  const std::string x = key_symbol(figure.x);
  for (const auto& key : order) {
    const auto& curve = curves[key];
    const CurvePoint* top = *std::max_element(
        curve.begin(), curve.end(), [](const auto* a, const auto* b) { return a->x < b->x; });
    const CurvePoint* best = nullptr;
    for (const CurvePoint* p : curve)
      if (p->x <= top->x / 2 && (!best || p->mean < best->mean)) best = p;
    std::string where;
    if (!figure.panel.empty()) where += key_symbol(figure.panel) + " = " + key.first;
    if (!figure.line.empty())
      where += (where.empty() ? "" : ", ") + key_symbol(figure.line) + " = " + key.second;
    if (!where.empty()) where += ": ";
    if (!best) {
      lines.push_back(fmt::format("- {}only {} = {} ran", where, x, number_text(top->x)));
      continue;
    }
    lines.push_back(
        fmt::format("- {}{} = {}: mean {} {}; lowest mean at {} ≤ {}: {} ({} = {}); ratio {}x",
                    where, x, number_text(top->x), figure.metric_label(), format_number(top->mean),
                    x, number_text(top->x / 2), format_number(best->mean), x, number_text(best->x),
                    ratio_text(top->mean > 0 ? best->mean / top->mean : INFINITY)));
  }
  return lines;
}

std::string write_report(const ReportInputs& inputs, const std::vector<CurvePoint>& curves,
                         const std::vector<HeadPoint>& heads, const FigureFiles& figure,
                         const std::string& out_dir) {
  const FigureSpec& spec = inputs.spec.figure;
  int done = 0, diverged = 0, failed = 0;
  for (const RunRecord& run : inputs.runs) {
    done += run.status == "done";
    diverged += run.status == "diverged";
    failed += run.status == "failed";
  }
  std::string md =
      fmt::format("# {}: {} ({} scale)\n\n", spec.title.empty() ? inputs.figure : spec.title,
                  inputs.figure, inputs.scale);
  if (!spec.description.empty()) md += spec.description + "\n\n";
  md += fmt::format(
      "Preset `{}`, results database `{}`: {} runs planned, {} recorded ({} done, {} diverged, "
      "{} failed).\n\n",
      inputs.preset, inputs.database, inputs.planned_runs, inputs.runs.size(), done, diverged,
      failed);
  if (static_cast<int>(inputs.runs.size()) < inputs.planned_runs)
    md +=
        "**Incomplete:** some planned runs are not in the database yet; run the command below "
        "again to finish them.\n\n";
  md += "## Commands\n\n```sh\n";
  for (const auto& command : inputs.commands) md += command + "\n";
  md += "```\n\n## Figure\n\n";
  if (figure.rendered)
    md += fmt::format(
        "![{0}]({0}.png)\n\nAlso [{0}.svg]({0}.svg); the plotted numbers are in "
        "[{0}.csv]({0}.csv).\n\n",
        inputs.figure);
  else
    md += figure.message + "\n\n";
  if (spec.kind == FigureKind::kCurves) {
    const std::string label = spec.metric_label();
    md += "Lines: mean " + label +
          " over seeds, the band ± one standard deviation; dashed: the minimum over seeds "
          "(what the paper plotted).\n\n";
    md += "## Separation\n\nAt each setting, the mean " + label + " at the largest " +
          key_symbol(spec.x) + " against the lowest mean among the " + key_symbol(spec.x) +
          " up to half of it. The ratio is the second over the first: it reads " + label +
          " as a loss (lower is better), so a ratio above 1 means the largest " +
          key_symbol(spec.x) + " does better.\n\n";
    for (const auto& line : separation_lines(spec, curves)) md += line + "\n";
    if (!spec.line.empty() && !spec.x_is_size())
      md += "\n## Lines side by side\n\nMean " + label + " ± std over seeds.\n\n" +
            lines_table(spec, curves);
    md += "\n## Per configuration\n\n" + curves_table(spec, curves) + "\n";
  } else {
    md +=
        "## Heads\n\nFor every head of every finished run: the angle between its bilinear "
        "form K Q^T = W_Q W_K^T and the identity (180° means a multiple of -I, the "
        "farthest-point construction of Fact 1) and its Frobenius norm.\n\n" +
        heads_table(spec, heads) + "\n";
  }
  if (!spec.claims.empty()) {
    const auto checks = check_claims(spec, inputs.runs);
    md +=
        "## Claims\n\nEach claim of the figure (the preset's `figure.claims`): its metric, read "
        "as a loss, for the configuration said to be better against the one said to be "
        "worse (or a bound), over their seeds. It holds beyond the seeds' spread when every "
        "seed of the better one is below every seed of the worse one (two seeds or more "
        "each: with n seeds a side, chance alone does that with probability 1 / C(2n, n), "
        "0.05 at n = 3); a diverged seed counts as +infinity. Also in "
        "[claims.csv](claims.csv).\n\n" +
        claims_table(checks) + "\n" + claims_summary(checks) + ".\n\n";
    write_output_file(out_dir, "claims.csv", claims_csv(checks));
  }
  md += "## Sweep spec\n\n```yaml\n";
  std::ifstream in(inputs.preset);
  md += std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  md += "```\n";
  const fs::path path = fs::path(out_dir) / "report.md";
  std::ofstream out(path, std::ios::trunc);
  out << md;
  if (!out.flush()) throw std::runtime_error("cannot write " + path.string());
  return path.string();
}

}  // namespace attnrank
