// Agreement with PyTorch: tests/golden/*.safetensors hold inputs, weights, outputs
// and gradients computed by scripts/make_golden.py from torch.nn modules in float64
// (c nn.MultiheadAttention modules averaged, post/pre-norm, sphere/layer norm,
// positional encodings, masks; nn.Embedding, nn.Linear read-in/read-out, tied output
// layers, causal masks, F.cross_entropy with ignored positions). We load the same
// weights into our model and compare.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "attnrank/core/safetensors.h"
#include "attnrank/nn/layers.h"
#include "attnrank/nn/model.h"
#include "attnrank/tasks/point_task.h"
#include "attnrank/train/objective.h"
#include "attnrank/train/optimizer.h"

using namespace attnrank;
namespace fs = std::filesystem;

namespace {

const fs::path kGoldenDir = fs::path(ATTNRANK_SOURCE_DIR) / "tests" / "golden";

std::vector<fs::path> model_golden_files() {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(kGoldenDir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("golden_", 0) == 0 && name != "golden_adamw.safetensors" &&
        entry.path().extension() == ".safetensors")
      files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

struct GoldenCase {
  ModelConfig model;
  SequenceSpec sequence;
  std::string loss;  // squared_error (point tasks) | cross_entropy | weighted_squared_error
  int loss_begin = 0, loss_end = 0;  // squared_error: scored tokens
  int batch = 0;
};

// Sequence files describe the model's stages in an "io" object.
SequenceSpec sequence_of(const nlohmann::json& io) {
  SequenceSpec s;
  s.tokens = io.at("tokens");
  s.mask = io.at("mask") == "causal" ? AttentionMask::kCausal : AttentionMask::kFull;
  const std::string input = io.at("input");
  s.input = input == "tokens" ? InputKind::kTokens : InputKind::kLinear;
  s.input_width = io.at("input_width");
  s.output = OutputKind::kLinear;
  s.output_width = io.at("output_width");
  return s;
}

GoldenCase read_case(const SafeTensorFile& file) {
  const auto json = nlohmann::json::parse(file.metadata.at("config"));
  const auto& model = json.at("model");
  GoldenCase c;
  c.model.dim = model.at("dim");
  c.model.heads = model.at("heads");
  c.model.rank = model.at("rank");
  c.model.value_rank = model.at("value_rank");
  c.model.width_multiplier = model.at("width_multiplier");
  c.model.layers = model.at("layers");
  c.model.ffn = model.at("ffn");
  c.model.norm = *choice_from_name<Norm>(model.at("norm").get<std::string>());
  c.model.norm_first = model.at("norm_first");
  c.model.bias = model.at("bias");
  c.model.positional = *choice_from_name<Positional>(model.at("positional").get<std::string>());
  c.model.positional_dim = model.at("positional_dim");
  c.model.residual = model.at("residual");
  c.model.tie_embeddings = model.value("tie_embeddings", true);
  c.batch = json.at("batch");
  if (json.contains("io")) {
    c.sequence = sequence_of(json.at("io"));
    c.loss = json.at("io").at("loss");
    return c;
  }
  const auto& task = json.at("task");
  TaskConfig task_config;
  task_config.name = *choice_from_name<TaskKind>(task.at("name").get<std::string>());
  task_config.points = task.at("points");
  task_config.queries = task.value("queries", 1);
  const PointTask point_task(task_config, c.model.dim);
  c.sequence = point_sequence(point_task);
  c.loss = "squared_error";
  c.loss_begin = point_task.loss_begin();
  c.loss_end = point_task.loss_end();
  return c;
}

std::vector<int32_t> as_ids(const std::vector<double>& values) {
  return std::vector<int32_t>(values.begin(), values.end());
}

// |ours - theirs| <= tolerance * max(|theirs|, 1e-2 * max|theirs|), elementwise.
template <typename T>
void expect_close(const std::string& what, const T* ours, const std::vector<double>& theirs,
                  double tolerance) {
  double largest = 0;
  for (double v : theirs) largest = std::max(largest, std::abs(v));
  for (size_t i = 0; i < theirs.size(); ++i) {
    const double scale = std::max(std::abs(theirs[i]), 1e-2 * largest);
    ASSERT_LE(std::abs(double(ours[i]) - theirs[i]), tolerance * scale + 1e-30)
        << what << " index " << i << ": ours " << ours[i] << ", PyTorch " << theirs[i];
  }
}

template <typename T>
void check_against_pytorch(const fs::path& path, double tolerance) {
  const SafeTensorFile file = read_safetensors(path.string());
  const GoldenCase c = read_case(file);
  const std::string name = path.filename().string();
  Transformer<T> model(c.model, c.sequence);
  for (const TensorInfo& tensor : model.layout().tensors()) {
    const SafeTensor& golden = file.at(tensor.name);
    ASSERT_EQ(golden.shape, tensor.shape) << tensor.name;
    const std::vector<double> values = golden.to_double();
    std::transform(values.begin(), values.end(), model.parameters().begin() + tensor.offset,
                   [](double v) { return static_cast<T>(v); });
  }
  const bool tokens_in = c.sequence.input == InputKind::kTokens;
  const std::vector<double> input = file.at("input").to_double();
  const std::vector<T> x(input.begin(), input.end());
  const std::vector<int32_t> ids = tokens_in ? as_ids(input) : std::vector<int32_t>();
  const size_t outputs = static_cast<size_t>(c.batch) * c.sequence.tokens * model.output_width();
  std::vector<T> y(outputs), d_y(outputs), d_x(x.size());
  if (tokens_in) {
    model.forward_tokens(ids.data(), c.batch, y.data());
  } else {
    model.forward(x.data(), c.batch, y.data());
  }
  expect_close(name + " output", y.data(), file.at("output").to_double(), tolerance);

  double loss = 0.0;
  if (c.loss == "cross_entropy") {
    const std::vector<int32_t> labels = as_ids(file.at("labels").to_double());
    loss = cross_entropy(y.data(), labels.data(), c.batch * c.sequence.tokens, model.output_width(),
                         d_y.data())
               .mean();
  } else if (c.loss == "weighted_squared_error") {
    const std::vector<double> target = file.at("target").to_double();
    const std::vector<double> weights = file.at("loss_weights").to_double();
    for (size_t i = 0; i < outputs; ++i) {
      const double diff = double(y[i]) - target[i];
      loss += weights[i] * diff * diff;
      d_y[i] = static_cast<T>(2.0 * weights[i] * diff);
    }
  } else {
    const std::vector<double> target = file.at("target").to_double();
    const std::vector<T> t(target.begin(), target.end());
    loss = squared_error_loss(y.data(), t.data(), c.batch, c.sequence.tokens, c.model.dim,
                              c.loss_begin, c.loss_end, d_y.data());
  }
  const std::vector<T> ours_loss{static_cast<T>(loss)};
  expect_close(name + " loss", ours_loss.data(), file.at("loss").to_double(), tolerance);
  model.backward(d_y.data(), tokens_in ? nullptr : d_x.data());
  if (!tokens_in)
    expect_close(name + " grad.input", d_x.data(), file.at("grad.input").to_double(), tolerance);
  for (const TensorInfo& tensor : model.layout().tensors())
    expect_close(name + " grad." + tensor.name, model.gradients().data() + tensor.offset,
                 file.at("grad." + tensor.name).to_double(), tolerance);
  // Every tensor of the file is a parameter, its gradient, or a known input.
  size_t known = 2 * model.layout().tensors().size();
  for (const char* extra :
       {"input", "output", "loss", "target", "labels", "loss_weights", "grad.input"})
    known += file.tensors.count(extra);
  EXPECT_EQ(file.tensors.size(), known) << name;
}

}  // namespace

TEST(Golden, FilesArePresent) {
  EXPECT_GE(model_golden_files().size(), 11u);
}

TEST(Golden, Float64MatchesPyTorchTo1e5) {
  for (const fs::path& path : model_golden_files()) {
    SCOPED_TRACE(path.filename().string());
    check_against_pytorch<double>(path, 1e-5);
  }
}

TEST(Golden, Float32MatchesPyTorchToSinglePrecision) {
  for (const fs::path& path : model_golden_files()) {
    SCOPED_TRACE(path.filename().string());
    check_against_pytorch<float>(path, 2e-3);
  }
}

TEST(Golden, AdamWMatchesTorchOptimAdamW) {
  const SafeTensorFile file = read_safetensors((kGoldenDir / "golden_adamw.safetensors").string());
  ParameterLayout layout;
  const std::vector<std::string> names = {"weight", "bias", "scale"};
  for (const std::string& name : names)
    layout.add(name, file.at("initial." + name).shape, false, /*decay=*/name == "weight");
  TrainConfig config;
  config.beta1 = 0.9;
  config.beta2 = 0.95;
  config.eps = 1e-8;
  config.weight_decay = 0.1;
  AdamW<double> optimizer(layout, config);
  std::vector<double> parameters;
  for (const std::string& name : names) {
    const auto values = file.at("initial." + name).to_double();
    parameters.insert(parameters.end(), values.begin(), values.end());
  }
  for (int step = 1; step <= 5; ++step) {
    std::vector<double> gradients;
    for (const std::string& name : names) {
      const auto values = file.at("grad." + std::to_string(step) + "." + name).to_double();
      gradients.insert(gradients.end(), values.begin(), values.end());
    }
    optimizer.step(parameters, gradients, 0.01);
    for (const std::string& name : names) {
      const TensorInfo& info = layout.find(name);
      expect_close("after." + std::to_string(step) + "." + name, parameters.data() + info.offset,
                   file.at("after." + std::to_string(step) + "." + name).to_double(), 1e-12);
    }
  }
}
