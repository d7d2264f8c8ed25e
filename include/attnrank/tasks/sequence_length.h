// How many tokens each task gives the model: what the config validation needs to
// know of tasks (head_size: fixed sets the rank to it).
#pragma once
#include "attnrank/config/run_config.h"

namespace attnrank {

// Tokens per sequence: points (+ queries for nearest), the text length, or
// 2 * examples + 1 for icl-linear.
int sequence_length(const TaskConfig& task);

}  // namespace attnrank
