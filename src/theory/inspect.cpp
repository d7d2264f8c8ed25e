#include "attnrank/theory/inspect.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numbers>

#include "attnrank/core/eigen_dense.h"
#include "attnrank/nn/model.h"
#include "attnrank/train/checkpoint.h"

namespace attnrank {

namespace {

using Matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

double angle_degrees(double trace, double frobenius, int size) {
  if (frobenius == 0.0) return 90.0;  // the zero matrix is orthogonal to everything
  const double cosine = std::clamp(trace / (frobenius * std::sqrt(double(size))), -1.0, 1.0);
  return std::acos(cosine) * 180.0 / std::numbers::pi;
}

// queries, keys: (r, D) row blocks of in_proj (the rows of W_Q^T and W_K^T).
HeadInspection inspect_head(const Matrix& queries, const Matrix& keys, int token_dim) {
  HeadInspection out;
  const int width = static_cast<int>(queries.cols());
  // M = W_Q W_K^T = queries^T keys. Its nonzero singular values are those of
  // R_q R_k^T with queries^T = Q_q R_q, keys^T = Q_k R_k (thin QR), an r x r matrix.
  Eigen::HouseholderQR<Matrix> qr_q(queries.transpose()), qr_k(keys.transpose());
  const int r = static_cast<int>(std::min<Eigen::Index>(queries.rows(), width));
  const Matrix r_q = qr_q.matrixQR().topRows(r).triangularView<Eigen::Upper>();
  const Matrix r_k = qr_k.matrixQR().topRows(r).triangularView<Eigen::Upper>();
  const Eigen::VectorXd sigma = Eigen::JacobiSVD<Matrix>(r_q * r_k.transpose()).singularValues();
  out.singular_values.assign(sigma.data(), sigma.data() + sigma.size());
  out.frobenius = sigma.norm();
  const double total = sigma.sum();
  double entropy = 0.0;
  for (double s : out.singular_values)
    if (s > 0.0) entropy -= (s / total) * std::log(s / total);
  out.effective_rank = total > 0.0 ? std::exp(entropy) : 0.0;
  out.stable_rank = sigma.size() > 0 && sigma(0) > 0.0
                        ? out.frobenius * out.frobenius / (sigma(0) * sigma(0))
                        : 0.0;
  // tr(M) = sum_e <q_e, k_e> over the r row pairs; the token block uses the first d columns.
  const double trace = (queries.array() * keys.array()).sum();
  out.beta = trace / width;
  out.angle_to_identity = angle_degrees(trace, out.frobenius, width);
  const Matrix block = queries.leftCols(token_dim).transpose() * keys.leftCols(token_dim);
  out.angle_token_block = angle_degrees(block.trace(), block.norm(), token_dim);
  const Matrix published = queries * keys.transpose();  // PyTorch's Q @ K.T
  out.published_angle = angle_degrees(trace, published.norm(), r);
  out.published_scale = published.norm() / std::sqrt(double(r));
  return out;
}

}  // namespace

ModelInspection inspect_model(const Transformer<float>& model) {
  ModelInspection result;
  result.config = model.config();
  const ModelConfig& c = model.config();
  const int width = c.width(), r = c.rank, heads = c.heads, block = 2 * c.rank + c.value_rank;
  result.width = width;
  for (int layer = 0; layer < c.layers; ++layer) {
    const TensorInfo& info =
        model.layout().find("layers." + std::to_string(layer) + ".attn.in_proj_weight");
    const float* in = model.parameters().data() + info.offset;
    for (int module = 0; module < c.width_multiplier; ++module) {
      const size_t base = static_cast<size_t>(module) * heads * block;
      for (int head = 0; head < heads; ++head) {
        Matrix queries(r, width), keys(r, width);
        for (int e = 0; e < r; ++e)
          for (int i = 0; i < width; ++i) {
            queries(e, i) = in[(base + static_cast<size_t>(head) * r + e) * width + i];
            keys(e, i) = in[(base + static_cast<size_t>(heads + head) * r + e) * width + i];
          }
        HeadInspection h = inspect_head(queries, keys, c.dim);
        h.layer = layer;
        h.module = module;
        h.head = head;
        result.heads.push_back(std::move(h));
      }
    }
  }
  return result;
}

ModelInspection inspect_checkpoint(const std::string& run_dir) {
  const LoadedRun run = load_run(run_dir);
  return inspect_model(*run.model);
}

std::string inspection_json(const ModelInspection& inspection) {
  const ModelConfig& c = inspection.config;
  nlohmann::json out;
  out["model"] = {{"dim", c.dim},
                  {"width", inspection.width},
                  {"heads", c.heads},
                  {"rank", c.rank},
                  {"value_rank", c.value_rank},
                  {"width_multiplier", c.width_multiplier},
                  {"layers", c.layers},
                  {"positional", std::string(name_of(c.positional))}};
  out["heads"] = nlohmann::json::array();
  for (const HeadInspection& h : inspection.heads) {
    out["heads"].push_back({{"layer", h.layer},
                            {"module", h.module},
                            {"head", h.head},
                            {"frobenius", h.frobenius},
                            {"effective_rank", h.effective_rank},
                            {"stable_rank", h.stable_rank},
                            {"beta", h.beta},
                            {"angle_to_identity_deg", h.angle_to_identity},
                            {"angle_to_minus_identity_deg", 180.0 - h.angle_to_identity},
                            {"angle_token_block_deg", h.angle_token_block},
                            {"published_angle_deg", h.published_angle},
                            {"published_scale", h.published_scale},
                            {"singular_values", h.singular_values}});
  }
  return out.dump(2) + "\n";
}

}  // namespace attnrank
