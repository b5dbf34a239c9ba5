// TAGI (Liao et al., NeurIPS 2024): a hypernetwork reads a task's instruction and writes LoRA weights for the base
// T5, so an unseen task gets its own adapter from its instruction alone.
//
//   HyperNetOptions o; o.rank = 8; o.target_modules = {"q", "v"};
//   HyperNet hn(model->..., o);                         // slots = lora::lora_sites(model, {targets})
//   InstructionEncoding e = encode_instruction(*model, instr_ids, instr_mask);  // pooled + states for fusion
//   lora::AdapterBatch ad = hn->generate(e.pooled);     // one adapter per example, all slots of a group batched
//
// Model (README "TAGI: adapters generated from instructions"):
//   pooled  = masked token mean of (embedding output + final encoder state) / 2   ("first-last average")
//   code_s  = [tanh(W_p pooled + b_p) (proj_dim - 1), layer_index(s)] + E[s]      E: learned slot embedding
//   A_s     = MLP_A^g(code_s) reshaped [r, in];  B_s = MLP_B^g(code_s) reshaped [out, r] / sqrt(r) (scale_b)
//   MLP     = Linear(proj_dim -> hidden), ReLU, Linear(hidden -> d*r); biases 0. Initialization (`init`):
//     "lora" (default), as LoRA starts: the projection and both A layers at normal scales (generated A entries
//       ~ 1/sqrt(3 in), LoRA's kaiming-uniform A), the first B layer at a normal scale and only the last B layer at
//       N(0, init_std), so B starts near zero (the adapter near the base model) yet dL/dB ~ A is at once non-zero;
//     "paper", the paper's code: every weight N(0, init_std). With init_std 1e-7 both generated A and B are ~1e-13,
//       and since dL/dA ~ B and dL/dB ~ A the CE and KL gradients reaching the hypernetwork are ~1e-19 (a saddle:
//       only the parameter-MSE term moves it). Kept to reproduce the paper, not as a default.
//   g is the slot's group: the same module in every block of one stack (e.g. "decoder.EncDecAttention.q"),
//   so the paper's separate hypernetworks for encoder self-, decoder self- and cross-attention are kept and
//   every group's slots (all layers) are computed in one batched pass [B, n_layers, proj_dim] -> [B, n_layers, d*r].
//   Adapter scaling = alpha / r (the per-example LoRA of lora/linear.h, batched matmuls on CPU; no fused CUDA
//   kernel: this LibTorch build is CPU-only).
// Instruction fusion: the instruction's encoder states are appended to the encoder output for cross-attention
//   (T5Inputs::extra_encoder_states).
// Loss (TagiLoss): ce_weight * CE + kl_weight * T^2 * KL(softmax(teacher/T) || softmax(student/T)) (mean over
//   labelled tokens) + mse_weight * MSE(generated, teacher adapter) (mean over all A and B elements of the slots,
//   teacher B rescaled by s_teacher / s_student so equal tensors mean equal weight deltas). Weight 0 = term off.
//   Defaults from the paper's code: CE/KL mix alpha = 0.4 (ce 0.6, kl 0.4), T = 3, MSE weight 1000.
// Data parallelism (tagi_train_steps with a GradSync): every term is a mean over its own unit (CE and KL over
//   labelled tokens, KL and MSE only over rows with a teacher), so a plain mean over ranks of per-shard means would
//   weigh a shard with few tokens as much as one with many. TagiBatch::*_scale carry each shard's share
//   (local count * world / global count, computed by the caller who sees the global batch); the mean over ranks of
//   the scaled terms, and of their gradients, is then the term of the whole global batch, as in one process.
#pragma once
#include <torch/torch.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/peft.h"
#include "lora/linear.h"
#include "lora/lora.h"
#include "t5/generate.h"
#include "t5/model.h"
#include "train/optim.h"
#include "train/trainer.h"

namespace instill::hypernet {

struct HyperNetOptions {
  int64_t rank = 8;
  double alpha = 16;  // adapter scaling alpha / rank
  int64_t proj_dim = 256;
  int64_t hidden = 8;
  double init_std = 1e-7;
  std::string init = "lora";  // "lora" | "paper" (see the header comment)
  bool scale_b = true;  // B *= 1 / sqrt(rank)
  std::vector<std::string> target_modules = {"q", "v"};
  bool fusion = true;  // instruction fusion
  void validate() const;
  std::string to_json() const;
  static HyperNetOptions from_json(const std::string& text, const std::string& source);
};

struct Slot {
  std::string path;   // e.g. decoder.block.1.layer.1.EncDecAttention.q
  std::string group;  // e.g. decoder.EncDecAttention.q
  int64_t layer = 0, in = 0, out = 0;
};

struct InstructionEncoding {
  at::Tensor pooled;  // [B, d_model]
  at::Tensor hidden;  // [B, L, d_model] final-normed encoder states (for fusion)
  at::Tensor mask;    // [B, L] bool
};

// Encodes instructions [B, L] with the base model's encoder (no adapters); follows the caller's grad mode.
InstructionEncoding encode_instruction(t5::T5ForConditionalGenerationImpl& model, const at::Tensor& ids,
                                       const at::Tensor& mask);

struct HyperNetImpl : torch::nn::Module {
  HyperNetImpl(const t5::T5ForConditionalGenerationImpl& model, HyperNetOptions opt, uint64_t seed = 0);
  // pooled [B, d_model] -> one adapter per example for every slot.
  lora::AdapterBatch generate(const at::Tensor& pooled);
  double scaling() const { return opt.alpha / static_cast<double>(opt.rank); }
  // Parameters "proj.weight", "<group>_A0.weight", "<group>_emb", ... (group names with '.' replaced by '_').
  int64_t parameter_count() const;

