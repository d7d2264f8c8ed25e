// Agreement with PyTorch: tests/golden/*.safetensors hold inputs, weights, outputs
// and gradients computed by scripts/make_golden.py from torch.nn modules in float64
// (c nn.MultiheadAttention modules averaged, post/pre-norm, sphere/layer norm,
// positional encodings, masks). We load the same weights into our model and compare.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "attnrank/model.h"
#include "attnrank/optimizer.h"
#include "attnrank/safetensors.h"
#include "attnrank/tasks.h"

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
  TaskConfig task;
  int batch = 0;
};

GoldenCase read_case(const SafeTensorFile& file) {
  const auto json = nlohmann::json::parse(file.metadata.at("config"));
  const auto& model = json.at("model");
  const auto& task = json.at("task");
  GoldenCase c;
  c.model.dim = model.at("dim");
  c.model.heads = model.at("heads");
  c.model.rank = model.at("rank");
  c.model.value_rank = model.at("value_rank");
  c.model.width_multiplier = model.at("width_multiplier");
  c.model.layers = model.at("layers");
  c.model.ffn = model.at("ffn");
  c.model.norm = model.at("norm");
  c.model.norm_first = model.at("norm_first");
  c.model.bias = model.at("bias");
  c.model.positional = model.at("positional");
  c.model.positional_dim = model.at("positional_dim");
  c.model.residual = model.at("residual");
  c.task.name = task.at("name");
  c.task.points = task.at("points");
  c.task.queries = task.value("queries", 1);
  c.batch = json.at("batch");
  return c;
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
  const PointTask task(c.task, c.model.dim);
  Transformer<T> model(c.model, task.sequence());
  for (const TensorInfo& tensor : model.layout().tensors()) {
    const SafeTensor& golden = file.at(tensor.name);
    ASSERT_EQ(golden.shape, tensor.shape) << tensor.name;
    const std::vector<double> values = golden.to_double();
    std::transform(values.begin(), values.end(), model.parameters().begin() + tensor.offset,
                   [](double v) { return static_cast<T>(v); });
  }
  const std::vector<double> input = file.at("input").to_double();
  const std::vector<double> target = file.at("target").to_double();
  std::vector<T> x(input.begin(), input.end()), y(input.size()), d_y(input.size()),
      d_x(input.size()), t(target.begin(), target.end());
  model.forward(x.data(), c.batch, y.data());
  expect_close(path.filename().string() + " output", y.data(), file.at("output").to_double(),
               tolerance);
  const double loss = squared_error_loss(y.data(), t.data(), c.batch, task.tokens(), c.model.dim,
                                         task.loss_begin(), task.loss_end(), d_y.data());
  const std::vector<T> ours_loss{static_cast<T>(loss)};
  expect_close(path.filename().string() + " loss", ours_loss.data(), file.at("loss").to_double(),
               tolerance);
  model.backward(d_y.data(), d_x.data());
  expect_close(path.filename().string() + " grad.input", d_x.data(),
               file.at("grad.input").to_double(), tolerance);
  for (const TensorInfo& tensor : model.layout().tensors())
    expect_close(path.filename().string() + " grad." + tensor.name,
                 model.gradients().data() + tensor.offset,
                 file.at("grad." + tensor.name).to_double(), tolerance);
}

}  // namespace

TEST(Golden, FilesArePresent) {
  EXPECT_GE(model_golden_files().size(), 7u);
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
