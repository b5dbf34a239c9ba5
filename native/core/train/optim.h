// Optimizers, learning-rate schedules and gradient clipping for fine-tuning (native/core, pure LibTorch).
//
// Both optimizers are written out here rather than taken from torch::optim so that their state is keyed by
// parameter NAME (the HF name of the model parameter): a training state saved from one model object loads into
// a fresh one, and the state file is readable (safetensors, "optimizer/<param>/<buffer>").
//
//   AdamW      torch.optim.AdamW (decoupled weight decay, bias-corrected moments), the single-tensor algorithm
//              of PyTorch 1.13: p *= 1 - lr*wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
//              p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).  Checked against torch::optim::AdamW.
//   Adafactor  transformers.optimization.Adafactor (Shazeer & Stern 2018) with relative_step=False (the lr comes
//              from the schedule), warmup_init=False, beta1=None (no first moment), clip_threshold=1.0,
//              decay_rate=-0.8, eps=(1e-30, 1e-3), scale_parameter=true by default: factored second moment
//              (row and column means) for parameters with >= 2 dimensions, full second moment otherwise.
//              Checked against an independent float64 re-implementation in tests/test_train.cpp.
//
// Weight decay follows HF Trainer: parameters whose name contains "bias" or "layer_norm" get none.
//
// Schedules follow transformers.get_linear_schedule_with_warmup / get_constant_schedule_with_warmup with the
// Trainer's order (optimizer.step() then scheduler.step()), so optimizer step k (0-based) uses lr * f(k):
//   linear:   f(k) = k / max(1, W) for k < W, else max(0, (T - k) / max(1, T - W))
//   constant: f(k) = k / max(1, W) for k < W, else 1
// As in HF, with W > 0 the very first step has learning rate 0.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace instill::train {

struct OptimConfig {
  std::string name = "adafactor";  // "adamw" | "adafactor"
  double lr = 1e-3;
  double weight_decay = 0.0;
  // AdamW
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  // Adafactor (HF defaults)
  double eps1 = 1e-30;
  double eps2 = 1e-3;
  double clip_threshold = 1.0;
  double decay_rate = -0.8;
  bool scale_parameter = true;
  // Schedule
  std::string schedule = "linear";  // "linear" | "constant"
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  // Gradient clipping by global L2 norm; 0 = off (the norm is still measured and reported).
  double clip_norm = 1.0;
  // Micro-batches per optimizer step.
  int64_t grad_accumulation = 1;

  // Throws ArgumentError / RangeError naming the field when a value is invalid.
  void validate() const;
};

// Multiplier f(step) of the base learning rate (see the header comment).
double schedule_factor(const OptimConfig& c, int64_t step);

// Global L2 norm of the defined gradients of `params` before clipping; when max_norm > 0 the gradients are
// scaled by min(1, max_norm / (norm + 1e-6)) in place (torch.nn.utils.clip_grad_norm_).
double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm);

class Optimizer {
 public:
  // `params`: (name, parameter) pairs; parameters must be leaf tensors that require grad. Names must be unique.
  Optimizer(std::vector<std::pair<std::string, at::Tensor>> params, OptimConfig config);

  const OptimConfig& config() const { return config_; }
  // Optimizer steps taken so far (= the scheduler's step).
  int64_t step() const { return step_; }
  // Learning rate the next call to apply() will use.
  double current_lr() const { return config_.lr * schedule_factor(config_, step_); }
  const std::vector<std::pair<std::string, at::Tensor>>& params() const { return params_; }
  std::vector<at::Tensor> param_tensors() const;

  // One update of every parameter with a defined gradient, with current_lr(); then step() += 1.
  // Returns the learning rate used. Parameters without a gradient are left alone (their state too).
  double apply();
  // Drops all gradients (set_to_none).
  void zero_grad();

  // All state: "optimizer/<param>/<buffer>" tensors (CPU, contiguous copies) and "scheduler/step" (int64 [1]).
  std::map<std::string, at::Tensor> state_dict() const;
  // Restores state written by state_dict() of an optimizer with the same name and parameters.
  // Throws ArgumentError naming the first mismatching parameter, buffer or shape.
  void load_state_dict(const std::map<std::string, at::Tensor>& state);

  // Bytes held by optimizer buffers.
  int64_t state_bytes() const;
  // Parameter i's buffers ("step", "exp_avg", ...; empty before its first update), read-only (e.g. SAMA's
  // preconditioner in dio/dio.cpp).
  const std::map<std::string, at::Tensor>& buffers(size_t i) const { return state_.at(i); }

 private:
  void adamw_update(size_t i, const at::Tensor& g, double lr);
  void adafactor_update(size_t i, const at::Tensor& g, double lr);

  std::vector<std::pair<std::string, at::Tensor>> params_;
  std::vector<bool> decay_;
  // Per parameter: buffer name -> tensor ("step" is an int64 [1] tensor).
  std::vector<std::map<std::string, at::Tensor>> state_;
  OptimConfig config_;
  int64_t step_ = 0;
};

// HF Trainer's rule: no weight decay for biases and layer-norm weights.
bool decays(const std::string& param_name);

}  // namespace instill::train
