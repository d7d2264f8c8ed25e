// A figure's claims against its runs (include/attnrank/experiment/claims.h).
#include "attnrank/experiment/claims.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "attnrank/config_io/config_io.h"
#include "attnrank/core/error.h"
#include "attnrank/experiment/aggregate.h"

namespace attnrank {

namespace {

using Selection = std::vector<std::pair<std::string, std::string>>;

bool parse_number(const std::string& text, double& value) {
  if (text.empty() || std::isspace(static_cast<unsigned char>(text.front()))) return false;
  try {
    size_t used = 0;
    value = std::stod(text, &used);
    return used == text.size() && std::isfinite(value);
  } catch (const std::exception&) {
    return false;
  }
}

bool selects(const std::vector<std::pair<std::string, std::string>>& flat,
             const Selection& selection) {
  return std::all_of(selection.begin(), selection.end(), [&](const auto& entry) {
    return config_matches(flat, entry.first, entry.second);
  });
}

std::string selection_text(const Selection& keys) {
  std::string text;
  for (const auto& [key, value] : keys) text += (text.empty() ? "" : ", ") + key + " = " + value;
  return text;
}

// A configuration: the flat config without the seed.
std::string configuration_of(const std::vector<std::pair<std::string, std::string>>& flat) {
  std::string text;
  for (const auto& [key, value] : flat)
    if (key != "train.seed") text += key + "=" + value + "\n";
  return text;
}

// The keys whose values differ between flat configs (for an error message).
std::string differing_keys(
    const std::vector<std::vector<std::pair<std::string, std::string>>>& all) {
  std::set<std::string> keys;
  for (const auto& [key, value] : all.front()) {
    if (key == "train.seed") continue;
    for (const auto& other : all)
      for (const auto& [other_key, other_value] : other)
        if (other_key == key && other_value != value) keys.insert(key);
  }
  std::string text;
  for (const auto& key : keys) text += (text.empty() ? "" : ", ") + key;
  return text;
}

std::string side_text(const ClaimSide& side) {
  if (side.runs() == 0) return "no runs";
  std::string text = side.stats.count > 0 ? format_number(side.stats.mean) : "-";
  if (side.stats.count > 1) text += " ± " + format_number(side.stats.std);
  if (side.stats.count > 0)
    text += fmt::format(" ({}..{}, {} seed{}", format_number(side.stats.min),
                        format_number(side.stats.max), side.stats.count,
                        side.stats.count == 1 ? "" : "s");
  else
    text += " (";
  if (side.diverged > 0)
    text += fmt::format("{}{} diverged", side.stats.count > 0 ? ", " : "", side.diverged);
  return text + ")";
}

std::string markdown_cell(const std::string& text) {
  std::string escaped;
  for (char c : text) escaped += c == '|' ? std::string("\\|") : std::string(1, c);
  return escaped;
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

std::string worse_text(const ClaimCheck& check) {
  return check.claim.worse.empty() ? fmt::format("below {}", format_number(check.claim.worse_than))
                                   : selection_text(check.claim.worse);
}

}  // namespace

std::string verdict_text(ClaimVerdict verdict) {
  switch (verdict) {
    case ClaimVerdict::kHolds:
      return "holds beyond the seeds' spread";
    case ClaimVerdict::kWithinSpread:
      return "in the claimed order, within the seeds' spread";
    case ClaimVerdict::kContradicted:
      return "does not hold";
    case ClaimVerdict::kNotRun:
      break;
  }
  return "not run";
}

bool config_matches(const std::vector<std::pair<std::string, std::string>>& flat_config,
                    const std::string& key, const std::string& value) {
  for (const auto& [name, text] : flat_config) {
    if (name != key) continue;
    if (text == value) return true;
    double have = 0.0, want = 0.0;
    return parse_number(text, have) && parse_number(value, want) && have == want;
  }
  return false;
}

void check_claim_selections(const FigureSpec& figure, const std::vector<PlannedRun>& planned) {
  std::vector<std::vector<std::pair<std::string, std::string>>> flats;
  for (const PlannedRun& run : planned) flats.push_back(flat_config(run.config));
  for (size_t i = 0; i < figure.claims.size(); ++i) {
    const FigureClaim& claim = figure.claims[i];
    std::string configurations[2];
    for (int side = 0; side < 2; ++side) {
      const Selection& selection = side == 0 ? claim.better : claim.worse;
      if (side == 1 && selection.empty()) continue;  // worse: a number
      const std::string where =
          fmt::format("figure.claims[{}].{}", i, side == 0 ? "better" : "worse");
      std::vector<std::vector<std::pair<std::string, std::string>>> chosen;
      std::set<std::string> distinct;
      for (const auto& flat : flats)
        if (selects(flat, selection)) {
          chosen.push_back(flat);
          distinct.insert(configuration_of(flat));
        }
      if (chosen.empty()) {
        // Name the first key no run has at that value, with the values the runs have.
        for (const auto& [key, value] : selection) {
          std::set<std::string> values;
          bool found = false;
          for (const auto& flat : flats)
            for (const auto& [name, text] : flat)
              if (name == key) {
                values.insert(text);
                found = found || config_matches(flat, key, value);
              }
          if (!found) {
            std::string listed;
            for (const auto& text : values) listed += (listed.empty() ? "" : ", ") + text;
            throw ConfigError(fmt::format("{}.{}: no run of the grid has '{}' (its runs have {})",
                                          where, key, value, listed));
          }
        }
        throw ConfigError(where + ": no run of the grid has all of " + selection_text(selection));
      }
      if (distinct.size() > 1)
        throw ConfigError(fmt::format(
            "{}: selects {} configurations, not one (they differ in {}): name those keys too",
            where, distinct.size(), differing_keys(chosen)));
      configurations[side] = *distinct.begin();
    }
    if (!claim.worse.empty() && configurations[0] == configurations[1])
      throw ConfigError(
          fmt::format("figure.claims[{}]: better and worse select the same configuration", i));
  }
}

void add_head_metrics(std::vector<RunRecord>& runs, const std::vector<HeadPoint>& heads) {
  std::map<std::string, std::vector<double>> angles;
  for (const HeadPoint& head : heads) angles[head.run_id].push_back(head.angle_to_identity);
  for (RunRecord& run : runs)
    if (const auto found = angles.find(run.id); found != angles.end())
      run.final_metrics[kHeadAngleGap] = 180.0 - sample_stats(found->second).mean;
}

std::vector<ClaimCheck> check_claims(const FigureSpec& figure, const std::vector<RunRecord>& runs) {
  std::vector<ClaimCheck> checks;
  for (const FigureClaim& claim : figure.claims) {
    ClaimCheck check;
    check.claim = claim;
    check.metric = claim.metric.empty() ? figure.metric : claim.metric;
    auto side = [&](const Selection& selection) {
      ClaimSide result;
      std::vector<double> values;
      for (const RunRecord& run : runs) {
        if (!run.finished() || !selects(run.config, selection)) continue;
        const double value = run.metric(check.metric);
        if (run.status == "diverged" || std::isinf(value))
          ++result.diverged;
        else if (std::isfinite(value))
          values.push_back(value);
      }
      result.stats = sample_stats(values);
      return result;
    };
    check.better = side(claim.better);
    const bool bound = claim.worse.empty();
    if (!bound) check.worse = side(claim.worse);
    const ClaimSide& better = check.better;
    const ClaimSide& worse = check.worse;
    if (bound) {
      if (better.runs() == 0)
        check.verdict = ClaimVerdict::kNotRun;
      else if (better.diverged > 0 || !(better.stats.mean < claim.worse_than))
        check.verdict = ClaimVerdict::kContradicted;
      else
        check.verdict = better.stats.max < claim.worse_than && better.stats.count >= 2
                            ? ClaimVerdict::kHolds
                            : ClaimVerdict::kWithinSpread;
    } else if (better.runs() == 0 || worse.runs() == 0) {
      check.verdict = ClaimVerdict::kNotRun;
    } else if (better.diverged > 0 && worse.diverged == 0) {
      check.verdict = ClaimVerdict::kContradicted;
    } else if (better.stats.count == 0 ||
               (worse.stats.count > 0 && !(better.stats.mean < worse.stats.mean))) {
      check.verdict =
          better.diverged > 0 ? ClaimVerdict::kWithinSpread : ClaimVerdict::kContradicted;
    } else if (better.diverged == 0 && better.stats.count >= 2 && worse.runs() >= 2 &&
               (worse.stats.count == 0 || better.stats.max < worse.stats.min)) {
      check.verdict = ClaimVerdict::kHolds;
    } else {
      check.verdict = ClaimVerdict::kWithinSpread;
    }
    checks.push_back(std::move(check));
  }
  return checks;
}

std::string claims_table(const std::vector<ClaimCheck>& checks) {
  std::string table =
      "| claim | metric | better | worse | better: mean ± std (min..max, seeds) | worse: mean ± "
      "std (min..max, seeds) | worse / better | verdict |\n"
      "| --- | --- | --- | --- | --- | --- | ---: | --- |\n";
  for (const ClaimCheck& check : checks) {
    const double worse_mean =
        check.claim.worse.empty() ? check.claim.worse_than : check.worse.stats.mean;
    const bool ratio =
        check.better.stats.count > 0 && std::isfinite(worse_mean) && check.better.stats.mean > 0;
    table += fmt::format(
        "| {} | {} | {} | {} | {} | {} | {} | {} |\n", markdown_cell(check.claim.says),
        check.metric, markdown_cell(selection_text(check.claim.better)),
        markdown_cell(worse_text(check)), side_text(check.better),
        check.claim.worse.empty() ? "-" : side_text(check.worse),
        ratio ? fmt::format("{:.2f}x", worse_mean / check.better.stats.mean) : std::string("-"),
        verdict_text(check.verdict));
  }
  return table;
}

std::string claims_csv(const std::vector<ClaimCheck>& checks) {
  std::string csv =
      "claim,metric,better,worse,better_mean,better_std,better_min,better_max,better_seeds,"
      "better_diverged,worse_mean,worse_std,worse_min,worse_max,worse_seeds,worse_diverged,"
      "verdict\n";
  auto number = [](double value) { return std::isfinite(value) ? fmt::format("{}", value) : ""; };
  for (const ClaimCheck& check : checks) {
    const bool bound = check.claim.worse.empty();
    const SampleStats& b = check.better.stats;
    const SampleStats& w = check.worse.stats;
    csv += fmt::format(
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n", csv_field(check.claim.says),
        check.metric, csv_field(selection_text(check.claim.better)), csv_field(worse_text(check)),
        number(b.mean), number(b.std), number(b.min), number(b.max), b.count, check.better.diverged,
        number(bound ? check.claim.worse_than : w.mean), number(w.std), number(w.min),
        number(w.max), w.count, check.worse.diverged, csv_field(verdict_text(check.verdict)));
  }
  return csv;
}

std::string claims_summary(const std::vector<ClaimCheck>& checks) {
  int holds = 0, within = 0, contradicted = 0, not_run = 0;
  for (const ClaimCheck& check : checks) {
    holds += check.verdict == ClaimVerdict::kHolds;
    within += check.verdict == ClaimVerdict::kWithinSpread;
    contradicted += check.verdict == ClaimVerdict::kContradicted;
    not_run += check.verdict == ClaimVerdict::kNotRun;
  }
  return fmt::format(
      "claims: {} of {} hold beyond the seeds' spread ({} within the spread, {} do not hold, {} "
      "not run)",
      holds, checks.size(), within, contradicted, not_run);
}

}  // namespace attnrank
