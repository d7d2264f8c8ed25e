// attnrank inspect CHECKPOINT [--json FILE]: per-head analysis of W_Q W_K^T.
#include <fmt/core.h>

#include <algorithm>
#include <memory>

#include "attnrank/core/files.h"
#include "attnrank/theory/inspect.h"
#include "commands.h"

namespace attnrank::cli {

namespace {

struct InspectArgs {
  std::string checkpoint;
  std::string json_path;
  int singular_values = 4;
};

void print_table(const ModelInspection& inspection, int shown) {
  const ModelConfig& c = inspection.config;
  fmt::print(
      "model: d = {}, width D = {}, layers L = {}, heads H = {}, rank r = {}, "
      "value rank = {}, modules c = {}, positional = {}\n",
      c.dim, inspection.width, c.layers, c.heads, c.rank, c.value_rank, c.width_multiplier,
      name_of(c.positional));
  fmt::print("M = W_Q W_K^T per head (scores x^T M x' / sqrt(r)); angles in degrees\n");
  fmt::print(
      "pub.ang, pub.scale: the published measure, P = Q @ K.T of PyTorch's in_proj rows: "
      "angle of P to I and ||P||_F / sqrt(r)\n");
  fmt::print("{:>5} {:>6} {:>4} {:>11} {:>11} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10}  {}\n",
             "layer", "module", "head", "||M||_F", "beta", "ang(I)", "ang(-I)", "tok(I)",
             "eff.rank", "st.rank", "pub.ang", "pub.scale", "top singular values");
  for (const HeadInspection& h : inspection.heads) {
    std::string top;
    const int count = std::min<int>(shown, static_cast<int>(h.singular_values.size()));
    for (int k = 0; k < count; ++k)
      top += fmt::format("{}{:.4g}", k ? " " : "", h.singular_values[k]);
    fmt::print(
        "{:>5} {:>6} {:>4} {:>11.4g} {:>11.4g} {:>8.2f} {:>8.2f} {:>8.2f} {:>8.2f} {:>8.2f} "
        "{:>8.2f} {:>10.4g}  {}\n",
        h.layer, h.module, h.head, h.frobenius, h.beta, h.angle_to_identity,
        180.0 - h.angle_to_identity, h.angle_token_block, h.effective_rank, h.stable_rank,
        h.published_angle, h.published_scale, top);
  }
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto args = std::make_shared<InspectArgs>();
  CLI::App* cmd = app.add_subcommand(
      "inspect", "Per-head analysis of a checkpoint: singular values of W_Q W_K^T, angle to +-I");
  cmd->add_option("checkpoint", args->checkpoint, "Run directory (config.yaml + model.safetensors)")
      ->required();
  cmd->add_option("--json", args->json_path, "Also write the analysis as JSON here ('-': stdout)");
  cmd->add_option("--singular-values", args->singular_values, "Singular values shown per head")
      ->capture_default_str();
  cmd->callback([args] {
    const ModelInspection inspection = inspect_checkpoint(args->checkpoint);
    if (args->json_path == "-") {
      fmt::print("{}", inspection_json(inspection));
      return;
    }
    print_table(inspection, args->singular_values);
    if (!args->json_path.empty())
      write_file_atomically(args->json_path, inspection_json(inspection));
  });
}

}  // namespace attnrank::cli
