// What a trained attnrank model's heads compute: for every layer, module and head, the
// bilinear form M = W_Q W_K^T (D x D; the published "K Q^T") that scores query x against
// key x' as x^T M x' / sqrt(r) (biases aside). Fact 1's construction is M = +-beta I;
// trained full-rank heads on `farthest` come close to -beta I (Amsel et al. 2024, arXiv
// 2407.16153).
#pragma once
#include <string>
#include <vector>

#include "attnrank/config/run_config.h"

namespace attnrank {

template <typename T>
class Transformer;

struct HeadInspection {
  int layer = 0, module = 0, head = 0;
  std::vector<double> singular_values;  // of M, descending (min(r, D) values; the rest are 0)
  double frobenius = 0.0;               // ||M||_F
  double effective_rank = 0.0;          // exp(entropy of sigma / sum sigma) (Roy & Vetterli)
  double stable_rank = 0.0;             // ||M||_F^2 / sigma_max^2
  double beta = 0.0;                    // tr(M) / D: the nearest multiple of I is beta I
  double angle_to_identity = 0.0;       // degrees between M and I (Frobenius inner product);
                                        // the angle to -I is 180 minus this
  double angle_token_block = 0.0;       // the same for the d x d token block (concat encodings)
  // The authors' published measure (docs/fidelity.md): P = Q K^T with Q, K the (r, D)
  // query and key rows of PyTorch's in_proj_weight (r x r; D x D for one full-rank
  // head), not M. Angle of P to I (same trace as M, a different norm) and
  // ||P||_F / sqrt(r), the norm of I being sqrt(r).
  double published_angle = 0.0;  // degrees
  double published_scale = 0.0;
};

struct ModelInspection {
  ModelConfig config;
  int width = 0;  // D
  std::vector<HeadInspection> heads;
};

ModelInspection inspect_model(const Transformer<float>& model);
// Loads DIR/config.yaml + DIR/model.safetensors (load_run) and inspects it.
ModelInspection inspect_checkpoint(const std::string& run_dir);

// The per-head table as JSON text (config summary + one object per head).
std::string inspection_json(const ModelInspection& inspection);

}  // namespace attnrank
