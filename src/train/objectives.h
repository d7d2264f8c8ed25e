// Constructors of the objectives, one file each (src/train/objective_*.cpp).
#pragma once
#include <memory>

#include "attnrank/train/objective.h"

namespace attnrank {

std::unique_ptr<Objective> make_point_objective(const RunConfig& config);
std::unique_ptr<Objective> make_text_objective(const RunConfig& config);
std::unique_ptr<Objective> make_icl_objective(const RunConfig& config);

}  // namespace attnrank
