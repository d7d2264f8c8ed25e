// attnrank.Model's engine side: a Transformer<float> with its task objective, run
// on numpy arrays. Parameters and gradients are numpy views on the engine's
// arenas; forward and loss_and_grad release the GIL while the engine computes.
#include "attnrank/nn/model.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>

#include "attnrank/core/error.h"
#include "attnrank/core/threading.h"
#include "attnrank/train/checkpoint.h"
#include "attnrank/train/objective.h"
#include "attnrank/train/train.h"
#include "bindings.h"

namespace attnrank::python {

namespace {

namespace fs = std::filesystem;

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using IdArray = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;

const char* mask_name(AttentionMask mask) {
  switch (mask) {
    case AttentionMask::kFull:
      return "full";
    case AttentionMask::kPrefix:
      return "prefix";
    case AttentionMask::kCausal:
      return "causal";
  }
  return "?";
}

std::string shape_text(const py::array& array) {
  std::string text = "(";
  for (py::ssize_t axis = 0; axis < array.ndim(); ++axis)
    text += (axis ? ", " : "") + std::to_string(array.shape(axis));
  return text + (array.ndim() == 1 ? ",)" : ")");
}

[[noreturn]] void bad_array(const std::string& what) {
  throw py::value_error(what);
}

class NativeModel {
 public:
  NativeModel(RunConfig config, std::unique_ptr<Objective> objective,
              std::unique_ptr<Transformer<float>> model)
      : config_(std::move(config)), objective_(std::move(objective)), model_(std::move(model)) {
    // The thread rule of `attnrank train` and `eval` for this config.
    set_threads(
        run_threads(config_.train.threads,
                    training_step_flops(config_.model, model_->sequence(), config_.train.batch)));
  }

  static std::unique_ptr<NativeModel> create(const ConfigSource& source,
                                             std::optional<uint64_t> seed) {
    RunConfig config = load_run_config(source);
    std::unique_ptr<Objective> objective = make_objective(config);
    auto model = std::make_unique<Transformer<float>>(config.model, objective->sequence());
    model->initialize(seed.value_or(config.train.seed));
    return std::make_unique<NativeModel>(std::move(config), std::move(objective), std::move(model));
  }

  static std::unique_ptr<NativeModel> load(const std::string& run_dir) {
    try {
      LoadedRun run = load_run(run_dir);
      std::unique_ptr<Objective> objective = make_objective(run.config);
      return std::make_unique<NativeModel>(std::move(run.config), std::move(objective),
                                           std::move(run.model));
    } catch (const ConfigError& error) {
      const fs::path dir(run_dir);
      if (!fs::is_directory(dir) || !fs::exists(dir / "config.yaml") ||
          !fs::exists(dir / "model.safetensors"))
        raise_file_not_found(error.what());
      throw;
    }
  }

  const RunConfig& config() const { return config_; }
  Transformer<float>& model() { return *model_; }

  py::dict sequence() const {
    const SequenceSpec& s = model_->sequence();
    py::dict out;
    out["tokens"] = s.tokens;
    out["mask"] = mask_name(s.mask);
    out["key_limit"] = s.key_limit;
    out["input"] = s.input == InputKind::kVectors  ? "vectors"
                   : s.input == InputKind::kTokens ? "tokens"
                                                   : "linear";
    out["input_width"] = model_->input_width();
    out["output"] = s.output == OutputKind::kVectors ? "vectors" : "linear";
    out["output_width"] = model_->output_width();
    out["tied"] = model_->tied();
    return out;
  }

  // x as the engine's input: token ids (B, N) or values (B, N, input width).
  // Fills `batch` and returns B.
  int read_inputs(const py::array& x, Batch& batch) const {
    const SequenceSpec& s = model_->sequence();
    const int tokens = s.tokens;
    if (s.input == InputKind::kTokens) {
      if (x.dtype().kind() != 'i' && x.dtype().kind() != 'u')
        bad_array("x: this model reads token ids: an integer array (B, " + std::to_string(tokens) +
                  "), got dtype " + std::string(py::str(x.dtype())));
      if (x.ndim() != 2 || x.shape(1) != tokens || x.shape(0) < 1)
        bad_array("x: expected token ids of shape (B, " + std::to_string(tokens) + "), got " +
                  shape_text(x));
      // Range-check before narrowing to int32, so no id wraps into range.
      const py::array_t<int64_t, py::array::c_style | py::array::forcecast> wide(x);
      const int64_t* ids = wide.data();
      const int64_t vocabulary = s.input_width;
      for (py::ssize_t i = 0; i < wide.size(); ++i)
        if (ids[i] < 0 || ids[i] >= vocabulary)
          bad_array("x: token id " + std::to_string(ids[i]) + " outside [0, " +
                    std::to_string(vocabulary) + ")");
      batch.tokens.assign(ids, ids + wide.size());
    } else {
      const int width = model_->input_width();
      const char kind = x.dtype().kind();
      if (kind != 'f' && kind != 'i' && kind != 'u')
        bad_array("x: expected a real array, got dtype " + std::string(py::str(x.dtype())));
      if (x.ndim() != 3 || x.shape(1) != tokens || x.shape(2) != width || x.shape(0) < 1)
        bad_array("x: expected shape (B, " + std::to_string(tokens) + ", " + std::to_string(width) +
                  "), got " + shape_text(x));
      const FloatArray values(x);
      batch.inputs.assign(values.data(), values.data() + values.size());
    }
    batch.size = static_cast<int>(x.shape(0));
    return batch.size;
  }

