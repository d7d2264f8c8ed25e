// Gnuplot figures of sweep results, laid out like the paper's: log-log axes, x the
// swept key (rank), one panel per panel value (layers), one line per line value
// (width multiplier c); mean +- std band over seeds and the min-over-seeds line.
// And the learning curves of run directories (`attnrank plot`) in the same style.
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "attnrank/core/error.h"
#include "attnrank/core/files.h"
#include "attnrank/core/suggest.h"
#include "attnrank/experiment/learning_curves.h"
#include "attnrank/experiment/reproduce.h"
#include "attnrank/report/output_files.h"

namespace attnrank {

namespace fs = std::filesystem;

// The papers' symbols for the keys figures use.
std::string key_symbol(const std::string& key) {
  static const std::map<std::string, std::string> symbols = {
      {"model.rank", "rank r"},
      {"model.layers", "L"},
      {"model.width_multiplier", "c"},
      {"model.heads", "H"},
      {"task.points", "N"},
      {"model.dim", "d"},
      {"model.positional", "positional"},
      {"train.steps", "steps"},
      {"model.head_size", "head size"},
      {"attention_parameters", "attention parameters"}};
  const auto found = symbols.find(key);
  return found != symbols.end() ? found->second : key;
}

namespace {

std::string gnuplot_string(const std::string& text) {
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '\n') {
      quoted += "\\n";
      continue;
    }
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += c;
  }
  return quoted + "\"";
}

void write_file(const fs::path& path, const std::string& text, FigureFiles& files) {
  write_file_atomically(path.string(), text);
  files.written.push_back(path.string());
}

template <typename Point>
std::vector<std::string> distinct(const std::vector<Point>& points, std::string Point::*member) {
  std::vector<std::string> values;
  for (const Point& p : points)
    if (std::find(values.begin(), values.end(), p.*member) == values.end())
      values.push_back(p.*member);
  return values;
}

// A labelled tic at every plotted x, inside an x range padded on both sides: an
// autoscaled log axis ends exactly at the largest x, where gnuplot can drop its tic
// label to rounding.
// Every x labelled, except sizes (parameter counts): too many and too long for
// one label each, so gnuplot's tics with an SI suffix (160k).
std::string x_axis(const std::vector<double>& xs, bool log_x, bool size_axis) {
  if (xs.empty()) return "";
  const double low = xs.front(), high = xs.back();
  double from = low - 0.5, to = high + 0.5;
  if (log_x && low > 0) {
    const double pad = high > low ? std::pow(high / low, 0.06) : 1.5;
    from = low / pad, to = high * pad;
  } else if (high > low) {
    const double pad = 0.06 * (high - low);
    from = low - pad, to = high + pad;
  }
  const std::string range = fmt::format("set xrange [{:.9g}:{:.9g}]\n", from, to);
  if (size_axis) return range + "set xtics autofreq\nset format x '%.0s%c'\n";
  std::string tics;
  for (double x : xs) tics += fmt::format("{}\"{}\" {}", tics.empty() ? "" : ", ", x, x);
  return range + fmt::format("set xtics ({})\n", tics);
}

// Bottom margin (character heights) for the x label and a key below the plot:
// gnuplot's multiplot does not reserve it. Room for one entry per row, as gnuplot
// stacks entries whose titles are long.
int key_margin(size_t entries) {
  return 4 + static_cast<int>(std::max<size_t>(1, entries));
}

std::string panel_title(const FigureSpec& figure, const std::string& value) {
  return figure.panel.empty() ? "" : key_symbol(figure.panel) + " = " + value;
}

std::string line_title(const FigureSpec& figure, const std::string& value) {
  return figure.line.empty() ? "mean" : key_symbol(figure.line) + " = " + value;
}

}  // namespace

FigureFiles render_plot(const std::string& dir, const std::string& name, const std::string& body,
                        int width, int height) {
  FigureFiles files;
  const PlotOutcome outcome = render_gnuplot(dir, name, body, width, height);
  files.written.push_back((fs::path(dir) / (name + ".gp")).string());
  if (outcome.rendered)
    for (const char* extension : {".png", ".svg"})
      files.written.push_back((fs::path(dir) / (name + extension)).string());
  files.rendered = outcome.rendered;
  files.message = outcome.message;
  return files;
}

