// "Did you mean" suggestions for misspelt names (config keys, sweep keys, metrics).
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace attnrank {

// Levenshtein distance.
size_t edit_distance(std::string_view a, std::string_view b);
// " (did you mean 'x'?)" for the closest candidate, or "" when none is close.
std::string did_you_mean(std::string_view wrong, const std::vector<std::string>& candidates);

}  // namespace attnrank
