// Checking a figure's qualitative claims (`figure.claims` in a preset) on its runs:
// does the configuration said to be better have a lower metric, beyond the spread of
// its seeds? The report's "Claims" section and `reproduce`'s last lines.
#pragma once
#include <string>
#include <vector>

#include "attnrank/experiment/results_store.h"
#include "attnrank/experiment/sweep.h"
#include "attnrank/report/statistics.h"

namespace attnrank {

enum class ClaimVerdict {
  kHolds,         // every seed of `better` below every seed of `worse` (two or more each)
  kWithinSpread,  // the means in the claimed order, the seeds' ranges overlap
  kContradicted,  // the mean of `better` at or above the mean of `worse`
  kNotRun,        // a side has no finished run with a finite metric
};
std::string verdict_text(ClaimVerdict verdict);

struct ClaimCheck {
  FigureClaim claim;
  SampleStats better, worse;  // the figure's metric over each side's runs (seeds)
  ClaimVerdict verdict = ClaimVerdict::kNotRun;
};

// Whether a run's config has `key` at `value` (numbers compare as numbers: 0.01 = 1e-2).
bool config_matches(const RunRecord& run, const std::string& key, const std::string& value);

// Each claim of `figure` on the done runs among `runs`, by figure.metric (lower is better).
std::vector<ClaimCheck> check_claims(const FigureSpec& figure, const std::vector<RunRecord>& runs);

// A Markdown table of the checks: claim, each side's mean ± std (min..max, seeds), the
// ratio worse / better of the means and the verdict.
std::string claims_table(const std::vector<ClaimCheck>& checks);
// One line: "claims: K of M hold beyond the seeds' spread (...)".
std::string claims_summary(const std::vector<ClaimCheck>& checks);

}  // namespace attnrank