FigureFiles write_curves_figure(const FigureSpec& figure, const std::vector<CurvePoint>& points,
                                const std::string& out_dir, const std::string& name) {
  FigureFiles files;
  fs::create_directories(out_dir);
  // The plotted numbers, for readers who want them without the database.
  // A size axis adds the configuration the size belongs to ("model.dim=16").
  const bool sized = figure.x_is_size();
  std::string csv = fmt::format("{},{},{}{},metric,seeds,mean,std,min,median\n",
                                figure.panel.empty() ? "panel" : figure.panel,
                                figure.line.empty() ? "line" : figure.line,
                                sized ? "configuration," : "", figure.x);
  for (const CurvePoint& p : points)
    csv += fmt::format("{},{},{}{},{},{},{:.9g},{:.9g},{:.9g},{:.9g}\n", p.panel, p.line,
                       sized ? p.configuration + "," : "", p.x, figure.metric, p.seeds, p.mean,
                       p.std, p.min, p.median);
  write_file(fs::path(out_dir) / (name + ".csv"), csv, files);

  const auto panels = distinct(points, &CurvePoint::panel);
  const auto lines = distinct(points, &CurvePoint::line);
  double floor = INFINITY;
  std::set<double> xs;
  for (const CurvePoint& p : points) {
    if (p.min > 0) floor = std::min(floor, p.min / 2);
    xs.insert(p.x);
  }
  if (!std::isfinite(floor)) floor = 1e-12;
  if (!figure.log_y) floor = -INFINITY;  // a band may go below zero on a linear axis

  // One gnuplot data block per (panel, line): x mean std min median low high.
  std::string data;
  std::map<std::pair<std::string, std::string>, int> block;
  for (const auto& panel : panels)
    for (const auto& line : lines) {
      std::string rows;
      for (const CurvePoint& p : points)
        if (p.panel == panel && p.line == line) {
          const double spread = std::isfinite(p.std) ? p.std : 0.0;
          rows += fmt::format("{} {:.9g} {:.9g} {:.9g} {:.9g} {:.9g} {:.9g}\n", p.x, p.mean, spread,
                              p.min, p.median, std::max(p.mean - spread, floor), p.mean + spread);
        }
      if (rows.empty()) continue;
      const int index = static_cast<int>(block.size());
      block[{panel, line}] = index;
      data += fmt::format("# panel {} line {}\n{}\n\n", panel, line, rows);
    }
  write_file(fs::path(out_dir) / (name + ".dat"), data, files);

  const std::string title = figure.title.empty() ? name : figure.title;
  std::string body = fmt::format(
      "set multiplot layout 1,{} title {}\n"
      "{}{}"
      "set grid\nset key below horizontal font ',9'\nset bmargin {}\n"
      "set xlabel {}\nset ylabel {}\n{}",
      std::max<size_t>(1, panels.size()),
      gnuplot_string(title + "\nlines: mean over seeds (band: ± std); dashed: min over seeds"),
      figure.log_y ? "set logscale y\n" : "", figure.log_x ? "set logscale x 2\n" : "",
      key_margin(lines.size() + 1),
      gnuplot_string(figure.x_label.empty() ? key_symbol(figure.x) : figure.x_label),
      gnuplot_string(figure.metric_label()),
      x_axis(std::vector<double>(xs.begin(), xs.end()), figure.log_x, figure.x_is_size()));
  for (const auto& panel : panels) {
    body += fmt::format("set title {}\nplot ", gnuplot_string(panel_title(figure, panel)));
    std::string plots;
    for (size_t l = 0; l < lines.size(); ++l) {
      const auto found = block.find({panel, lines[l]});
      if (found == block.end()) continue;
      const std::string source = fmt::format("'{}.dat' index {}", name, found->second);
      plots += fmt::format(
          "{}{} using 1:6:7 with filledcurves fc lt {} fs transparent solid 0.18 notitle, \\\n"
          "  {} using 1:2 with linespoints lt {} lw 2 pt 7 title {}, \\\n"
          "  {} using 1:4 with lines lt {} lw 1.5 dt 2 notitle",
          plots.empty() ? "" : ", \\\n  ", source, l + 1, source, l + 1,
          gnuplot_string(line_title(figure, lines[l])), source, l + 1);
    }
    if (!plots.empty())
      plots += ", \\\n  NaN with lines lc rgb 'gray30' lw 1.5 dt 2 title 'min over seeds'";
    body += (plots.empty() ? std::string("NaN notitle") : plots) + "\n";
  }
  body += "unset multiplot\n";
  const int width = std::max(640, 460 * static_cast<int>(std::max<size_t>(1, panels.size())));
  FigureFiles rendered = render_plot(out_dir, name, body, width, 560);
  files.written.insert(files.written.end(), rendered.written.begin(), rendered.written.end());
  files.message = rendered.message;
  files.rendered = rendered.rendered;
  return files;
}

