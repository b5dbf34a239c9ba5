// DIO: differentiable instruction optimization on T5 (Isonuma et al., Findings of ACL 2023).
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
//
// Instruction encoding of the embedder (options.instruction_encoding):
//   "embeddings"  E = shared(instr_ids), the token embeddings (above);
//   "encoder"     E = the model's encoder run on the written instruction alone (final-normed states), so the map
//                 reads contextual states ("a trainable map from the encoded written instruction"). The encoder is
//                 part of theta and not detached: gradients and HVPs through it stay exact; costs one more
//                 encoder pass over L instruction tokens per example.
//
// Demonstration selection (DIO's instruction extractor; options.num_demonstrations = m > 0): every training task
// t has learnable logits a[t] in R^m (phi "dio.demo_logits", zero = uniform) over m candidate demonstrations
// (its positive examples, as token ids). Per example the batch carries the candidates demo_ids [B, m, Ld] with
// demo_mask, and demo_task_ids [B] (row of a; -1 = no learnable distribution: candidate 0 is used, which is how
// meta and unseen tasks run, their first positive example). In a training step one sample per example is drawn
// with straight-through Gumbel-softmax from a private generator (seeded with options.seed, saved in the training
// state): g ~ Gumbel(0, 1), s = softmax((a[t] + g) / tau), h = one_hot(argmax(a[t] + g)),
//   y = h + (s - stop_grad(s))   (equals h exactly in the forward; d y / d a = d s / d a),
//   D = sum_j y_j shared(demo_ids[:, j])   [B, Ld, d],
// and D is prepended to the encoder input after the soft instruction tokens with the selected candidate's mask
// (prefix = [soft tokens | D]). The forward thus equals the model reading the selected demonstration's tokens at
// that position; d loss / d a flows through s. The same sample serves the inner update and every closure call of
// the hypergradient (the noise is drawn once per step), so the outer update reaches a through the mixed
// second-order term d^2 L_train / d theta d a. Outside a training step (no noise drawn) the argmax of a[t] is
// used: evaluation of seen tasks.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
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
  // true: the hypergradient's lr (unroll, fd, sama without AdamW) defaults to the inner optimizer's learning rate at
  // that step (schedule included; hypergrad_options.inner_lr when that is 0, e.g. the first warmup step); a spec's
  // own "lr=" key still wins. false: hypergrad_options.inner_lr (the addon's options.unrollLr sets this).
  bool hypergrad_lr_from_inner = true;
  train::OptimConfig inner;  // theta
  train::OptimConfig outer;  // phi
  int64_t meta_every = 1;    // outer update every meta_every inner steps; 0 = never
  uint64_t seed = 0;         // initialisation of phi, Gumbel noise
  std::string instruction_encoding = "embeddings";  // embedder variant: "embeddings" | "encoder"
  int64_t num_demonstrations = 0;  // m candidate demonstrations per training task (0 = no demonstration selection)
  double gumbel_tau = 1.0;         // Gumbel-softmax temperature
  // Data parallelism (dist/process_group.h): replaces each inner gradient by its mean over ranks before clipping
  // (nullptr = one process), and hypergrad::BilevelProblem::reduce for the hypergradient's products.
  train::GradSync grad_sync;
  std::function<void(std::vector<at::Tensor>&)> reduce;
  // This worker's contiguous shard of every global batch (rank of world; src/dist shardItems): the Gumbel noise is
  // drawn for the whole global batch and sliced, so the samples equal a single process's.
  int64_t shard_rank = 0, shard_world = 1;

  // ArgumentError / RangeError naming the field.
  void validate() const;
};

// One batch of (instruction-encoded) examples plus what selects their soft tokens.
struct DioBatch {
  train::Batch batch;      // input_ids, attention_mask, labels (int64 on the model's device)
  at::Tensor task_ids;     // [B] int64 rows of P (prompt variant; undefined = no soft prompt)
  at::Tensor instr_ids;    // [B, L] int64 written-instruction ids (embedder variant; undefined = none)
  at::Tensor instr_mask;   // [B, L] (nonzero = token)
  at::Tensor demo_ids;       // [B, m, Ld] candidate demonstrations' token ids (undefined = no demonstration)
  at::Tensor demo_mask;      // [B, m, Ld] (nonzero = token; undefined = all ones)
  at::Tensor demo_task_ids;  // [B] rows of the demonstration logits, -1 = candidate 0 (undefined = all -1)
  at::Tensor demo_gumbel;    // [B, m] Gumbel noise of this step (set by sample_demonstrations; undefined = argmax)
  // Multiplies the mean token loss. Data parallelism: (this shard's label tokens * world) / (the global batch's), so
  // that the mean over ranks of the scaled shard losses (and of their gradients and products) is exactly the
  // global batch's mean token loss. 1 in one process.
  double loss_scale = 1.0;
};

