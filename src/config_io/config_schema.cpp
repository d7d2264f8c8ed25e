// The key table. Defaults live in the structs (include/attnrank/config.h); rows
// only say how to read, check and describe each field.
#include "config_schema.h"

#include <algorithm>

namespace attnrank::config_schema {

namespace {

Bounds at_least(double min, bool open = false) {
  Bounds bounds;
  bounds.min = min;
  bounds.min_open = open;
  return bounds;
}

Bounds within(double min, double max, bool max_open) {
  Bounds bounds = at_least(min);
  bounds.max = max;
  bounds.max_open = max_open;
  return bounds;
}

const Bounds kAtLeastOne = at_least(1);
const Bounds kNonNegative = at_least(0);
const Bounds kPositive = at_least(0, /*open=*/true);
const Bounds kUnbounded{};

Bounds fraction_above_zero() {  // (0, 1]
  Bounds bounds = within(0, 1, /*max_open=*/false);
  bounds.min_open = true;
  return bounds;
}

std::vector<KeySpec> build_specs() {
  // clang-format off
  return {
    // model
    {"model", "dim", IntegerValue<int>{[](RunConfig& c) -> int& { return c.model.dim; }},
     kAtLeastOne, "d: token width inside the model; point tasks: points lie on the unit "
                  "sphere S^(d-1)"},
    {"model", "heads", IntegerValue<int>{[](RunConfig& c) -> int& { return c.model.heads; }},
     kAtLeastOne, "H: heads per attention module"},
    {"model", "rank", RankValue{[](RunConfig& c) -> int& { return c.model.rank; }},
     kAtLeastOne, "r: query/key width per head; auto: as model.head_size says"},
    {"model", "value_rank", RankValue{[](RunConfig& c) -> int& { return c.model.value_rank; }},
     kAtLeastOne, "r_v: value width per head; auto: rank"},
    {"model", "width_multiplier",
     IntegerValue<int>{[](RunConfig& c) -> int& { return c.model.width_multiplier; }},
     kAtLeastOne, "c: parallel attention modules per layer, outputs averaged"},
    {"model", "layers", IntegerValue<int>{[](RunConfig& c) -> int& { return c.model.layers; }},
     kAtLeastOne, "L: encoder layers"},
    {"model", "ffn", IntegerValue<int>{[](RunConfig& c) -> int& { return c.model.ffn; }},
     kNonNegative, "hidden width of the ReLU MLP in each layer; 0 removes the MLP"},
    {"model", "norm",
     EnumValue<Norm>{[](RunConfig& c) -> Norm& { return c.model.norm; }},
     kUnbounded, "sphere: s * x / ||x|| with one learnable scalar s; layer: LayerNorm; none"},
    {"model", "norm_first", BoolValue{[](RunConfig& c) -> bool& { return c.model.norm_first; }},
     kUnbounded, "false: post-norm (published); true: pre-norm plus a final norm"},
    {"model", "bias", BoolValue{[](RunConfig& c) -> bool& { return c.model.bias; }},
     kUnbounded, "biases in the attention projections and the MLP"},
    {"model", "positional",
     EnumValue<Positional>{[](RunConfig& c) -> Positional& { return c.model.positional; }},
     kUnbounded, "none; additive: learned (N, d) added to the tokens; concat: learned "
                 "positional_dim extra dims appended to each token"},
    {"model", "positional_dim",
     IntegerValue<int>{[](RunConfig& c) -> int& { return c.model.positional_dim; }},
     kUnbounded, "p: extra dims with positional = concat (they count towards the rank); "
                 ">= 1 when used"},
    {"model", "residual", BoolValue{[](RunConfig& c) -> bool& { return c.model.residual; }},
     kUnbounded, "residual connections around attention and MLP"},
    {"model", "head_size",
     EnumValue<HeadSize>{[](RunConfig& c) -> HeadSize& { return c.model.head_size; }},
     kUnbounded, "what an auto rank is: standard: model width / heads (must divide); fixed: "
                 "the task's sequence length, whatever the heads and width (Bhojanapalli et al.)"},
    {"model", "tie_embeddings",
     BoolValue{[](RunConfig& c) -> bool& { return c.model.tie_embeddings; }},
     kUnbounded, "lm, mlm: the output layer's weight is the token embedding (transposed)"},
    {"model", "embed_std", FloatValue{[](RunConfig& c) -> double& { return c.model.embed_std; }},
     kPositive,
     "lm, mlm: standard deviation of the token embedding's normal initialisation (1: "
     "PyTorch's nn.Embedding; 0.02: GPT-2/BERT)"},
    {"model", "identical_layers",
     BoolValue{[](RunConfig& c) -> bool& { return c.model.identical_layers; }},
     kUnbounded, "every layer starts as a copy of layer 0 (the authors' nn.TransformerEncoder "
                 "deep-copies one layer); false: each layer drawn independently"},
    {"model", "positional_init",
     EnumValue<PositionalInit>{[](RunConfig& c) -> PositionalInit& { return c.model.positional_init; }},
     kUnbounded, "learned positional tables: normal: N(0, 1/columns); uniform: U(-1, 1) (the "
                 "authors' encoders.py)"},

    // task
    {"task", "name",
     EnumValue<TaskKind>{[](RunConfig& c) -> TaskKind& { return c.task.name; }},
     kUnbounded, "farthest: each token's target is the farthest point of its set; nearest: "
                 "each query token's target is its nearest point; lm: next-byte prediction on "
                 "real text (causal); mlm: masked bytes (BERT, bidirectional); icl-linear: "
                 "in-context linear regression (causal)"},
    {"task", "points", IntegerValue<int>{[](RunConfig& c) -> int& { return c.task.points; }},
     kAtLeastOne, "N: points per set; >= 2 for farthest"},
    {"task", "queries", IntegerValue<int>{[](RunConfig& c) -> int& { return c.task.queries; }},
     kAtLeastOne, "nearest: query tokens appended after the points"},
    {"task", "distribution",
     EnumValue<PointDistribution>{[](RunConfig& c) -> PointDistribution& { return c.task.distribution; }},
     kUnbounded, "uniform: iid on the sphere; orthogonal: a random orthonormal set "
                 "(needs points <= dim)"},
    {"task", "corpus",
     ChoiceValue{[](RunConfig& c) -> std::string& { return c.task.corpus; }, {"fortunes"}},
     kUnbounded, "lm, mlm: the text; fortunes: the Debian package's fortune files"},
    {"task", "length", IntegerValue<int>{[](RunConfig& c) -> int& { return c.task.length; }},
     kAtLeastOne, "lm, mlm: bytes per sequence (the model's sequence length)"},
    {"task", "mask_rate", FloatValue{[](RunConfig& c) -> double& { return c.task.mask_rate; }},
     fraction_above_zero(), "mlm: fraction of positions selected, scored and (80%) masked"},
    {"task", "features",
     IntegerValue<int>{[](RunConfig& c) -> int& { return c.task.features; }}, kAtLeastOne,
     "icl-linear: m, dimension of x and of the weight vector w"},
    {"task", "examples",
     IntegerValue<int>{[](RunConfig& c) -> int& { return c.task.examples; }}, kAtLeastOne,
     "icl-linear: k, in-context (x, y) pairs before the query x"},
    {"task", "noise", FloatValue{[](RunConfig& c) -> double& { return c.task.noise; }},
     kNonNegative, "icl-linear: standard deviation of the noise added to y = w.x"},

    // train
    {"train", "steps",
     IntegerValue<int64_t>{[](RunConfig& c) -> int64_t& { return c.train.steps; }},
     kAtLeastOne, "optimiser steps, one batch each (see train.data)"},
    {"train", "batch", IntegerValue<int>{[](RunConfig& c) -> int& { return c.train.batch; }},
     kAtLeastOne, "sets per batch"},
    {"train", "lr", FloatValue{[](RunConfig& c) -> double& { return c.train.lr; }},
     kPositive, "peak AdamW learning rate"},
    {"train", "betas",
     FloatPairValue{[](RunConfig& c) -> double& { return c.train.beta1; },
                    [](RunConfig& c) -> double& { return c.train.beta2; }, "beta1", "beta2"},
     within(0, 1, /*max_open=*/true), "AdamW [beta1, beta2]"},
    {"train", "eps", FloatValue{[](RunConfig& c) -> double& { return c.train.eps; }},
     kPositive, "AdamW epsilon"},
    {"train", "weight_decay",
     FloatValue{[](RunConfig& c) -> double& { return c.train.weight_decay; }},
     kNonNegative, "AdamW decoupled weight decay"},
    {"train", "warmup", FloatValue{[](RunConfig& c) -> double& { return c.train.warmup; }},
     within(0, 1, /*max_open=*/false), "fraction of steps with linear warm-up before the cosine decay"},
    {"train", "min_lr", FloatValue{[](RunConfig& c) -> double& { return c.train.min_lr; }},
     kNonNegative, "learning rate at the end of the cosine decay; <= lr"},
    {"train", "clip", FloatValue{[](RunConfig& c) -> double& { return c.train.clip; }},
     kNonNegative, "max global gradient norm; 0 disables clipping"},
    {"train", "seed",
     IntegerValue<uint64_t>{[](RunConfig& c) -> uint64_t& { return c.train.seed; }},
     kUnbounded, "seed of the data (and of the initialisation unless train.init_seed is set; "
                 "non-negative 64-bit integer)"},
    {"train", "init_seed",
     IntegerValue<int64_t>{[](RunConfig& c) -> int64_t& { return c.train.init_seed; }},
     at_least(-1), "seed of the model's initialisation; -1: train.seed (the authors fix it "
                   "at 613 and vary only the data seed)"},
    {"train", "data",
     EnumValue<DataMode>{[](RunConfig& c) -> DataMode& { return c.train.data; }},
     kUnbounded, "fresh: a new batch every step; replay: the same epoch_batches batches "
                 "every epoch (the authors' data loader)"},
    {"train", "epoch_batches",
     IntegerValue<int>{[](RunConfig& c) -> int& { return c.train.epoch_batches; }},
     kAtLeastOne, "steps per epoch: replay repeats this many batches; with replay, "
                  "summary.json has train_best_epoch_loss, the lowest epoch-mean training loss"},
    {"train", "threads", IntegerValue<int>{[](RunConfig& c) -> int& { return c.train.threads; }},
     kNonNegative, "worker threads; 0: every CPU this process may use (its affinity mask, capped by a "
     "cgroup CPU quota; one thread for steps under 20 MFLOP); at most 64"},
    {"train", "eval_batches",
     IntegerValue<int>{[](RunConfig& c) -> int& { return c.train.eval_batches; }},
     kAtLeastOne, "test batches for the final test MSE"},
    {"train", "log_every",
     IntegerValue<int>{[](RunConfig& c) -> int& { return c.train.log_every; }},
     kAtLeastOne, "steps between metrics rows"},
    {"train", "checkpoint_every",
     IntervalValue{[](RunConfig& c) -> CheckpointInterval& { return c.train.checkpoint_every; }},
     kUnbounded, "how often the whole training state is saved, so that a killed run resumes "
     "where it was: steps (500), wall-clock time (90s, 10min, 2h) or off; a stop (SIGTERM, "
     "SIGINT) always saves. Never changes results"},
    {"train", "eval_every",
     IntegerValue<int>{[](RunConfig& c) -> int& { return c.train.eval_every; }},
     kNonNegative, "steps between held-out evaluations on the validation set (validation_* "
     "columns of metrics.csv); a multiple of log_every; 0: none"},
    {"train", "tensorboard", BoolValue{[](RunConfig& c) -> bool& { return c.train.tensorboard; }},
     kUnbounded, "also write the metrics rows as TensorBoard scalars (events.out.tfevents.*)"},
  };
  // clang-format on
}

}  // namespace

const std::vector<KeySpec>& key_specs() {
  static const std::vector<KeySpec> specs = build_specs();
  return specs;
}

const std::vector<std::string>& section_names() {
  static const std::vector<std::string> names = {"model", "task", "train"};
  return names;
}

const KeySpec* find_key(std::string_view dotted_key) {
  const auto& specs = key_specs();
  const auto it = std::find_if(specs.begin(), specs.end(),
                               [&](const KeySpec& spec) { return spec.key() == dotted_key; });
  return it == specs.end() ? nullptr : &*it;
}

}  // namespace attnrank::config_schema
