// The closed choices of a run configuration, as enums. Their names (what a config
// file, a results database and a run identity say) live here and only here:
// the engine compares enums, the schema converts at the boundary.
#pragma once
#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace attnrank {

enum class Norm { kSphere, kLayer, kNone };
enum class Positional { kNone, kAdditive, kConcat };
// What an auto rank is: standard: model width / heads; fixed: the sequence length.
enum class HeadSize { kStandard, kFixed };
enum class TaskKind { kFarthest, kNearest, kLm, kMlm, kIclLinear };
enum class PointDistribution { kUniform, kOrthogonal };
// Training data: fresh: a new batch every step; replay: the same epoch_batches
// batches every epoch (the authors' re-seeded data loader, docs/fidelity.md).
enum class DataMode { kFresh, kReplay };
// Learned positional tables: normal: N(0, 1/columns); uniform: U(-1, 1) (the authors').
enum class PositionalInit { kNormal, kUniform };

// ChoiceNames<E>::names[i] is the name of the enumerator with value i.
template <typename E>
struct ChoiceNames;
template <>
struct ChoiceNames<Norm> {
  static constexpr std::array<std::string_view, 3> names{"sphere", "layer", "none"};
};
template <>
struct ChoiceNames<Positional> {
  static constexpr std::array<std::string_view, 3> names{"none", "additive", "concat"};
};
template <>
struct ChoiceNames<HeadSize> {
  static constexpr std::array<std::string_view, 2> names{"standard", "fixed"};
};
template <>
struct ChoiceNames<TaskKind> {
  static constexpr std::array<std::string_view, 5> names{"farthest", "nearest", "lm", "mlm",
                                                         "icl-linear"};
};
template <>
struct ChoiceNames<PointDistribution> {
  static constexpr std::array<std::string_view, 2> names{"uniform", "orthogonal"};
};

template <>
struct ChoiceNames<DataMode> {
  static constexpr std::array<std::string_view, 2> names{"fresh", "replay"};
};
template <>
struct ChoiceNames<PositionalInit> {
  static constexpr std::array<std::string_view, 2> names{"normal", "uniform"};
};

template <typename E>
constexpr std::string_view name_of(E value) {
  return ChoiceNames<E>::names[static_cast<size_t>(value)];
}

template <typename E>
constexpr std::optional<E> choice_from_name(std::string_view text) {
  const auto& names = ChoiceNames<E>::names;
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == text) return static_cast<E>(i);
  return std::nullopt;
}

template <typename E>
std::vector<std::string> choice_names() {
  return {ChoiceNames<E>::names.begin(), ChoiceNames<E>::names.end()};
}

inline bool is_point_task(TaskKind task) {
  return task == TaskKind::kFarthest || task == TaskKind::kNearest;
}
inline bool is_text_task(TaskKind task) {
  return task == TaskKind::kLm || task == TaskKind::kMlm;
}

}  // namespace attnrank
