// DIO (issue 8): differentiable instruction optimization on T5 (Isonuma et al., Findings of ACL 2023).
//
// Learnable instructions phi enter the model as soft tokens prepended to the embedded encoder input
// (T5Inputs::prefix_embeds, DIO's prepare_inputs_frozen). Two variants:
//   "prompt"    per-task soft prompts P [num_tasks, n, d_model]; initialised from the embeddings of the task's
//               written instruction (its first n tokens, cycled) or from embeddings of sampled vocabulary ids.
//               A training example of task t gets P[t]. Meta tasks have no prompt: the meta loss reads
//               the model with the written instruction only, so phi acts on it only through theta*(phi).
//   "embedder"  a trainable map from the written instruction to n soft tokens, so any task (unseen ones too)
//               gets soft tokens: E = shared(instr_ids) (the model's own token embeddings, part of theta, not
//               detached, so every gradient and HVP is exact); K = E Wk, V = E Wv + E;
//               soft = softmax(Q K^T / sqrt(d) + mask) V,
//               with phi = {Q [n, d] (initialised from sampled vocabulary embeddings), Wk, Wv [d, d] (Wk small
//               random, Wv zero)}. Meta examples get soft tokens from their own instruction (direct term).
//
// Bilevel training (DioTrainer::step): the inner optimizer updates theta (all model parameters) on the training
// batch with the current phi; every `meta_every` steps the outer optimizer updates phi with the hypergradient
// d L_meta(theta*(phi), phi) / d phi computed by the hypergradient registry (hypergrad/hypergrad.h: unroll:K,
// neumann:K, cg:K, fd; Hessian-vector products by double backward) for the problem
//   theta = model parameters, phi = instruction parameters,
//   L_train = mean token loss of the training batch with soft tokens, L_meta = the same on the meta batch.
// meta_every = 0 never updates phi: "fixed instructions" (the baseline DIO is compared with).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "hypergrad/hypergrad.h"
#include "t5/model.h"
#include "train/optim.h"
#include "train/trainer.h"

namespace instill::dio {

struct DioOptions {
  std::string variant = "prompt";  // "prompt" | "embedder"
  int64_t prompt_length = 8;       // n soft tokens
  int64_t num_tasks = 0;           // prompt variant: number of training tasks (rows of P)
  std::string hypergrad = "neumann:1";
  hypergrad::HypergradOptions hypergrad_options;  // defaults for the spec's keys (alpha, lr, damping, ...)
  train::OptimConfig inner;  // theta
  train::OptimConfig outer;  // phi
  int64_t meta_every = 1;    // outer update every meta_every inner steps; 0 = never
  uint64_t seed = 0;         // initialisation of phi

  // ArgumentError / RangeError naming the field.
  void validate() const;
};

// One batch of (instruction-encoded) examples plus what selects their soft tokens.
struct DioBatch {
  train::Batch batch;      // input_ids, attention_mask, labels (int64 on the model's device)
  at::Tensor task_ids;     // [B] int64 rows of P (prompt variant; undefined = no soft prompt)
  at::Tensor instr_ids;    // [B, L] int64 written-instruction ids (embedder variant; undefined = none)
  at::Tensor instr_mask;   // [B, L] (nonzero = token)
};

struct DioStepStats {
  double train_loss = 0;     // inner loss before the inner update
  double meta_loss = NAN;    // outer loss at theta after the inner update (NaN when no outer update ran)
  double hypergrad_norm = NAN;
  double inner_grad_norm = 0;
  int64_t hvp_count = 0, grad_count = 0;
  double seconds = 0, hypergrad_seconds = 0;
  bool outer_updated = false;
};

class DioTrainer {
 public:
  // `model` is shared with the caller (its parameters are theta). `init_ids[t]` (prompt variant): the token ids
  // that initialise task t's prompt (the written instruction, or sampled vocabulary ids); empty rows are filled
  // from vocabulary ids sampled with `seed`. Ignored by the embedder variant.
  DioTrainer(t5::T5ForConditionalGeneration model, DioOptions options,
             const std::vector<std::vector<int64_t>>& init_ids = {});

  // The soft tokens [B, n, d] for a batch (undefined when the batch selects none).
  at::Tensor soft_tokens(const DioBatch& b) const;
  // Mean token loss of a batch with its soft tokens (the model's mode decides dropout).
  at::Tensor loss(const DioBatch& b);

  // The bilevel problem for one (training, meta) pair: closures refer to the batches, which must outlive it.
  hypergrad::BilevelProblem problem(const DioBatch& train, const DioBatch& meta);

  // One inner step on `train`, then (every meta_every steps, when `meta` is given) one outer step.
  DioStepStats step(const DioBatch& train, const DioBatch* meta);

  // Greedy / beam generation with the batch's soft tokens (no autograd).
  at::Tensor generate(const DioBatch& b, int64_t max_new_tokens, int64_t num_beams = 1);

  // Instruction parameters by name ("dio.prompts" | "dio.query", "dio.key", "dio.value").
  std::vector<std::pair<std::string, at::Tensor>> named_phi() const;
  std::vector<at::Tensor> phi() const;
  std::vector<at::Tensor> theta() const;
  // Writes the instruction parameters to one safetensors file (metadata: variant, prompt_length); load_phi
  // restores them (shape-checked).
  void save_phi(const std::string& path) const;
  void load_phi(const std::string& path);

  t5::T5ForConditionalGeneration& model() { return model_; }
  const DioOptions& options() const { return options_; }
  train::Optimizer& inner_optimizer() { return *inner_opt_; }
  train::Optimizer& outer_optimizer() { return *outer_opt_; }
  int64_t steps() const { return steps_; }

 private:
  t5::T5ForConditionalGeneration model_;
  DioOptions options_;
  hypergrad::HypergradSpec spec_;
  at::Tensor prompts_;              // prompt variant
  at::Tensor query_, key_, value_;  // embedder variant
  std::unique_ptr<train::Optimizer> inner_opt_, outer_opt_;
  int64_t steps_ = 0;
};

// ---- benchmark (bench/hypergrad.ts through the addon) ----
struct BenchMethod {
  std::string spec;
  double seconds = 0;
  int64_t peak_bytes = 0;
  int64_t hvp_count = 0;
  int64_t iterations = 0;           // unroll steps / Neumann terms / CG iterations actually run
  bool negative_curvature = false;  // cg stopped early on negative curvature
};
struct BenchResult {
  double train_step_s = 0;  // one forward + backward of the training loss w.r.t. theta
  double grad_s = 0;        // one torch::autograd::grad of the training loss w.r.t. theta (no optimizer)
  double hvp_s = 0;         // one Hessian-vector product by double backward (hypergrad::hvp)
  int64_t train_step_peak_bytes = 0, hvp_peak_bytes = 0;
  std::vector<BenchMethod> methods;
  int64_t parameters = 0;
};
struct BenchOptions {
  t5::T5Config config;
  int64_t batch = 8, source_length = 64, target_length = 16, prompt_length = 8, repeats = 3;
  std::vector<std::string> specs;  // e.g. {"unroll:1", "neumann:3", ...}
  uint64_t seed = 0;
};
// Times everything on the same model and batches (the DIO problem with the prompt variant), median of repeats.
BenchResult bench_hypergrad(const BenchOptions& o);

}  // namespace instill::dio
