#include "attnrank/tasks/sequence_length.h"

namespace attnrank {

int sequence_length(const TaskConfig& task) {
  if (task.name == TaskKind::kLm || task.name == TaskKind::kMlm) return task.length;
  if (task.name == TaskKind::kIclLinear) return 2 * task.examples + 1;
  return task.points + (task.name == TaskKind::kNearest ? task.queries : 0);
}

}  // namespace attnrank
