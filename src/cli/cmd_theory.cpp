// attnrank theory NAME [options] --out DIR: the executable theory (docs/theory.md).
#include <iostream>
#include <memory>

#include "attnrank/theory/reports.h"
#include "commands.h"

namespace attnrank::cli {

namespace {

CLI::App* add_experiment(CLI::App& theory, const std::string& name, const std::string& help,
                         std::shared_ptr<std::string> out_dir) {
  CLI::App* cmd = theory.add_subcommand(name, help);
  cmd->add_option("--out", *out_dir, "Output directory (created)")->required();
  return cmd;
}

void add_fact1(CLI::App& theory) {
  auto o = std::make_shared<Fact1Options>();
  auto out = std::make_shared<std::string>();
  CLI::App* cmd = add_experiment(
      theory, "fact1", "Fact 1: full-rank head W_Q W_K^T = +-beta I, test MSE against beta", out);
  cmd->add_option("--dims", o->dims, "Dimensions d")->delimiter(',')->capture_default_str();
  cmd->add_option("--points", o->points, "Point counts N")->delimiter(',')->capture_default_str();
  cmd->add_option("--betas", o->betas, "Values of beta")->delimiter(',')->capture_default_str();
  cmd->add_option("--samples", o->samples, "Test samples per point")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Data seed")->capture_default_str();
  cmd->callback([o, out] { run_fact1(*o, *out, std::cout); });
}

void add_random_features(CLI::App& theory) {
  auto o = std::make_shared<RandomFeaturesOptions>();
  auto out = std::make_shared<std::string>();
  CLI::App* cmd = add_experiment(
      theory, "random-features",
      "Optimal MSE of H random rank-1 hard-attention heads on the N = 2 nearest target", out);
  cmd->add_option("--dims", o->dims, "Dimensions d")->delimiter(',')->capture_default_str();
  cmd->add_option("--max-heads", o->max_heads, "Largest H (curve at powers of 2)")
      ->capture_default_str();
  cmd->add_option("--trials", o->trials, "Independent head draws per point")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Head seed")->capture_default_str();
  cmd->add_option("--directions", o->directions,
                  "independent | tied | authors | authors-normalised (docs/theory.md)")
      ->capture_default_str();
  cmd->add_option("--solver", o->solver, "auto | cholesky | cg")->capture_default_str();
  cmd->add_option("--memory-gb", o->memory_gb, "auto: Cholesky while H^2 doubles fit")
      ->capture_default_str();
  cmd->add_option("--tolerance", o->tolerance, "Bound on the Gegenbauer truncation error of b")
      ->capture_default_str();
  cmd->add_option("--cg-tolerance", o->cg_tolerance, "CG relative residual")->capture_default_str();
  cmd->add_option("--cg-max-iterations", o->cg_max_iterations, "CG iteration cap")
      ->capture_default_str();
  cmd->add_option("--check-heads", o->check_heads, "Monte-Carlo cross-check at this H (0: skip)")
      ->capture_default_str();
  cmd->add_option("--check-samples", o->check_samples, "Monte-Carlo samples")
      ->capture_default_str();
  cmd->callback([o, out] { run_random_features(*o, *out, std::cout); });
}

void add_gegenbauer(CLI::App& theory) {
  auto o = std::make_shared<GegenbauerOptions>();
  auto out = std::make_shared<std::string>();
  CLI::App* cmd = add_experiment(
      theory, "gegenbauer",
      "Gegenbauer coefficients on S^{d-1} and the spectrum of the N = 2 nearest target", out);
  cmd->add_option("--dims", o->dims, "Dimensions d")->delimiter(',')->capture_default_str();
  cmd->add_option("--max-degree", o->max_degree, "Highest degree K")->capture_default_str();
  cmd->add_option("--function", o->function, "sign | asin | relu | abs")->capture_default_str();
  cmd->callback([o, out] { run_gegenbauer(*o, *out, std::cout); });
}

void add_majority_vote(CLI::App& theory) {
  auto o = std::make_shared<MajorityVoteOptions>();
  auto out = std::make_shared<std::string>();
  CLI::App* cmd = add_experiment(
      theory, "majority-vote",
      "Two-layer majority vote of rank-1 heads for N = 2: error against heads and d", out);
  cmd->add_option("--dims", o->dims, "Dimensions d")->delimiter(',')->capture_default_str();
  cmd->add_option("--heads", o->heads, "Head counts H")->delimiter(',')->capture_default_str();
  cmd->add_option("--targets", o->targets, "Target MSEs for the heads-needed sweep")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--draws", o->draws, "Voter draws per point")->capture_default_str();
  cmd->add_option("--samples", o->samples, "Test samples per draw")->capture_default_str();
  cmd->add_option("--one-layer-max-heads", o->one_layer_max_heads,
                  "One-layer comparison up to this H (0: skip)")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed")->capture_default_str();
  cmd->callback([o, out] { run_majority_vote(*o, *out, std::cout); });
}

void add_bottleneck(CLI::App& theory) {
  auto o = std::make_shared<BottleneckOptions>();
  auto out = std::make_shared<std::string>();
  CLI::App* cmd = add_experiment(
      theory, "bottleneck",
      "Low-rank bottleneck: one head's best error against head size, exact d_p >= n head", out);
  cmd->add_option("--tokens", o->tokens, "Tokens n")->capture_default_str();
  cmd->add_option("--dim", o->dim, "Input width d (>= n)")->capture_default_str();
  cmd->add_option("--targets", o->targets, "Random targets P")->capture_default_str();
  cmd->add_option("--restarts", o->restarts, "Optimisation starts per fit")->capture_default_str();
  cmd->add_option("--iterations", o->iterations, "L-BFGS iterations per start")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed")->capture_default_str();
  cmd->callback([o, out] { run_bottleneck(*o, *out, std::cout); });
}

}  // namespace

void add_theory_command(CLI::App& app) {
  CLI::App* theory =
      app.add_subcommand("theory", "Executable theory: closed forms, constructions, figures");
  theory->require_subcommand(1);
  add_fact1(*theory);
  add_random_features(*theory);
  add_gegenbauer(*theory);
  add_majority_vote(*theory);
  add_bottleneck(*theory);
}

}  // namespace attnrank::cli
