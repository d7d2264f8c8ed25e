#include "attnrank/tasks/sequence_length.h"

namespace attnrank {

int sequence_length(const TaskConfig& task) {
  if (task.name == "lm" || task.name == "mlm") return task.length;
  if (task.name == "icl-linear") return 2 * task.examples + 1;
  return task.points + (task.name == "nearest" ? task.queries : 0);
}

}  // namespace attnrank