  HyperNetOptions opt;
  std::vector<Slot> slots;
  torch::nn::Linear proj{nullptr};
  struct Group {
    std::string name;
    std::vector<size_t> slots;  // indices into `slots`, by layer
    int64_t in = 0, out = 0;
    torch::nn::Linear a0{nullptr}, a1{nullptr}, b0{nullptr}, b1{nullptr};
    at::Tensor emb;     // [n, proj_dim] learned slot embedding
    at::Tensor layers;  // [n] float layer indices
  };
  std::vector<Group> groups;
};
TORCH_MODULE(HyperNet);

// Hypernetwork weights + options to one safetensors file (metadata "format": "instill-tagi-hypernet",
// "options": JSON) and back. Loading checks names and shapes (ArgumentError / FileError).
void save_hypernet(const HyperNetImpl& hn, const std::string& path);
HyperNet load_hypernet(const t5::T5ForConditionalGenerationImpl& model, const std::string& path);

// Teacher adapters, one per training task, stacked: path -> (A [N, r, in], B [N, out, r]).
struct TeacherBank {
  std::map<std::string, std::pair<at::Tensor, at::Tensor>> adapters;
  double scaling = 1.0;
  int64_t size = 0;
  // PEFT folders (same r, alpha and modules); ArgumentError naming the folder otherwise.
  static TeacherBank from_peft(const std::vector<std::string>& dirs, at::ScalarType dtype);
  lora::AdapterBatch select(const at::Tensor& index) const;  // index [B] int64 in [0, size)
};

struct TagiLossOptions {
  double ce_weight = 0.6;
  double kl_weight = 0.4;
  double temperature = 3.0;
  double mse_weight = 1000.0;
};

// One micro-batch. The student sees `input_ids` (the instance without the instruction) and the instruction through
// the hypernetwork (and fusion); the teacher sees teacher_input_ids (default: input_ids) with its task's LoRA.
struct TagiBatch {
  train::Batch student;          // input_ids [B,S], attention_mask [B,S], labels [B,T]
  at::Tensor instr_ids, instr_mask;                   // [B, L]
  at::Tensor teacher_input_ids, teacher_attention_mask;  // optional [B, S']
  at::Tensor teacher_index;                           // optional [B] int64; -1 = no teacher for this row
  // Multipliers of the CE, KL and MSE terms (data-parallel shards, see the header comment); 1 = the batch alone.
  double ce_scale = 1.0, kl_scale = 1.0, mse_scale = 1.0;
};

struct TagiTerms {
  at::Tensor total, ce, kl, mse;  // kl / mse undefined when off or without teachers
};

// The whole TAGI system: student base model, hypernetwork, optional teachers (a frozen base copy + bank).
struct Tagi {
  t5::T5ForConditionalGeneration model{nullptr};
  HyperNet hypernet{nullptr};
  t5::T5ForConditionalGeneration teacher_model{nullptr};  // null: the student base model is used
  std::shared_ptr<TeacherBank> bank;
  TagiLossOptions loss;

  // Generated adapters + student forward inputs (fusion) for a batch.
  struct Prepared {
    InstructionEncoding enc;
    lora::AdapterBatch adapters;
  };
  Prepared prepare(const at::Tensor& instr_ids, const at::Tensor& instr_mask);
  TagiTerms compute_loss(const TagiBatch& b);
  // Greedy / beam generation for student inputs with their instructions (no autograd).
  at::Tensor generate(const at::Tensor& input_ids, const at::Tensor& attention_mask, const at::Tensor& instr_ids,
                      const at::Tensor& instr_mask, const t5::GenerateOptions& opt);
  // The adapter generated for ONE instruction [1, L] in PEFT layout (B includes the 1/sqrt(r) factor).
  std::vector<io::LoraModuleWeights> adapter_for(const at::Tensor& instr_ids, const at::Tensor& instr_mask);
  // Rank classification under generated adapters (+ fusion): t5::score_options with each example's adapter, i.e.
  // the sum of log p(token) over option k's tokens (options [B, K, T], -100 = padding). No autograd.
  t5::OptionScores score_options(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                 const at::Tensor& instr_ids, const at::Tensor& instr_mask, const at::Tensor& options,
                                 int64_t chunk_rows = 0);
  nlohmann::json peft_config() const;
};

// Norms of the gradient that each weighted loss term (ce_weight * CE, kl_weight * T^2 * KL, mse_weight * MSE)
// sends to the hypernetwork's parameters, on one batch; NaN where the term is off or has no teacher rows. For
// logging (a saddle shows as CE/KL norms ~1e-19): one forward and one backward per term, with LibTorch's CPU
// generator restored afterwards so the training run's dropout stream is unchanged.
struct TermGradNorms {
  double ce, kl, mse;
};
TermGradNorms term_grad_norms(Tagi& tagi, const TagiBatch& b);

struct TagiStepsResult {
  train::TrainStepsResult steps;
  std::vector<double> ce, kl, mse;  // per optimizer step, mean over its micro-batches (NaN when off)
  std::optional<TermGradNorms> term_grad_norms;  // on the call's first batch, when asked for
};

// N optimizer steps through train::train_steps (grad accumulation from the optimizer config). grad_sync (data
// parallelism, dist::make_grad_sync) averages the gradients over ranks before clipping; nullptr = one process.
// Reported losses and terms are this rank's (scaled) values: the caller averages them over ranks.
TagiStepsResult tagi_train_steps(Tagi& tagi, train::Optimizer& optimizer, const std::vector<TagiBatch>& batches,
                                 const std::function<void(const train::StepProgress&)>& progress = nullptr,
                                 const std::atomic<bool>* cancel = nullptr,
                                 const train::GradSync* grad_sync = nullptr, bool log_term_grad_norms = false);

}  // namespace instill::hypernet
