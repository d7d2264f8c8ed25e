// Checking a figure's qualitative claims (`figure.claims` in a preset) on its runs:
// does the configuration said to be better have a lower metric, beyond the spread of
// its seeds? The report's "Claims" section, OUT/claims.csv and `reproduce`'s last lines.
#pragma once
#include <string>
#include <vector>

#include "attnrank/experiment/reproduce.h"
#include "attnrank/experiment/results_store.h"
#include "attnrank/experiment/sweep.h"
#include "attnrank/report/statistics.h"

namespace attnrank {

enum class ClaimVerdict {
  kHolds,         // every seed of `better` below every seed of `worse` (two or more each;
                  // no diverged seed on the better side), or below the bound `worse_than`
  kWithinSpread,  // the means in the claimed order, the seeds' ranges overlap
  kContradicted,  // the mean of `better` at or above that of `worse`, or better diverged
                  // where worse did not
  kNotRun,        // a side has no finished run
};
std::string verdict_text(ClaimVerdict verdict);

struct ClaimSide {
  SampleStats stats;  // the claim's metric over the finite values of the side's runs
  int diverged = 0;   // runs that diverged (NaN/inf): counted as +infinity
  int runs() const { return stats.count + diverged; }
};

struct ClaimCheck {
  FigureClaim claim;
  std::string metric;  // the claim's metric, or the figure's
  ClaimSide better, worse;
  ClaimVerdict verdict = ClaimVerdict::kNotRun;
};

// Whether a run's config has `key` at `value` (numbers compare as numbers: 0.01 = 1e-2).
bool config_matches(const std::vector<std::pair<std::string, std::string>>& flat_config,
                    const std::string& key, const std::string& value);

// Checks, before anything is trained, that each side of each claim selects runs of the
// planned grid, exactly one configuration apart from the seed, and that the two sides
// select different configurations. Throws ConfigError naming the claim and side.
void check_claim_selections(const FigureSpec& figure, const std::vector<PlannedRun>& planned);

// A heads figure's claim metric kHeadAngleGap, per run from its heads' angles: added
// to the final metrics of `runs` that have heads in `heads`.
void add_head_metrics(std::vector<RunRecord>& runs, const std::vector<HeadPoint>& heads);

// Each claim of `figure` on the finished runs among `runs` (lower is better).
std::vector<ClaimCheck> check_claims(const FigureSpec& figure, const std::vector<RunRecord>& runs);

// A Markdown table of the checks: claim, each side's mean ± std (min..max, seeds), the
// ratio worse / better of the means and the verdict.
std::string claims_table(const std::vector<ClaimCheck>& checks);
// The same as CSV (one row per claim, for pandas).
std::string claims_csv(const std::vector<ClaimCheck>& checks);
// One line: "claims: K of M hold beyond the seeds' spread (...)".
std::string claims_summary(const std::vector<ClaimCheck>& checks);

}  // namespace attnrank
