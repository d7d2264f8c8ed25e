// Run configuration: the `model`, `task` and `train` sections of a config file.
// Plain data that nn, tasks and train read; parsing and writing them is
// config/config_io.h. Defaults are the published setup (docs/model.md). A value of 0 for `rank` and
// `value_rank` means "derived" (rank = width / heads, value_rank = rank); the
// resolved config always holds the derived numbers.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "attnrank/config/choices.h"

namespace attnrank {

struct ModelConfig {
  int dim = 64;              // d: token width
  int heads = 1;             // H: heads per attention module
  int rank = 0;              // r: query/key width per head (0: (d + concat p) / H)
  int value_rank = 0;        // r_v: value width per head (0: r)
  int width_multiplier = 1;  // c: parallel attention modules per layer, outputs averaged
  int layers = 1;            // L
  int ffn = 2048;            // MLP hidden width; 0 removes the MLP
  Norm norm = Norm::kSphere;
  bool norm_first = false;  // false: post-norm (published); true: pre-norm + final norm
  bool bias = true;         // biases in attention projections and MLP
  Positional positional = Positional::kNone;
  int positional_dim = 64;  // p: extra dims for concat positional encodings
  bool residual = true;
  HeadSize head_size = HeadSize::kStandard;  // what an auto rank is
  bool tie_embeddings = true;  // text tasks: output layer = token embedding (transposed)
  double embed_std = 1.0;      // text tasks: token embedding init N(0, s^2) (1: PyTorch)
  // Every layer starts as a copy of layer 0 (nn.TransformerEncoder deep-copies one layer).
  bool identical_layers = false;
  PositionalInit positional_init = PositionalInit::kNormal;

  // Width the layers operate on: d, plus p with concatenated positional encodings.
  int width() const { return dim + (positional == Positional::kConcat ? positional_dim : 0); }

  bool operator==(const ModelConfig&) const = default;
};

struct TaskConfig {
  TaskKind name = TaskKind::kFarthest;
  int points = 16;  // N
  int queries = 1;  // nearest: query tokens appended after the points
  PointDistribution distribution = PointDistribution::kUniform;
  std::string corpus = "fortunes";  // lm, mlm: the text (a Debian package's files)
  int length = 64;                  // lm, mlm: tokens (bytes) per sequence
  double mask_rate = 0.15;          // mlm: fraction of positions masked and scored
  int features = 8;                 // icl-linear: m, the dimension of x and w
  int examples = 16;                // icl-linear: k, in-context examples before the query
  double noise = 0.0;               // icl-linear: standard deviation of the label noise

  bool operator==(const TaskConfig&) const = default;
};

// How often a run saves its whole training state (train_state.safetensors in its
// directory) so that a killed run resumes where it was: every `steps` steps when
// steps > 0, else every `seconds` of wall-clock time when seconds > 0, else only
// when stopped (SIGTERM, SIGINT). Written as "500" (steps), "90s", "10min", "2h"
// or "off".
struct CheckpointInterval {
  int64_t steps = 0;
  double seconds = 600;

  bool operator==(const CheckpointInterval&) const = default;
};

struct TrainConfig {
  int64_t steps = 100000;
  int batch = 256;
  double lr = 0.01;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double warmup = 0.05;  // fraction of steps with linear warm-up
  double min_lr = 0.0;   // cosine decay ends here
  double clip = 0.0;     // max global gradient norm; 0 disables clipping
  uint64_t seed = 0;
  int64_t init_seed = -1;  // seed of the initialisation; -1: train.seed
  DataMode data = DataMode::kFresh;
  int epoch_batches = 100;  // replay: batches per epoch; also the epoch of best_epoch loss
  int threads = 0;          // 0: all cores
  int eval_batches = 16;
  int log_every = 100;
  CheckpointInterval checkpoint_every;  // never changes what a run computes
  // Steps between held-out evaluations on the validation set, written as
  // validation_* columns of metrics.csv (a multiple of log_every); 0: none.
  int eval_every = 0;
  bool tensorboard = false;  // also write TensorBoard scalars (events.out.tfevents.*)

  // The seed the model's initialisation draws from.
  uint64_t model_seed() const { return init_seed >= 0 ? static_cast<uint64_t>(init_seed) : seed; }

  bool operator==(const TrainConfig&) const = default;
};

struct RunConfig {
  ModelConfig model;
  TaskConfig task;
  TrainConfig train;

  bool operator==(const RunConfig&) const = default;
};

}  // namespace attnrank