  // y as the objective's targets: labels (B, N) for classification, values
  // (B, N, output width) for regression ((B, N) too when that width is 1).
  void read_targets(const py::array& y, Batch& batch) const {
    const SequenceSpec& s = model_->sequence();
    const int tokens = s.tokens;
    const int width = model_->output_width();
    const std::string rows = std::to_string(batch.size) + ", " + std::to_string(tokens);
    if (!objective_->squared_error()) {
      if (y.dtype().kind() != 'i' && y.dtype().kind() != 'u')
        bad_array("y: this model's loss takes class labels: an integer array (" + rows +
                  "), got dtype " + std::string(py::str(y.dtype())));
      if (y.ndim() != 2 || y.shape(0) != batch.size || y.shape(1) != tokens)
        bad_array("y: expected labels of shape (" + rows + "), got " + shape_text(y));
      const py::array_t<int64_t, py::array::c_style | py::array::forcecast> wide(y);
      const int64_t* labels = wide.data();
      for (py::ssize_t i = 0; i < wide.size(); ++i)
        if (labels[i] < -1 || labels[i] >= width)
          bad_array("y: label " + std::to_string(labels[i]) + " outside [0, " +
                    std::to_string(width) + ") (-1: not scored)");
      batch.labels.assign(labels, labels + wide.size());
      return;
    }
    const bool matches =
        (y.ndim() == 3 && y.shape(0) == batch.size && y.shape(1) == tokens &&
         y.shape(2) == width) ||
        (width == 1 && y.ndim() == 2 && y.shape(0) == batch.size && y.shape(1) == tokens);
    if (!matches)
      bad_array("y: expected targets of shape (" + rows + ", " + std::to_string(width) + "), got " +
                shape_text(y));
    const FloatArray values(y);
    batch.targets.assign(values.data(), values.data() + values.size());
  }

  // A numpy view on `count` floats of an engine arena, kept alive by `owner`.
  static py::array view(float* data, const std::vector<int64_t>& shape, py::handle owner,
                        bool writable) {
    std::vector<py::ssize_t> dims(shape.begin(), shape.end());
    py::array array(py::dtype::of<float>(), dims, {}, data, owner);
    if (!writable) array.attr("setflags")(py::arg("write") = false);
    return array;
  }

  py::dict tensors(py::handle owner, bool gradients) {
    py::dict out;
    for (const TensorInfo& tensor : model_->layout().tensors()) {
      float* base = gradients ? model_->gradients().data() : model_->parameters().data();
      out[py::str(tensor.name)] = view(base + tensor.offset, tensor.shape, owner, !gradients);
    }
    return out;
  }

  py::object forward(const py::array& x, bool return_attention) {
    Batch batch;
    const int size = read_inputs(x, batch);
    const SequenceSpec& s = model_->sequence();
    const int heads = config_.model.width_multiplier * config_.model.heads;
    py::array_t<float> outputs({size, s.tokens, model_->output_width()});
    std::vector<py::array_t<float>> attention;
    if (return_attention)
      for (int layer = 0; layer < config_.model.layers; ++layer)
        attention.emplace_back(std::vector<py::ssize_t>{size, heads, s.tokens, s.tokens});
    float* out = outputs.mutable_data();
    std::vector<float*> probs;
    for (auto& array : attention) probs.push_back(array.mutable_data());
    {
      py::gil_scoped_release release;
      const std::lock_guard<std::mutex> lock(mutex_);
      forward_batch(*model_, batch, out);
      for (size_t layer = 0; layer < probs.size(); ++layer)
        model_->attention_probabilities(static_cast<int>(layer), probs[layer]);
    }
    if (!return_attention) return outputs;
    return py::make_tuple(outputs, py::cast(attention));
  }

