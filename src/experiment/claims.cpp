// A figure's claims against its runs (include/attnrank/experiment/claims.h).
#include "attnrank/experiment/claims.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>

#include "attnrank/experiment/aggregate.h"

namespace attnrank {

namespace {

bool parse_number(const std::string& text, double& value) {
  try {
    size_t used = 0;
    value = std::stod(text, &used);
    return used == text.size();
  } catch (const std::exception&) {
    return false;
  }
}

std::string selection_text(const std::vector<std::pair<std::string, std::string>>& keys) {
  std::string text;
  for (const auto& [key, value] : keys) text += (text.empty() ? "" : ", ") + key + " = " + value;
  return text;
}

std::string side_text(const SampleStats& stats) {
  if (stats.count == 0) return "no runs";
  std::string text = format_number(stats.mean);
  if (stats.count > 1) text += " ± " + format_number(stats.std);
  return text + fmt::format(" ({}..{}, {} seeds)", format_number(stats.min),
                            format_number(stats.max), stats.count);
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

bool config_matches(const RunRecord& run, const std::string& key, const std::string& value) {
  const std::string text = run.value(key);
  if (text == value) return true;
  double have = 0.0, want = 0.0;
  return parse_number(text, have) && parse_number(value, want) && have == want;
}

std::vector<ClaimCheck> check_claims(const FigureSpec& figure, const std::vector<RunRecord>& runs) {
  auto side = [&](const std::vector<std::pair<std::string, std::string>>& keys) {
    std::vector<double> values;
    for (const RunRecord& run : runs)
      if (run.status == "done" && std::all_of(keys.begin(), keys.end(), [&](const auto& entry) {
            return config_matches(run, entry.first, entry.second);
          }))
        values.push_back(run.metric(figure.metric));
    return sample_stats(values);
  };
  std::vector<ClaimCheck> checks;
  for (const FigureClaim& claim : figure.claims) {
    ClaimCheck check{claim, side(claim.better), side(claim.worse), ClaimVerdict::kNotRun};
    if (check.better.count > 0 && check.worse.count > 0) {
      if (!(check.better.mean < check.worse.mean))
        check.verdict = ClaimVerdict::kContradicted;
      else if (check.better.count >= 2 && check.worse.count >= 2 &&
               check.better.max < check.worse.min)
        check.verdict = ClaimVerdict::kHolds;
      else
        check.verdict = ClaimVerdict::kWithinSpread;
    }
    checks.push_back(std::move(check));
  }
  return checks;
}

std::string claims_table(const std::vector<ClaimCheck>& checks) {
  std::string table =
      "| claim | better | worse | its mean ± std (min..max) | worse's | worse / better | "
      "verdict |\n| --- | --- | --- | --- | --- | ---: | --- |\n";
  for (const ClaimCheck& check : checks) {
    const bool both = check.better.count > 0 && check.worse.count > 0;
    table += fmt::format("| {} | {} | {} | {} | {} | {} | {} |\n", check.claim.says,
                         selection_text(check.claim.better), selection_text(check.claim.worse),
                         side_text(check.better), side_text(check.worse),
                         both && check.better.mean > 0
                             ? fmt::format("{:.2f}x", check.worse.mean / check.better.mean)
                             : std::string("-"),
                         verdict_text(check.verdict));
  }
  return table;
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
