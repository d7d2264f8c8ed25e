// Head inspection against brute-force SVD of W_Q W_K^T and hand-built heads, and through a
// saved checkpoint.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "attnrank/config_io/config_io.h"
#include "attnrank/core/eigen_dense.h"
#include "attnrank/core/rng.h"
#include "attnrank/nn/model.h"
#include "attnrank/tasks/point_task.h"
#include "attnrank/theory/inspect.h"
#include "attnrank/train/checkpoint.h"
#include "attnrank/train/objective.h"

using namespace attnrank;

namespace {

RunConfig small_config() {
  RunConfig config;
  config.model.dim = 4;
  config.model.heads = 2;
  config.model.rank = 4;
  config.model.value_rank = 3;
  config.model.width_multiplier = 2;
  config.model.layers = 2;
  config.model.ffn = 8;
  config.task.points = 5;
  return config;
}

// Q rows of (layer, module, head) start here inside in_proj (see attention.h).
size_t query_row(const ModelConfig& c, int module, int head) {
  return static_cast<size_t>(module) * c.heads * (2 * c.rank + c.value_rank) + head * c.rank;
}
size_t key_row(const ModelConfig& c, int module, int head) {
  return query_row(c, module, head) + static_cast<size_t>(c.heads) * c.rank;
}

}  // namespace

TEST(Inspect, MatchesBruteForceAndHandBuiltHeads) {
  const RunConfig config = small_config();
  const PointTask task(config.task, config.model.dim);
  Transformer<float> model(config.model, point_sequence(task));
  model.initialize(3);
  const ModelConfig& c = model.config();
  const int width = c.width();
  // Layer 1, module 1, head 0: M = W_Q W_K^T = -5 I.
  float* in = model.parameter("layers.1.attn.in_proj_weight");
  for (int e = 0; e < c.rank; ++e)
    for (int i = 0; i < width; ++i) {
      in[(query_row(c, 1, 0) + e) * width + i] = e == i ? -5.0f : 0.0f;
      in[(key_row(c, 1, 0) + e) * width + i] = e == i ? 1.0f : 0.0f;
    }
  // Layer 1, module 0, head 1: rank one, M = u v^T with |u| = 2, |v| = 3.
  for (int e = 0; e < c.rank; ++e)
    for (int i = 0; i < width; ++i) {
      in[(query_row(c, 0, 1) + e) * width + i] = e == 0 && i == 1 ? 2.0f : 0.0f;
      in[(key_row(c, 0, 1) + e) * width + i] = e == 0 && i == 2 ? 3.0f : 0.0f;
    }
  const ModelInspection inspection = inspect_model(model);
  ASSERT_EQ(inspection.heads.size(), 8u);

  const HeadInspection& minus = inspection.heads[4 + 2];  // layer 1, module 1, head 0
  ASSERT_EQ(minus.layer, 1);
  ASSERT_EQ(minus.module, 1);
  ASSERT_EQ(minus.head, 0);
  for (double s : minus.singular_values) EXPECT_NEAR(s, 5.0, 1e-6);
  EXPECT_NEAR(minus.angle_to_identity, 180.0, 1e-4);
  EXPECT_NEAR(minus.beta, -5.0, 1e-6);
  EXPECT_NEAR(minus.effective_rank, 4.0, 1e-9);
  EXPECT_NEAR(minus.frobenius, 10.0, 1e-6);

  const HeadInspection& one = inspection.heads[4 + 1];  // layer 1, module 0, head 1
  EXPECT_NEAR(one.singular_values[0], 6.0, 1e-6);
  EXPECT_NEAR(one.singular_values[1], 0.0, 1e-6);
  EXPECT_NEAR(one.effective_rank, 1.0, 1e-6);
  EXPECT_NEAR(one.angle_to_identity, 90.0, 1e-6);  // u _|_ v: trace 0

  // Random heads of layer 0 against an SVD of the explicit D x D product.
  const float* in0 = model.parameter("layers.0.attn.in_proj_weight");
  for (int module = 0; module < 2; ++module)
    for (int head = 0; head < 2; ++head) {
      Eigen::MatrixXd m = Eigen::MatrixXd::Zero(width, width);
      for (int e = 0; e < c.rank; ++e)
        for (int i = 0; i < width; ++i)
          for (int j = 0; j < width; ++j)
            m(i, j) += double(in0[(query_row(c, module, head) + e) * width + i]) *
                       in0[(key_row(c, module, head) + e) * width + j];
      const Eigen::VectorXd sigma = Eigen::JacobiSVD<Eigen::MatrixXd>(m).singularValues();
      const HeadInspection& h = inspection.heads[module * 2 + head];
      for (int k = 0; k < width; ++k) EXPECT_NEAR(h.singular_values[k], sigma(k), 1e-9);
      EXPECT_NEAR(h.beta, m.trace() / width, 1e-12);
      EXPECT_NEAR(std::cos(h.angle_to_identity * std::acos(-1.0) / 180),
                  m.trace() / (m.norm() * 2.0), 1e-9);
    }
  EXPECT_NE(inspection_json(inspection).find("\"angle_to_minus_identity_deg\""), std::string::npos);
}

TEST(Inspect, ReadsASavedCheckpoint) {
  RunConfig config = small_config();
  resolve_and_validate(config);
  const PointTask task(config.task, config.model.dim);
  Transformer<float> model(config.model, point_sequence(task));
  model.initialize(9);
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("attnrank_inspect_" + std::to_string(::getpid())))
          .string();
  std::filesystem::create_directories(dir);
  save_checkpoint(dir + "/model.safetensors", model, config);
  { std::ofstream(dir + "/config.yaml") << to_yaml(config); }
  const ModelInspection from_disk = inspect_checkpoint(dir);
  const ModelInspection in_memory = inspect_model(model);
  ASSERT_EQ(from_disk.heads.size(), in_memory.heads.size());
  for (size_t i = 0; i < in_memory.heads.size(); ++i)
    EXPECT_DOUBLE_EQ(from_disk.heads[i].frobenius, in_memory.heads[i].frobenius);
  std::filesystem::remove_all(dir);
}
