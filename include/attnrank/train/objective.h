// A task as the training loop sees it: the model's input and output stages, one
// training batch, the loss and its gradient, and the held-out evaluation after
// training. The data itself comes from the task modules (point_task, text_task,
// icl_linear), which know nothing of models; objectives connect them to one.
#pragma once
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "attnrank/config/run_config.h"
#include "attnrank/nn/model.h"
#include "attnrank/tasks/point_task.h"

namespace attnrank {

// One batch of sequences; only the fields the objective's stages use are filled.
struct Batch {
  int size = 0;                 // B: sequences
  std::vector<float> inputs;    // vector or linear input: (B, N, input width)
  std::vector<int32_t> tokens;  // token input: (B, N)
  std::vector<float> targets;   // regression targets: (B, N, output width)
  std::vector<int32_t> labels;  // class labels: (B, N), -1 where not scored
};

// What an evaluation produced: metrics by name in reporting order (names start with
// "test_" or "validation_"; the first is the headline) and extra files for the run
// directory (file name -> contents, e.g. a CSV of a curve).
struct Evaluation {
  std::vector<std::pair<std::string, double>> metrics;
  std::vector<std::pair<std::string, std::string>> files;
  double metric(const std::string& name) const;  // NaN when absent
};

// The model's side of a point task: its N (+ queries) tokens, and for `nearest`
// the prefix mask that lets only the N points be attended to.
SequenceSpec point_sequence(const PointTask& task);

class Objective {
 public:
  virtual ~Objective() = default;

  // Sequence length, mask and the model's input and output stages.
  virtual SequenceSpec sequence() const = 0;
  // Loss of the trivial predictor (0 for regression, uniform for classification).
  virtual double trivial_loss() const = 0;
  // Whether the loss is a squared error (reported as test_mse and trivial_mse).
  virtual bool squared_error() const = 0;

  // Training batch `index` of `seed`, the same whatever the thread count; `batch`
  // holds `sequences` sequences afterwards (buffers are reused).
  virtual void training_batch(uint64_t seed, uint64_t index, int sequences, Batch& batch) const = 0;
  // Mean loss of `outputs` (B, N, output width) on `batch`; d_outputs, when
  // non-null, receives its gradient.
  virtual double loss(const Batch& batch, const float* outputs, float* d_outputs) const = 0;
  // Held-out metrics of a trained model (`batches` test batches of `sequences`
  // where the task samples its test set; text tasks read their whole held-out splits).
  virtual Evaluation evaluate(Transformer<float>& model, uint64_t seed, int batches,
                              int sequences) const = 0;

  // The metrics evaluated during training (train.eval_every), in the order
  // validate() returns them; every name starts with "validation_".
  virtual std::vector<std::string> validation_names() const = 0;
  // Those metrics of `model` on the validation set of `seed`: a fixed held-out set,
  // a pure function of the seed, disjoint from the training batches and from the
  // final test set (point and icl tasks: `batches` batches of Stream::kValidation;
  // text: the whole validation split).
  virtual std::vector<double> validate(Transformer<float>& model, uint64_t seed, int batches,
                                       int sequences) const = 0;
};

// The objective of `config.task` (resolved). Throws ConfigError for an unusable
// task (e.g. a missing corpus).
std::unique_ptr<Objective> make_objective(const RunConfig& config);

// The training-stream index of step `step` (0-based): the step itself with fresh
// data; step mod train.epoch_batches with replayed data, so every epoch sees the
// same batches in the same order (the authors' re-seeded loader, docs/fidelity.md).
uint64_t training_batch_index(const TrainConfig& train, int64_t step);

// The lowest epoch-mean training loss over the complete epochs of `epoch_steps`
// steps seen so far (the authors' reported statistic: analysis.py takes the
// minimum of Lightning's per-epoch train_loss). Fed one step's loss at a time.
class BestEpochLoss {
 public:
  explicit BestEpochLoss(int epoch_steps) : epoch_steps_(epoch_steps) {}
  void add(double loss);
  double best() const { return best_; }  // NaN before the first complete epoch
  int64_t epochs() const { return epochs_; }
  // Its state in a checkpoint's loop values (names best_epoch.*), and back; a
  // checkpoint without them (written before this existed) leaves it fresh.
  void save(std::map<std::string, double>& loop) const;
  void restore(const std::map<std::string, double>& loop);

 private:
  int epoch_steps_;
  int in_epoch_ = 0;
  double sum_ = 0.0;
  double best_ = NAN;
  int64_t epochs_ = 0;
};

// Runs the model's forward pass on the batch's inputs or tokens.
void forward_batch(Transformer<float>& model, const Batch& batch, float* outputs);

}  // namespace attnrank
