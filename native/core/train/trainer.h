// The fine-tuning loop that runs N optimizer steps in one native call, and the training state file.
//
// Gradient accumulation: each optimizer step consumes `grad_accumulation` micro-batches; the loss of a
// micro-batch is the model's mean token loss on it (mean over its labelled tokens), and the gradient of a step
// is the MEAN over its micro-batches of these per-micro-batch means (HF Trainer before 4.46: loss / accum per
// backward). The reported loss of a step is the mean of its micro-batch losses (before clipping/updating).
// A micro-batch with few labelled tokens thus weighs as much as one with many.
//
// Training state file (safetensors, written atomically through io::write_safetensors):
//   optimizer/<param>/<buffer>   every per-parameter optimizer buffer ("step" int64 [1], moments in param dtype)
//   scheduler/step               int64 [1]: optimizer steps taken
//   rng/cpu                      uint8: LibTorch's default CPU generator state (dropout draws from it)
//   rng/cuda/<i>                 uint8: default CUDA generator state of device i, when CUDA is available
// metadata: format "instill-training-state", version "1", optimizer (the name), config (JSON of OptimConfig).
// Loading it into a fresh model (same weights) + optimizer continues training bit for bit.
#pragma once
#include <ATen/ATen.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "train/optim.h"

namespace instill::train {

// Token ids as int64 tensors on the model's device; labels use -100 for ignored positions.
struct Batch {
  at::Tensor input_ids;       // [B, S]
  at::Tensor attention_mask;  // [B, S]
  at::Tensor labels;          // [B, T]
  // Multiplies the mean token loss (t5_loss_fn). Data parallelism: (this shard's label tokens * world) / (the
  // global batch's), so that the mean over ranks of the shard losses and gradients is the global batch's token mean
  // even when shards hold different numbers of label tokens. 1 in one process.
  double loss_scale = 1.0;
};

// Returns the mean token loss of one micro-batch, with autograd history (grad mode is on).
using LossFn = std::function<at::Tensor(const Batch&)>;

// Gradient synchronisation hook (data parallelism, dist/process_group.h): called once per optimizer step with the
// trainable parameters, after the backward passes of the step's micro-batches and before clipping and the update;
// it replaces each gradient by its mean over workers. nullptr = one process.
using GradSync = std::function<void(const std::vector<at::Tensor>& params)>;

struct StepProgress {
  int64_t step_in_call = 0;  // 1-based, among the steps of this call
  int64_t steps_in_call = 0;
  int64_t global_step = 0;   // optimizer step after this one
  double loss = 0, grad_norm = 0, lr = 0;
  int64_t tokens = 0;        // labelled tokens so far in this call
  double seconds = 0;        // since the call started
};

struct TrainStepsResult {
  std::vector<double> losses, grad_norms, lrs;
  int64_t tokens = 0;  // labelled tokens (labels != -100) consumed
  double seconds = 0;
  int64_t step = 0;    // optimizer step after the call
  bool cancelled = false;
};

// Labelled tokens in a labels tensor (entries != -100).
int64_t count_label_tokens(const at::Tensor& labels);

// Numeric precision of the training forward:
//   kAuto      bf16 autocast when the parameters live on CUDA, none on CPU (the default);
//   kFloat32   no autocast: the parameters' dtype throughout;
//   kBFloat16  bf16 autocast on the parameters' device, CPU included: matmuls (linear, matmul, bmm) run in
//              bfloat16, norms, softmax and the loss in float32; master weights, gradients and optimizer state
//              stay in the parameters' dtype (float32). On a CPU without bf16 instructions (runtime.h
//              cpu_has_bf16) it is correct but several times slower than float32.
enum class Precision { kAuto, kFloat32, kBFloat16 };
// "auto" | "float32" ("fp32") | "bf16" ("bfloat16"); ArgumentError naming `arg` otherwise.
Precision parse_precision(const std::string& s, const std::string& arg = "precision");
std::string precision_name(Precision p);

// Runs batches.size() / grad_accumulation optimizer steps (batches.size() must be a positive multiple of
// grad_accumulation: ArgumentError otherwise). Checks `cancel` before each step; when set, stops and returns
// the steps done so far with cancelled = true. Grad mode is enabled inside. The forward runs under `precision`.
TrainStepsResult train_steps(const LossFn& loss_fn, Optimizer& optimizer, const std::vector<Batch>& batches,
                             const std::function<void(const StepProgress&)>& progress, const std::atomic<bool>* cancel,
                             Precision precision, const GradSync* grad_sync = nullptr);
// The same with autocast_cuda = true meaning Precision::kAuto and false meaning Precision::kFloat32.
TrainStepsResult train_steps(const LossFn& loss_fn, Optimizer& optimizer, const std::vector<Batch>& batches,
                             const std::function<void(const StepProgress&)>& progress = nullptr,
                             const std::atomic<bool>* cancel = nullptr, bool autocast_cuda = true,
                             const GradSync* grad_sync = nullptr);

// RAII: enables bf16 autocast for `device` (CUDA or CPU) when `on` and restores the previous state; does nothing
// when off.
class AutocastGuard {
 public:
  explicit AutocastGuard(bool on, at::DeviceType device = at::kCUDA);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool on_ = false;
  bool cpu_ = false;
  bool prev_enabled_ = false;
  at::ScalarType prev_dtype_ = at::kHalf;
};

// RNG state of the default generators ("rng/cpu", "rng/cuda/<i>"), as uint8 CPU tensors.
std::map<std::string, at::Tensor> rng_state();
// Restores what rng_state() returned; keys absent are left alone. Throws ArgumentError on malformed state.
void set_rng_state(const std::map<std::string, at::Tensor>& state);

// Optimizer state + scheduler step + RNG state to one safetensors file, atomically.
void save_training_state(const std::string& path, const Optimizer& optimizer);
// Loads into `optimizer` (same optimizer name and trainable parameter names) and restores the RNG state.
// FileError for unreadable files, ArgumentError for a state that does not fit.
void load_training_state(const std::string& path, Optimizer& optimizer);

// OptimConfig <-> JSON text (field names as in the TypeScript OptimizerOptions).
std::string optim_config_to_json(const OptimConfig& c);

}  // namespace instill::train
