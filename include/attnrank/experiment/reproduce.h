// Figures and reports of the published experiments (`attnrank reproduce`): presets
// in configs/reproduce/<figure>-<scale>.yaml, gnuplot figures laid out like the
// paper's, the CSV of the plotted numbers and a Markdown report.
#pragma once
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "attnrank/experiment/results_store.h"
#include "attnrank/experiment/sweep.h"

namespace attnrank {

// The papers' symbol for a config key in figures and reports ("model.heads" -> "H";
// the key itself when it has none).
std::string key_symbol(const std::string& key);

// The figures `reproduce` knows, in documentation order.
const std::vector<std::string>& reproduce_figures();

// configs/reproduce/<figure>-<scale>.yaml under `presets_dir` or, when empty, the
// first of $ATTNRANK_PRESETS, ./configs/reproduce and <executable>/../../configs/reproduce
// that exists. Throws ConfigError for an unknown figure or scale or a missing preset.
std::string find_preset(const std::string& figure, const std::string& scale,
                        const std::string& presets_dir);

// How a figure is run and what it reports (docs/fidelity.md).
//   clean:   fresh data every step, independent seeds for data and initialisation,
//            independent initial layers; the figure plots the held-out test error.
//   authors: what the authors' code ran: the same train.epoch_batches = 100 batches
//            every epoch (train.data = replay), initialisation fixed (train.init_seed =
//            613) while train.seed varies the data, all layers starting as copies of
//            one, positional tables U(-1, 1), the preset's authors_grid runs added; the
//            figure plots train_best_epoch_loss, the lowest epoch-mean training loss,
//            whose minimum over seeds is what the paper shows.
enum class Protocol { kClean, kAuthors };
Protocol protocol_from_name(const std::string& name);  // throws ConfigError
std::string protocol_name(Protocol protocol);
// The config keys (dotted key -> value) the authors' protocol sets in a preset's base.
const std::vector<std::pair<std::string, std::string>>& authors_protocol_keys();
// `spec` as run under `protocol` (clean: unchanged).
SweepSpec protocol_spec(const SweepSpec& spec, Protocol protocol);

// One plotted point of a curves figure: the statistics of the figure's metric over
// seeds at one x.
struct CurvePoint {
  std::string panel, line;  // values of the panel and line keys ("" when unused)
  // x is a size (parameters): the keys telling the configuration apart,
  // "model.dim=16 model.ffn=64"; empty otherwise.
  std::string configuration;
  double x = 0.0;
  int seeds = 0;
  double mean = 0.0, std = 0.0, min = 0.0, median = 0.0;
};

// The points of a curves figure from `runs` (done runs with a finite value of
// figure.metric), ordered by panel, line, x. Throws ConfigError when no run has
// the metric (check_metric).
std::vector<CurvePoint> curve_points(const FigureSpec& figure, const std::vector<RunRecord>& runs);

// One head of a trained model (heads figure): its K Q^T against the identity.
struct HeadPoint {
  std::string run_id, panel, line;
  double x = 0.0;
  int layer = 0, module = 0, head = 0;
  double angle_to_identity = 0.0;  // degrees
  double frobenius = 0.0;          // ||W_Q W_K^T||_F
  double metric = 0.0;             // the run's figure.metric (test MSE by default)
};

// Loads each finished run's checkpoint from its run directory and inspects its
// heads. Runs without a checkpoint are skipped.
std::vector<HeadPoint> head_points(const FigureSpec& figure, const std::vector<RunRecord>& runs);

// One row of the side-by-side comparison of the two protocols on the same grid: per
// configuration (panel, line, x), the clean held-out error and the authors' statistic.
struct ProtocolComparison {
  std::string panel, line;
  double x = 0.0;
  int clean_seeds = 0, authors_seeds = 0;
  double clean_mean = NAN, clean_min = NAN;  // test error of the clean runs over seeds
  double authors_min = NAN;       // min over seeds of train_best_epoch_loss (the paper's)
  double authors_test_min = NAN;  // min over seeds of the authors' runs' own test error
};
// Matches the points of the clean figure (metric test error) with those of the authors'
// runs (best epoch loss, and their test error) by panel, line and x.
std::vector<ProtocolComparison> compare_protocols(const FigureSpec& clean_figure,
                                                  const std::vector<RunRecord>& clean_runs,
                                                  const std::vector<RunRecord>& authors_runs);
// OUT/NAME.csv and OUT/NAME.md: the comparison table; returns the Markdown text.
std::string write_protocol_comparison(const std::vector<ProtocolComparison>& rows,
                                      const FigureSpec& figure, const std::string& out_dir,
                                      const std::string& name);

struct FigureFiles {
  std::vector<std::string> written;  // paths of everything written
  std::string message;               // rendering outcome, one line
  bool rendered = false;
};

// Writes OUT/NAME.csv (the plotted numbers), OUT/NAME.dat + OUT/NAME.gp and renders
// OUT/NAME.{png,svg} with gnuplot (when on PATH).
FigureFiles write_curves_figure(const FigureSpec& figure, const std::vector<CurvePoint>& points,
                                const std::string& out_dir, const std::string& name);
FigureFiles write_heads_figure(const FigureSpec& figure, const std::vector<HeadPoint>& points,
                               const std::string& out_dir, const std::string& name);

// Gnuplot script around `body` for both PNG (pngcairo) and SVG at `width` x `height`
// pixels; renders it in `dir`. Returns whether both files were made and a message.
FigureFiles render_plot(const std::string& dir, const std::string& name, const std::string& body,
                        int width, int height);

struct ReportInputs {
  std::string figure;                 // fig1, posn, ...
  std::string scale;                  // small | paper
  std::string preset;                 // path of the spec
  std::string database;               // path of the results database
  std::vector<std::string> commands;  // exact command lines that reproduce the report
  SweepSpec spec;
  std::vector<RunRecord> runs;
  int planned_runs = 0;  // runs the spec expands to
};

// OUT/report.md: what was run, the commands, the figure, the per-configuration table
// (seeds, mean +- std, min, median) and, for curves, the separation between the
// largest x and the best of the others. Returns the report's path.
std::string write_report(const ReportInputs& inputs, const std::vector<CurvePoint>& curves,
                         const std::vector<HeadPoint>& heads, const FigureFiles& figure,
                         const std::string& out_dir);

// Markdown lines of the separation check, for a loss-like metric (lower is better):
// per panel and line, the mean metric at the largest x against the lowest mean
// among x <= largest / 2, and their ratio.
std::vector<std::string> separation_lines(const FigureSpec& figure,
                                          const std::vector<CurvePoint>& points);

}  // namespace attnrank