struct DioStepStats {
  double train_loss = 0;     // inner loss before the inner update
  double meta_loss = NAN;    // outer loss where the hypergradient took v1 (theta before this step's inner update for
                             // the implicit methods and sama; NaN when no outer update ran)
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
  // `checked`: the batch was validated by an earlier call (the hypergradient's closures pass it: no id range checks,
  // no host synchronisation inside the loss).
  at::Tensor soft_tokens(const DioBatch& b, bool checked = false) const;
  // Demonstration selection: the weights y [B, m] (straight-through when b.demo_gumbel is set, else the hard
  // argmax / candidate 0), the mixed demonstration embeddings [B, Ld, d] and the selected mask [B, Ld] (bool).
  // Undefined tensors when the batch carries no demonstrations.
  struct Demonstrations {
    at::Tensor weights, embeds, mask, index;  // index [B]: the selected candidate
  };
  Demonstrations demonstrations(const DioBatch& b, bool checked = false) const;
  // Draws this step's Gumbel noise into b.demo_gumbel from the trainer's generator (no-op without demonstrations).
  void sample_demonstrations(DioBatch& b);
  // Mean token loss of a batch with its soft tokens (the model's mode decides dropout).
  at::Tensor loss(const DioBatch& b, bool checked = false);

  // The bilevel problem for one (training, meta) pair: closures refer to the batches, which must outlive it.
  hypergrad::BilevelProblem problem(const DioBatch& train, const DioBatch& meta);

  // One inner step on `train` and (every meta_every steps, when `meta` is given) one outer step. With an outer step
  // the training gradient f is computed once (hypergrad::inner_gradient: with its graph for the implicit methods),
  // the hypergradient is taken at theta_t on it, and the inner optimizer then steps on f.detach(): the inner step is
  // not paid twice and the meta loss logged is the one the hypergradient computed. With demonstrations, draws the
  // step's Gumbel noise for `train` first (sample_demonstrations on a copy). sama's preconditioner: the exact
  // derivative of this step's AdamW update w.r.t. its gradient (diagonal, before clipping; Adafactor: lr I).
  DioStepStats step(const DioBatch& train, const DioBatch* meta);

  // Greedy / beam generation with the batch's soft tokens (no autograd).
  at::Tensor generate(const DioBatch& b, int64_t max_new_tokens, int64_t num_beams = 1);
  // Rank classification with the batch's soft tokens (and demonstrations): summed log-likelihood of each option
  // (options [B, K, T], -100 padding; t5::score_options), eval mode, no autograd. Returns sums [B, K] (double).
  at::Tensor score_options(const DioBatch& b, const at::Tensor& options);
  // P v for AdamW's next update u(g) = lr/bc1 * m/(sqrt(v)/sqrt(bc2) + eps) with m, v updated by gradient g:
  // P = du/dg, diagonal, exact (bias corrections and eps included). Adafactor: lr v. (sama's preconditioner.)
  std::vector<at::Tensor> precondition(const std::vector<at::Tensor>& grads, const std::vector<at::Tensor>& v) const;

  // Instruction parameters by name ("dio.prompts" | "dio.query", "dio.key", "dio.value").
  std::vector<std::pair<std::string, at::Tensor>> named_phi() const;
  std::vector<at::Tensor> phi() const;
  std::vector<at::Tensor> theta() const;
  // Writes the instruction parameters to one safetensors file (metadata: variant, prompt_length); load_phi
  // restores them (shape-checked).
  void save_phi(const std::string& path) const;
  void load_phi(const std::string& path);
  // The model (config.json + model.safetensors) and <dir>/dio_instructions.safetensors.
  void save(const std::string& dir) const;
  // Mean token loss per batch with its soft tokens, in eval mode (the previous mode restored afterwards).
  std::vector<double> eval_loss(const std::vector<DioBatch>& batches);
  // Training state (one safetensors file, atomic): both optimizers ("inner/optimizer/...", "inner/scheduler/step",
  // "outer/..."), the default generators ("rng/cpu", ...), the Gumbel generator ("dio/gumbel_rng") and the step
  // counter ("dio/steps"; it decides when the next outer update runs). With the model weights and phi this is
  // everything a resumed run needs to continue bit for bit. load_state checks the optimizers' names and
  // parameters and changes nothing when the file does not fit (FileError / ArgumentError naming the file).
  void save_state(const std::string& path) const;
  void load_state(const std::string& path);

  t5::T5ForConditionalGeneration& model() { return model_; }
  const DioOptions& options() const { return options_; }
  train::Optimizer& inner_optimizer() { return *inner_opt_; }
  train::Optimizer& outer_optimizer() { return *outer_opt_; }
  int64_t steps() const { return steps_; }

 private:
  // prefix_embeds / prefix_mask of the model input: [soft tokens | selected demonstration].
  void set_prefix(const DioBatch& b, t5::T5Inputs& in, bool checked = false) const;
  // The batch's ids and mask with the soft prefix set (eval paths: generate, score_options).
  t5::T5Inputs prefixed_inputs(const DioBatch& b) const;

  t5::T5ForConditionalGeneration model_;
  DioOptions options_;
  hypergrad::HypergradSpec spec_;
  at::Tensor prompts_;              // prompt variant
  at::Tensor query_, key_, value_;  // embedder variant
  at::Tensor demo_logits_;          // [num_tasks, m] (demonstration selection)
  at::Generator gumbel_gen_;
  std::unique_ptr<train::Optimizer> inner_opt_, outer_opt_;
  int64_t steps_ = 0;
};

// A trainer over the checkpoint folder `dir` (float32, every parameter trainable), LibTorch seeded with options.seed.
std::shared_ptr<DioTrainer> load_trainer(const std::string& dir, const DioOptions& options,
                                         const std::vector<std::vector<int64_t>>& init_ids = {});

}  // namespace instill::dio