  py::tuple loss_and_grad(py::handle owner, const py::array& x, const py::array& y) {
    Batch batch;
    read_inputs(x, batch);
    read_targets(y, batch);
    const size_t outputs_size =
        static_cast<size_t>(batch.size) * model_->sequence().tokens * model_->output_width();
    double loss = 0.0;
    {
      py::gil_scoped_release release;
      const std::lock_guard<std::mutex> lock(mutex_);
      std::vector<float> outputs(outputs_size), d_outputs(outputs_size);
      forward_batch(*model_, batch, outputs.data());
      loss = objective_->loss(batch, outputs.data(), d_outputs.data());
      model_->backward(d_outputs.data());
    }
    return py::make_tuple(loss, tensors(owner, true));
  }

  py::tuple training_batch(int size, uint64_t index, std::optional<uint64_t> seed) const {
    if (size < 1) throw py::value_error("size: must be >= 1, got " + std::to_string(size));
    Batch batch;
    objective_->training_batch(seed.value_or(config_.train.seed), index, size, batch);
    const SequenceSpec& s = model_->sequence();
    py::object x, y;
    if (s.input == InputKind::kTokens)
      x = py::array_t<int32_t>({size, s.tokens}, batch.tokens.data());
    else
      x = py::array_t<float>({size, s.tokens, model_->input_width()}, batch.inputs.data());
    if (!objective_->squared_error())
      y = py::array_t<int32_t>({size, s.tokens}, batch.labels.data());
    else if (s.output == OutputKind::kVectors)
      y = py::array_t<float>({size, s.tokens, model_->output_width()}, batch.targets.data());
    else
      y = py::array_t<float>({size, s.tokens}, batch.targets.data());
    return py::make_tuple(x, y);
  }

  void save(const std::string& run_dir) {
    std::error_code error;
    fs::create_directories(run_dir, error);
    if (error)
      throw ConfigError("save: cannot create directory " + run_dir + ": " + error.message());
    const std::lock_guard<std::mutex> lock(mutex_);
    std::ofstream out(fs::path(run_dir) / "config.yaml", std::ios::trunc);
    out << to_yaml(config_);
    if (!out.flush()) throw ConfigError("save: cannot write " + run_dir + "/config.yaml");
    save_checkpoint((fs::path(run_dir) / "model.safetensors").string(), *model_, config_);
  }

 private:
  RunConfig config_;
  std::unique_ptr<Objective> objective_;
  std::unique_ptr<Transformer<float>> model_;
  std::mutex mutex_;  // one engine call at a time: forward and backward share buffers
};

}  // namespace

void bind_model(py::module_& module) {
  py::class_<NativeModel>(module, "Model")
      .def(py::init([](const std::string& source, bool is_path,
                       const std::vector<std::string>& overrides, std::optional<uint64_t> seed) {
             return NativeModel::create({source, is_path, overrides}, seed);
           }),
           py::arg("source"), py::arg("is_path"), py::arg("overrides"), py::arg("seed"))
      .def_static("load", &NativeModel::load, py::arg("run_dir"))
      .def_property_readonly("config",
                             [](const NativeModel& m) { return config_to_dict(m.config()); })
      .def_property_readonly("config_yaml",
                             [](const NativeModel& m) { return to_yaml(m.config()); })
      .def_property_readonly("sequence", &NativeModel::sequence)
      .def_property_readonly("parameter_count",
                             [](NativeModel& m) { return m.model().parameter_count(); })
      .def_property_readonly("attention_parameter_count",
                             [](NativeModel& m) { return m.model().attention_parameter_count(); })
      .def("parameters",
           [](py::object self) { return self.cast<NativeModel&>().tensors(self, false); })
      .def("gradients",
           [](py::object self) { return self.cast<NativeModel&>().tensors(self, true); })
      .def("forward", &NativeModel::forward, py::arg("x"), py::arg("return_attention"))
      .def(
          "loss_and_grad",
          [](py::object self, const py::array& x, const py::array& y) {
            return self.cast<NativeModel&>().loss_and_grad(self, x, y);
          },
          py::arg("x"), py::arg("y"))
      .def("training_batch", &NativeModel::training_batch, py::arg("size"), py::arg("index"),
           py::arg("seed"))
      .def("save", &NativeModel::save, py::arg("run_dir"));
}

}  // namespace attnrank::python
