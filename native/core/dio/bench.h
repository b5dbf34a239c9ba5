// The hypergradient benchmark of bench/hypergrad.ts (through the addon's dioBenchHypergrad): benchmark code, kept
// apart from the DIO trainer (dio/dio.h) it times.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "t5/config.h"

namespace instill::dio {

// Every case is timed `repeats` times, the cases interleaved round-robin (one run of each per round), after one
// warm-up round, so that load from other processes hits them alike. seconds: every run; ratios: each run over the
// same round's training step (side by side).
struct BenchCase {
  std::string name;  // "train_step", "grad", "hvp", "dio_step", "dio_outer:<spec>", or a hypergradient spec
  std::vector<double> seconds;
  std::vector<double> ratio_to_train_step;
  std::vector<double> ratio_to_grad;
  int64_t peak_bytes = 0;
  int64_t hvp_count = 0, grad_count = 0;
  int64_t iterations = 0;           // unroll steps / Neumann terms / CG iterations actually run
  bool negative_curvature = false;  // cg stopped early on negative curvature
};
struct BenchResult {
  std::vector<BenchCase> cases;
  int64_t parameters = 0;
  int threads = 0, interop_threads = 0;
  double matmul_gflops = 0;  // the machine's float32 matmul rate (512 x 512), measured before the cases
  bool stable = true;        // the medians settled within max_repeats rounds (see BenchOptions)
};
struct BenchOptions {
  t5::T5Config config;
  int64_t batch = 8, source_length = 64, target_length = 16, prompt_length = 8, repeats = 5;
  // Rounds beyond `repeats` (up to max_repeats) run while adding the newest round still moves some case's median
  // ratio to the training step by more than 3% ("until stable"); max_repeats <= repeats: exactly `repeats` rounds.
  int64_t max_repeats = 0;
  std::vector<std::string> specs;  // e.g. {"unroll:1", "neumann:3", ...}
  // Full DIO steps (DioTrainer::step: inner AdamW update + outer update) with these specs, against a plain step.
  std::vector<std::string> dio_specs;
  uint64_t seed = 0;
};
// Times everything on the same model and batches (the DIO problem with the prompt variant).
BenchResult bench_hypergrad(const BenchOptions& o);

}  // namespace instill::dio
