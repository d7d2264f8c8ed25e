// Constructors of the objectives, one file each (src/train/objective_*.cpp).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "attnrank/train/objective.h"

namespace attnrank {

std::unique_ptr<Objective> make_point_objective(const RunConfig& config);
std::unique_ptr<Objective> make_text_objective(const RunConfig& config);
std::unique_ptr<Objective> make_icl_objective(const RunConfig& config);

// The mean loss of `model` over `batches` held-out batches, batch i made by
// fill(i, batch); visit(batch, outputs) sees each one too (the ICL error curves).
template <typename Fill, typename Visit>
double held_out_mean_loss(const Objective& objective, Transformer<float>& model, int batches,
                          Fill fill, Visit visit) {
  Batch batch;
  std::vector<float> outputs;
  double total = 0.0;
  for (int index = 0; index < batches; ++index) {
    fill(static_cast<uint64_t>(index), batch);
    outputs.resize(batch.targets.size());
    forward_batch(model, batch, outputs.data());
    total += objective.loss(batch, outputs.data(), nullptr);
    visit(batch, outputs);
  }
  return total / batches;
}

}  // namespace attnrank