FigureFiles write_heads_figure(const FigureSpec& figure, const std::vector<HeadPoint>& points,
                               const std::string& out_dir, const std::string& name) {
  FigureFiles files;
  fs::create_directories(out_dir);
  std::string csv =
      fmt::format("run_id,{},{},layer,module,head,angle_to_identity_deg,frobenius,{}\n",
                  figure.line.empty() ? "line" : figure.line, figure.x, figure.metric);
  for (const HeadPoint& p : points)
    csv += fmt::format("{},{},{},{},{},{},{:.9g},{:.9g},{:.9g}\n", p.run_id, p.line, p.x, p.layer,
                       p.module, p.head, p.angle_to_identity, p.frobenius, p.metric);
  write_file(fs::path(out_dir) / (name + ".csv"), csv, files);

  const auto lines = distinct(points, &HeadPoint::line);
  std::set<double> xs;
  std::string data;
  for (const auto& line : lines) {
    data += "# line " + line + "\n";
    for (const HeadPoint& p : points)
      if (p.line == line)
        data += fmt::format("{} {:.9g} {:.9g}\n", p.x, p.angle_to_identity, p.frobenius);
    data += "\n\n";
  }
  for (const HeadPoint& p : points) xs.insert(p.x);
  write_file(fs::path(out_dir) / (name + ".dat"), data, files);

  const std::string title = figure.title.empty() ? name : figure.title;
  // Lines side by side around each x (a small shift, multiplicative on a log axis),
  // so one line's points do not hide another's.
  double spacing = 0.04;
  if (xs.size() > 1 && (!figure.log_x || *xs.begin() > 0))
    spacing *= figure.log_x ? std::log(*xs.rbegin() / *xs.begin()) : *xs.rbegin() - *xs.begin();
  auto shifted_x = [&](size_t l) {
    const double offset = (static_cast<double>(l) - 0.5 * (lines.size() - 1.0)) * spacing;
    return figure.log_x ? fmt::format("($1*{:.9g})", std::exp(offset))
                        : fmt::format("($1+{:.9g})", offset);
  };
  auto series = [&](int column) {
    std::string plots;
    for (size_t l = 0; l < lines.size(); ++l)
      plots += fmt::format("{}'{}.dat' index {} using {}:{} with points lt {} pt 7 ps 0.8 title {}",
                           plots.empty() ? "" : ", \\\n  ", name, l, shifted_x(l), column, l + 1,
                           gnuplot_string(line_title(figure, lines[l])));
    return plots.empty() ? std::string("NaN notitle") : plots;
  };
  const std::string x_label = figure.x_label.empty() ? key_symbol(figure.x) : figure.x_label;
  const std::string body = fmt::format(
      "set multiplot layout 1,2 title {}\n"
      "{}set grid\nset key below horizontal font ',9'\nset bmargin {}\nset xlabel {}\n{}"
      "set title 'angle between K Q^T and the identity'\nset ylabel 'degrees'\n"
      "set yrange [0:186]\nset ytics 0,30,180\nplot {}\n"
      "set title 'Frobenius norm of K Q^T'\nset ylabel '||K Q^T||_F'\n"
      "set autoscale y\nset ytics autofreq\nset logscale y\nplot {}\n"
      "unset multiplot\n",
      gnuplot_string(title + "\none point per head; 180° is -β I"),
      figure.log_x ? "set logscale x 2\n" : "", key_margin(lines.size()), gnuplot_string(x_label),
      x_axis(std::vector<double>(xs.begin(), xs.end()), figure.log_x, false), series(2), series(3));
  FigureFiles rendered = render_plot(out_dir, name, body, 1000, 480);
  files.written.insert(files.written.end(), rendered.written.begin(), rendered.written.end());
  files.message = rendered.message;
  files.rendered = rendered.rendered;
  return files;
}

