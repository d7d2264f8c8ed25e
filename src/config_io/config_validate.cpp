// Derived values (rank, value_rank) and every constraint on a merged config.
// Per-key rules come from the key table; rules that tie keys together are here.
#include <fmt/core.h>

#include <limits>

#include "attnrank/core/error.h"
#include "attnrank/core/resources.h"
#include "attnrank/tasks/sequence_length.h"
#include "config_schema.h"

namespace attnrank::config_schema {

const std::string& Origins::of(std::string_view key) const {
  const auto it = by_key.find(key);
  return it == by_key.end() ? fallback : it->second;
}

void fail(const std::string& source, std::string_view key, std::string_view message) {
  throw ConfigError(
      one_line(fmt::format("{}{}: {}", source.empty() ? "" : source + ": ", key, message)));
}

namespace {

void check_per_key_rules(RunConfig& config, const Origins& origins) {
  for (const KeySpec& spec : key_specs()) {
    // `auto` ranks are checked once derived.
    if (const auto* rank = std::get_if<RankValue>(&spec.value); rank && rank->ref(config) == 0)
      continue;
    if (const auto problem = value_violation(spec, config))
      fail(origins.of(spec.key()), spec.key(), *problem);
  }
}

void check_cross_key_rules(const RunConfig& config, const Origins& origins) {
  const ModelConfig& model = config.model;
  const TaskConfig& task = config.task;
  const TrainConfig& train = config.train;
  // Sizes the engine holds in int: computed in 64 bits here, so an absurd value is
  // an error naming its key instead of an overflow.
  constexpr int64_t kMaxInt = std::numeric_limits<int>::max();
  const bool text_task = task.name == TaskKind::kLm || task.name == TaskKind::kMlm;
  const int64_t tokens =
      text_task ? int64_t{task.length}
      : task.name == TaskKind::kIclLinear
          ? 2 * int64_t{task.examples} + 1
          : int64_t{task.points} + (task.name == TaskKind::kNearest ? task.queries : 0);
  const char* length_key = text_task                           ? "task.length"
                           : task.name == TaskKind::kIclLinear ? "task.examples"
                                                               : "task.points";
  if (tokens > kMaxInt)
    fail(origins.of(length_key), length_key,
         fmt::format("the sequence length {} is too large", tokens));
  if (task.name == TaskKind::kIclLinear && int64_t{task.features} + 1 > kMaxInt)
    fail(origins.of("task.features"), "task.features",
         fmt::format("{} is too large", task.features));
  if (int64_t{train.batch} * tokens > kMaxInt)
    fail(origins.of("train.batch"), "train.batch",
         fmt::format("{} sequences of {} tokens are {} rows, more than one batch may hold ({})",
                     train.batch, tokens, int64_t{train.batch} * tokens, kMaxInt));
  if (train.threads > kMaxThreads)
    fail(origins.of("train.threads"), "train.threads",
         fmt::format("{} is more than the {} threads attnrank runs (OpenBLAS's limit); 0 uses "
                     "every CPU this process may use",
                     train.threads, kMaxThreads));
  if (model.positional == Positional::kConcat && model.positional_dim < 1)
    fail(origins.of("model.positional_dim"), "model.positional_dim",
         fmt::format("must be >= 1 with model.positional = concat, got {}", model.positional_dim));
  if (task.name == TaskKind::kFarthest && task.points < 2)
    fail(origins.of("task.points"), "task.points",
         fmt::format("must be >= 2 for task.name = farthest, got {}", task.points));
  const bool point_task = task.name == TaskKind::kFarthest || task.name == TaskKind::kNearest;
  if (point_task && task.distribution == PointDistribution::kOrthogonal && task.points > model.dim)
    fail(origins.of("task.points"), "task.points",
         fmt::format("the orthogonal distribution needs task.points <= model.dim, got "
                     "task.points = {} and model.dim = {}",
                     task.points, model.dim));
  if (model.head_size == HeadSize::kFixed && model.rank != 0 && model.rank != sequence_length(task))
    fail(origins.of("model.rank"), "model.rank",
         fmt::format("model.head_size = fixed sets the rank to the sequence length ({}), got "
                     "model.rank = {}; leave model.rank at auto, or use head_size standard",
                     sequence_length(task), model.rank));
  if (train.min_lr > train.lr)
    fail(origins.of("train.min_lr"), "train.min_lr",
         fmt::format("must be <= train.lr ({}), got {}", train.lr, train.min_lr));
  if (train.eval_every > 0 && train.eval_every % train.log_every != 0)
    fail(origins.of("train.eval_every"), "train.eval_every",
         fmt::format("must be a multiple of train.log_every ({}) (evaluations land on metrics "
                     "rows), got {}",
                     train.log_every, train.eval_every));
}

// The source to blame for an `auto` rank that does not work out: an explicit
// `auto`, else whoever set the heads or the width.
const std::string& rank_origin(const Origins& origins) {
  for (const char* key : {"model.rank", "model.heads", "model.dim", "model.positional_dim"}) {
    if (origins.by_key.count(std::string_view(key))) return origins.of(key);
  }
  return origins.fallback;
}

void derive_ranks(RunConfig& config, const Origins& origins) {
  ModelConfig& model = config.model;
  if (model.rank == 0 && model.head_size == HeadSize::kFixed)
    model.rank = sequence_length(config.task);
  if (model.rank == 0) {
    // 64-bit: dim + positional_dim may exceed int for absurd inputs.
    const int64_t width =
        int64_t{model.dim} + (model.positional == Positional::kConcat ? model.positional_dim : 0);
    if (width % model.heads != 0)
      fail(rank_origin(origins), "model.rank",
           fmt::format("auto rank needs model.heads ({}) to divide the model width {}{}; set "
                       "model.rank explicitly",
                       model.heads, width,
                       model.positional == Positional::kConcat
                           ? " (model.dim + model.positional_dim)"
                           : ""));
    if (width / model.heads > std::numeric_limits<int>::max())
      fail(
          rank_origin(origins), "model.rank",
          fmt::format("auto rank {} is too large; set model.rank explicitly", width / model.heads));
    model.rank = static_cast<int>(width / model.heads);
  }
  if (model.value_rank == 0) model.value_rank = model.rank;
}

}  // namespace

void resolve_and_validate(RunConfig& config, const Origins& origins) {
  // Per-key rules first: heads >= 1 must hold before deriving the rank divides by it.
  check_per_key_rules(config, origins);
  check_cross_key_rules(config, origins);
  derive_ranks(config, origins);
}

}  // namespace attnrank::config_schema

namespace attnrank {

void resolve_and_validate(RunConfig& config) {
  config_schema::resolve_and_validate(config, config_schema::Origins{});
}

}  // namespace attnrank
