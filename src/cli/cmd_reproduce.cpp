// attnrank reproduce FIGURE [--scale small|medium|paper] [--protocol clean|authors|both]
//                    [--db PATH] [--out DIR] [--jobs J] [--threads T] [--shard i/n|auto]
//                    [--no-train] [--presets DIR]
#include <fmt/core.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <set>

#include "attnrank/core/error.h"
#include "attnrank/experiment/claims.h"
#include "attnrank/experiment/reproduce.h"
#include "attnrank/experiment/slurm.h"
#include "commands.h"
#include "sweep_session.h"

namespace attnrank::cli {

namespace fs = std::filesystem;

namespace {

struct ReproduceArgs {
  std::string figure;
  std::string scale = "small";
  std::string protocol = "clean";
  std::string database;
  std::string out_dir;
  std::string presets_dir;
  int jobs = 0;
  int threads = 0;
  std::string shard = "0/1";
  bool no_train = false;
  bool quiet = false;
};

std::vector<std::string> command_lines(const ReproduceArgs& args, const std::string& preset,
                                       const std::string& database, const std::string& out_dir,
                                       int jobs, const SweepSpec& spec) {
  const FigureSpec& figure = spec.figure;
  const std::string jobs_argument = jobs > 0 ? fmt::format(" --jobs {}", jobs) : "";
  std::vector<std::string> lines = {
      fmt::format("attnrank reproduce {} --scale {}{} --db {} --out {}{}", args.figure, args.scale,
                  args.protocol == "clean" ? "" : " --protocol " + args.protocol, database, out_dir,
                  jobs_argument),
      "# the same in steps: the sweep (resumable), then the table behind the figure",
      fmt::format("attnrank sweep {} --db {}{}", preset, database, jobs_argument)};
  std::vector<std::string> group_by;
  for (const auto* key : {&figure.panel, &figure.line, &figure.x})
    if (!key->empty() && !(key == &figure.x && figure.x_is_size())) group_by.push_back(*key);
  // A size axis is no key: the configurations are told apart by the grid's keys.
  if (figure.x_is_size())
    for (const Grid& grid : spec.grids)
      for (const auto& entry : grid)
        if (entry.first != "train.seed" &&
            std::find(group_by.begin(), group_by.end(), entry.first) == group_by.end())
          group_by.push_back(entry.first);
  std::string keys;
  for (const auto& key : group_by) keys += (keys.empty() ? "" : ",") + key;
  lines.push_back(fmt::format("attnrank results {} --group-by {}", database, keys));
  return lines;
}

}  // namespace

void add_reproduce_command(CLI::App& app) {
  auto args = std::make_shared<ReproduceArgs>();
  CLI::App* cmd = app.add_subcommand(
      "reproduce", "Run a published experiment's sweep and write its figure, CSV and report");
  std::string figures;
  for (const auto& name : reproduce_figures()) figures += (figures.empty() ? "" : ", ") + name;
  cmd->add_option("figure", args->figure, figures)->required();
  cmd->add_option("--scale", args->scale,
                  "small (minutes on 2 cores), medium (sized for the figure's claims to be checked "
                  "against the seeds' spread; at most 2 hours on 2 cores) or paper (the "
                  "published hyperparameters)")
      ->capture_default_str();
  cmd->add_option("--protocol", args->protocol,
                  "clean (fresh data, held-out test error), authors (the authors' code as run: "
                  "replayed batches, fixed init, best epoch training loss) or both (side by "
                  "side, OUT/comparison.md); docs/fidelity.md")
      ->capture_default_str();
  cmd->add_option("--out", args->out_dir,
                  "Output directory (default: reproduce/FIGURE-SCALE, -authors or -both appended)");
  cmd->add_option("--db", args->database, "Results database (default: OUT/results.db)");
  CLI::Option* jobs_option =
      cmd->add_option("--jobs,-j", args->jobs,
                      "Runs at a time (default: one per thread, at most the runs, as many as "
                      "memory holds)");
  cmd->add_option("--threads", args->threads,
                  "Threads shared by the jobs (0: every CPU this process may use)");
  cmd->add_option("--shard", args->shard,
                  "Train only slice i of n (i/n or auto, as sweep); a slice draws nothing: merge "
                  "the slices' databases and draw with --no-train")
      ->capture_default_str();
  cmd->add_flag("--no-train", args->no_train,
                "Only draw from the database (e.g. merged cluster shards); train nothing");
  cmd->add_option("--presets", args->presets_dir, "Directory of the presets (configs/reproduce)");
  cmd->add_flag("--quiet", args->quiet, "No per-run progress lines");
  cmd->callback([args, jobs_option] {
    // --jobs 0 is an error, as in sweep; without --jobs the default below applies.
    if (jobs_option->count() > 0 && args->jobs < 1) throw ConfigError("--jobs: must be at least 1");
    SweepRunArgs checked;
    checked.threads = args->threads;
    validate_run_args(checked);
    if (args->protocol != "clean" && args->protocol != "authors" && args->protocol != "both")
      throw ConfigError("--protocol '" + args->protocol + "': expected clean, authors or both");
    const std::string preset = find_preset(args->figure, args->scale, args->presets_dir);
    const SweepSpec preset_spec = load_sweep_spec(preset);
    if (preset_spec.figure.kind == FigureKind::kNone)
      throw ConfigError(preset + ": figure: missing");
    const bool both = args->protocol == "both";
    if (both && preset_spec.figure.kind != FigureKind::kCurves)
      throw ConfigError("--protocol both: only for curves figures (" + args->figure +
                        " draws heads)");
    std::vector<Protocol> protocols;
    if (both || args->protocol == "clean") protocols.push_back(Protocol::kClean);
    if (both || args->protocol == "authors") protocols.push_back(Protocol::kAuthors);
    const std::string suffix = args->protocol == "clean" ? "" : "-" + args->protocol;
    const std::string out_dir = args->out_dir.empty()
                                    ? "reproduce/" + args->figure + "-" + args->scale + suffix
                                    : args->out_dir;
    const std::string database =
        args->database.empty() ? (fs::path(out_dir) / "results.db").string() : args->database;
    std::error_code error;
    fs::create_directories(out_dir, error);
    if (error || !fs::is_directory(out_dir, error))
      throw ConfigError("--out: cannot create directory " + out_dir);
    const int jobs = args->jobs;  // 0: the sweep's job plan (plan_jobs)

    const Shard shard = resolve_shard(args->shard).shard;
    if (args->no_train && shard.count > 1)
      throw ConfigError("--shard: a slice is for training; --no-train draws the whole database");
    std::vector<std::vector<RunRecord>> runs_of(protocols.size());
    for (size_t index = 0; index < protocols.size(); ++index) {
      const Protocol protocol = protocols[index];
      const SweepSpec spec = protocol_spec(preset_spec, protocol);
      // With both, the authors' figure and report go to OUT/authors.
      const std::string dir = both && protocol == Protocol::kAuthors
                                  ? (fs::path(out_dir) / "authors").string()
                                  : out_dir;
      fs::create_directories(dir, error);
      const std::vector<PlannedRun> planned = expand_sweep(spec);
      check_claim_selections(spec.figure, planned);  // before anything is trained
      if (!args->no_train) {
        SweepRunArgs run;
        run.jobs = jobs;
        run.threads = args->threads;
        run.shard = args->shard;
        run.quiet = args->quiet;
        run_planned_sweep(spec, planned, database, run);
      }
      if (shard.count > 1) {
        fmt::print(
            "slice {}/{} of {} trained into {}; draw the figure once every slice is done: "
            "attnrank merge MERGED.db SLICE.db... && attnrank reproduce {} --scale {}{} "
            "--no-train --db MERGED.db\n",
            shard.index, shard.count, args->figure, database, args->figure, args->scale,
            args->protocol == "clean" ? "" : " --protocol " + args->protocol);
        continue;
      }

      std::set<std::string> ids;
      for (const PlannedRun& run : planned) ids.insert(run.id);
      std::vector<RunRecord>& runs = runs_of[index];
      for (RunRecord& run : open_results(database, ResultsStore::Mode::kRead)->runs())
        if (ids.contains(run.id)) runs.push_back(std::move(run));

      std::vector<CurvePoint> curves;
      std::vector<HeadPoint> heads;
      FigureFiles figure;
      if (spec.figure.kind == FigureKind::kCurves) {
        curves = curve_points(spec.figure, runs);
        figure = write_curves_figure(spec.figure, curves, dir, args->figure);
      } else {
        heads = head_points(spec.figure, runs);
        add_head_metrics(runs, heads);
        figure = write_heads_figure(spec.figure, heads, dir, args->figure);
      }
      ReportInputs inputs{args->figure,
                          args->scale,
                          preset,
                          database,
                          command_lines(*args, preset, database, out_dir, jobs, spec),
                          spec,
                          runs,
                          static_cast<int>(planned.size())};
      const std::string report = write_report(inputs, curves, heads, figure, dir);
      if (protocols.size() > 1) fmt::print("protocol {}:\n", protocol_name(protocol));
      if (spec.figure.kind == FigureKind::kCurves)
        for (const auto& line : separation_lines(spec.figure, curves)) fmt::print("{}\n", line);
      if (!spec.figure.claims.empty()) {
        const auto checks = check_claims(spec.figure, runs);
        for (const ClaimCheck& check : checks)
          fmt::print("- {}: {}\n", check.claim.says, verdict_text(check.verdict));
        fmt::print("{}\n", claims_summary(checks));
      }
      fmt::print("{}\ndata: {}\nreport: {}\n", figure.message,
                 (fs::path(dir) / (args->figure + ".csv")).string(), report);
    }
    if (shard.count > 1) return;
    if (both) {
      const auto rows = compare_protocols(preset_spec.figure, runs_of[0], runs_of[1]);
      fmt::print("{}", write_protocol_comparison(rows, preset_spec.figure, out_dir, "comparison"));
      fmt::print("comparison: {}\n", (fs::path(out_dir) / "comparison.md").string());
    }
  });
}

}  // namespace attnrank::cli