namespace {

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> cells;
  std::stringstream stream(line);
  std::string cell;
  while (std::getline(stream, cell, ',')) cells.push_back(cell);
  if (!line.empty() && line.back() == ',') cells.emplace_back();
  return cells;
}

// A cell of metrics.csv: a number ("nan" and "inf" included), NaN when empty.
bool parse_cell(const std::string& text, double& value) {
  if (text.empty()) {
    value = NAN;
    return true;
  }
  char* end = nullptr;
  value = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size();
}

// Blocks "step value" of one column of a run, finite values only (positive on a
// log axis).
std::string column_block(const MetricsTable& table, size_t column, bool log_y) {
  std::string rows;
  for (const auto& row : table.rows) {
    const double value = row[column];
    if (!std::isfinite(value) || (log_y && value <= 0)) continue;
    rows += fmt::format("{:.9g} {:.9g}\n", row[0], value);
  }
  return rows;
}

// A temporary directory, removed with everything in it at the end of its scope.
struct TemporaryDirectory {
  fs::path path;
  TemporaryDirectory() {
    std::string pattern = (fs::temp_directory_path() / "attnrank-plot-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr)
      throw std::runtime_error("cannot create a temporary directory in " +
                               fs::temp_directory_path().string());
    path = pattern;
  }
  ~TemporaryDirectory() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  TemporaryDirectory(const TemporaryDirectory&) = delete;
  TemporaryDirectory& operator=(const TemporaryDirectory&) = delete;
};

std::string read_whole(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace

MetricsTable read_metrics_table(const std::string& run_dir) {
  std::error_code error;
  if (!fs::is_directory(run_dir, error))
    throw ConfigError("run " + run_dir + ": no such directory");
  const fs::path path = fs::path(run_dir) / "metrics.csv";
  std::ifstream in(path);
  if (!in) throw ConfigError("run " + run_dir + ": no metrics.csv (not a run directory?)");
  MetricsTable table;
  std::string line;
  if (std::getline(in, line)) table.columns = split_csv_line(line);
  if (table.columns.size() < 2 || table.columns.front() != "step")
    throw ConfigError(path.string() +
                      ": not a metrics table (its header does not start with step)");
  while (std::getline(in, line)) {
    const std::vector<std::string> cells = split_csv_line(line);
    std::vector<double> row(table.columns.size());
    bool whole = cells.size() == table.columns.size();
    for (size_t i = 0; whole && i < cells.size(); ++i) whole = parse_cell(cells[i], row[i]);
    if (!whole || !std::isfinite(row[0])) break;  // a row cut short by a kill
    table.rows.push_back(std::move(row));
  }
  if (table.rows.empty())
    throw ConfigError(path.string() + ": no metrics rows yet (the run has not logged a step)");
  return table;
}

std::string plot_learning_curves(const std::vector<std::string>& run_dirs,
                                 const LearningCurvesOptions& options) {
  if (run_dirs.empty()) throw ConfigError("plot: name at least one run directory");
  const fs::path out(options.out);
  const std::string extension = out.extension().string();
  if (extension != ".png" && extension != ".svg")
    throw ConfigError("--out: " + options.out + ": the figure file must end in .png or .svg");

  std::vector<std::string> labels;
  std::vector<MetricsTable> tables;
  std::vector<std::string> available;  // every column but step, in order of first appearance
  for (const std::string& dir : run_dirs) {
    std::string label = dir;
    while (label.size() > 1 && label.back() == '/') label.pop_back();
    labels.push_back(label);
    tables.push_back(read_metrics_table(dir));
    for (size_t i = 1; i < tables.back().columns.size(); ++i)
      if (std::find(available.begin(), available.end(), tables.back().columns[i]) ==
          available.end())
        available.push_back(tables.back().columns[i]);
  }
  std::vector<std::string> metrics = options.metrics;
  if (metrics.empty()) {
    metrics.push_back("train_loss");
    for (const std::string& name : available)
      if (name.starts_with("validation_")) metrics.push_back(name);
  }
  std::string names;
  for (const std::string& name : available) names += (names.empty() ? "" : ", ") + name;
  for (const std::string& metric : metrics)
    if (std::find(available.begin(), available.end(), metric) == available.end())
      throw ConfigError("--metric: unknown metric '" + metric + "'" +
                        did_you_mean(metric, available) + "; the runs have " + names);

  // One data block per (metric, run) with values; `blocks[m]` lists (run, index).
  std::string data;
  std::vector<std::vector<std::pair<size_t, int>>> blocks(metrics.size());
  int index = 0;
  for (size_t m = 0; m < metrics.size(); ++m) {
    for (size_t r = 0; r < tables.size(); ++r) {
      const auto& columns = tables[r].columns;
      const auto found = std::find(columns.begin(), columns.end(), metrics[m]);
      if (found == columns.end()) continue;
      const std::string rows =
          column_block(tables[r], static_cast<size_t>(found - columns.begin()), options.log_y);
      if (rows.empty()) continue;
      data += fmt::format("# {} of {}\n{}\n\n", metrics[m], labels[r], rows);
      blocks[m].emplace_back(r, index++);
    }
    if (blocks[m].empty())
      throw ConfigError("--metric: " + metrics[m] + " has no " +
                        (options.log_y ? "positive " : "") + "values to draw in these runs" +
                        (metrics[m].starts_with("validation_")
                             ? " (held-out evaluations need train.eval_every)"
                             : ""));
  }

  double last_step = 0;  // steps as 20k from 10,000 on
  for (const MetricsTable& table : tables) last_step = std::max(last_step, table.rows.back()[0]);
  const std::string name = "curves";
  const TemporaryDirectory work;
  write_file_atomically((work.path / (name + ".dat")).string(), data);
  const std::string title =
      "learning curves: " +
      (labels.size() == 1 ? labels.front() : fmt::format("{} runs", labels.size())) +
      "\nlines: metrics rows; points: held-out evaluations on the validation set";
  // Run paths and metric names are literal text (an underscore is no subscript).
  std::string body = fmt::format(
      "set multiplot layout 1,{} title {} noenhanced\n{}"
      "set grid\nset key below horizontal font ',9'\nset bmargin {}\n"
      "set xlabel 'step'\n{}",
      metrics.size(), gnuplot_string(title), options.log_y ? "set logscale y\n" : "",
      key_margin(labels.size()), last_step >= 10000 ? "set format x '%.0s%c'\n" : "");
  for (size_t m = 0; m < metrics.size(); ++m) {
    const bool held_out = metrics[m].starts_with("validation_");
    std::string plots;
    for (const auto& [run, block] : blocks[m])
      plots += fmt::format("{}'{}.dat' index {} using 1:2 with {} lt {} lw 2{} title {} noenhanced",
                           plots.empty() ? "" : ", \\\n  ", name, block,
                           held_out ? "linespoints" : "lines", run + 1,
                           held_out ? " pt 7 ps 0.7" : "", gnuplot_string(labels[run]));
    body += fmt::format("set title {} noenhanced\nset ylabel {} noenhanced\nplot {}\n",
                        gnuplot_string(metrics[m]), gnuplot_string(metrics[m]), plots);
  }
  body += "unset multiplot\n";
  const int width = std::max(640, 460 * static_cast<int>(metrics.size()));
  const PlotOutcome outcome = render_gnuplot(work.path.string(), name, body, width, 560);
  if (!outcome.rendered) {
    const std::string log = read_whole(work.path / (name + ".gnuplot.log"));
    std::string detail;
    std::stringstream lines(log);
    for (std::string line; std::getline(lines, line);)
      if (!line.empty()) detail = line;
    throw std::runtime_error(detail.empty() && outcome.message.starts_with("gnuplot not found")
                                 ? "plot: gnuplot not found on PATH (install gnuplot-nox)"
                                 : "plot: gnuplot failed" +
                                       (detail.empty() ? std::string() : ": " + detail));
  }
  if (out.has_parent_path()) ensure_output_directory(out.parent_path().string());
  write_file_atomically(options.out, read_whole(work.path / (name + extension)));
  return options.out;
}

}  // namespace attnrank
