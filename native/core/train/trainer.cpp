// The N-step training loop and the training state file: see trainer.h.
#include "train/trainer.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <sstream>

#include "common/errors.h"
#include "io/safetensors.h"

namespace instill::train {

int64_t count_label_tokens(const at::Tensor& labels) {
  if (!labels.defined()) return 0;
  return labels.ne(-100).sum().item<int64_t>();
}

Precision parse_precision(const std::string& s, const std::string& arg) {
  if (s == "auto") return Precision::kAuto;
  if (s == "float32" || s == "fp32") return Precision::kFloat32;
  if (s == "bf16" || s == "bfloat16") return Precision::kBFloat16;
  throw ArgumentError(arg + ": expected 'auto', 'float32' or 'bf16', got '" + s + "'");
}

std::string precision_name(Precision p) {
  switch (p) {
    case Precision::kFloat32: return "float32";
    case Precision::kBFloat16: return "bf16";
    default: return "auto";
  }
}

AutocastGuard::AutocastGuard(bool on, at::DeviceType device) : on_(on), cpu_(device == at::kCPU) {
  if (!on_) return;
  if (cpu_) {
    prev_enabled_ = at::autocast::is_cpu_enabled();
    prev_dtype_ = at::autocast::get_autocast_cpu_dtype();
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(true);
  } else {
    prev_enabled_ = at::autocast::is_enabled();
    prev_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(true);
  }
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!on_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  if (cpu_) {
    at::autocast::set_cpu_enabled(prev_enabled_);
    at::autocast::set_autocast_cpu_dtype(prev_dtype_);
  } else {
    at::autocast::set_enabled(prev_enabled_);
    at::autocast::set_autocast_gpu_dtype(prev_dtype_);
  }
}

TrainStepsResult train_steps(const LossFn& loss_fn, Optimizer& optimizer, const std::vector<Batch>& batches,
                             const std::function<void(const StepProgress&)>& progress, const std::atomic<bool>* cancel,
                             bool autocast_cuda, const GradSync* grad_sync) {
  return train_steps(loss_fn, optimizer, batches, progress, cancel,
                     autocast_cuda ? Precision::kAuto : Precision::kFloat32, grad_sync);
}

TrainStepsResult train_steps(const LossFn& loss_fn, Optimizer& optimizer, const std::vector<Batch>& batches,
                             const std::function<void(const StepProgress&)>& progress, const std::atomic<bool>* cancel,
                             Precision precision, const GradSync* grad_sync) {
  const int64_t accum = optimizer.config().grad_accumulation;
  const int64_t n = static_cast<int64_t>(batches.size());
  if (n == 0) throw ArgumentError("batches: empty");
  if (n % accum != 0) {
    std::ostringstream os;
    os << "batches: " << n << " micro-batches is not a multiple of gradAccumulation " << accum;
    throw ArgumentError(os.str());
  }
  const int64_t steps = n / accum;
  bool on_cuda = false;
  for (const auto& np : optimizer.params()) on_cuda = on_cuda || np.second.is_cuda();
  const bool autocast = precision == Precision::kBFloat16 || (precision == Precision::kAuto && on_cuda);
  const at::DeviceType autocast_device = on_cuda ? at::kCUDA : at::kCPU;
  torch::AutoGradMode grad_mode(true);
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  TrainStepsResult r;
  const auto params = optimizer.param_tensors();
  for (int64_t s = 0; s < steps; ++s) {
    if (cancel && cancel->load()) {
      r.cancelled = true;
      break;
    }
    optimizer.zero_grad();
    double loss_sum = 0;
    for (int64_t k = 0; k < accum; ++k) {
      const Batch& b = batches[static_cast<size_t>(s * accum + k)];
      at::Tensor loss;
      {
        AutocastGuard ac(autocast, autocast_device);
        loss = loss_fn(b);
      }
      if (!loss.defined() || loss.numel() != 1) throw ArgumentError("train_steps: the loss must be a scalar");
      if (!loss.requires_grad()) throw ArgumentError("train_steps: the loss does not depend on any trainable parameter");
      loss_sum += loss.item<double>();
      (accum == 1 ? loss : loss / static_cast<double>(accum)).backward();
      r.tokens += count_label_tokens(b.labels);
    }
    if (grad_sync && *grad_sync) (*grad_sync)(params);
    const double norm = clip_grad_norm(params, optimizer.config().clip_norm);
    const double lr = optimizer.apply();
    optimizer.zero_grad();
    r.losses.push_back(loss_sum / static_cast<double>(accum));
    r.grad_norms.push_back(norm);
    r.lrs.push_back(lr);
    if (progress) {
      StepProgress p;
      p.step_in_call = s + 1;
      p.steps_in_call = steps;
      p.global_step = optimizer.step();
      p.loss = r.losses.back();
      p.grad_norm = norm;
      p.lr = lr;
      p.tokens = r.tokens;
      p.seconds = elapsed();
      progress(p);
    }
  }
  r.seconds = elapsed();
  r.step = optimizer.step();
  return r;
}

std::map<std::string, at::Tensor> rng_state() {
  std::map<std::string, at::Tensor> out;
  {
    auto gen = at::globalContext().defaultGenerator(at::DeviceType::CPU);
    std::lock_guard<std::mutex> lock(gen.mutex());
    out["rng/cpu"] = gen.get_state().clone();
  }
  if (torch::cuda::is_available()) {
    const auto count = static_cast<int>(torch::cuda::device_count());
    for (int i = 0; i < count; ++i) {
      auto gen = at::globalContext().defaultGenerator(at::Device(at::DeviceType::CUDA, static_cast<c10::DeviceIndex>(i)));
      std::lock_guard<std::mutex> lock(gen.mutex());
      out["rng/cuda/" + std::to_string(i)] = gen.get_state().clone();
    }
  }
  return out;
}

void set_rng_state(const std::map<std::string, at::Tensor>& state) {
  for (const auto& [key, t] : state) {
    if (key.rfind("rng/", 0) != 0) continue;
    if (t.scalar_type() != at::kByte || t.dim() != 1)
      throw ArgumentError("training state: '" + key + "' must be a 1-D uint8 tensor");
    at::Generator gen;
    if (key == "rng/cpu") {
      gen = at::globalContext().defaultGenerator(at::DeviceType::CPU);
    } else if (key.rfind("rng/cuda/", 0) == 0) {
      if (!torch::cuda::is_available()) continue;  // saved on a GPU machine, resumed on CPU
      int idx = -1;
      try {
        idx = std::stoi(key.substr(9));
      } catch (...) {
        throw ArgumentError("training state: malformed key '" + key + "'");
      }
      if (idx < 0 || idx >= static_cast<int>(torch::cuda::device_count())) continue;
      gen = at::globalContext().defaultGenerator(at::Device(at::DeviceType::CUDA, static_cast<c10::DeviceIndex>(idx)));
    } else {
      throw ArgumentError("training state: unknown RNG key '" + key + "'");
    }
    std::lock_guard<std::mutex> lock(gen.mutex());
    try {
      gen.set_state(t.contiguous());
    } catch (const c10::Error& e) {
      throw ArgumentError("training state: '" + key + "' is not a valid generator state (" +
                          e.what_without_backtrace() + ")");
    }
  }
}

std::string optim_config_to_json(const OptimConfig& c) {
  nlohmann::json j;
  j["name"] = c.name;
  j["lr"] = c.lr;
  j["weightDecay"] = c.weight_decay;
  j["betas"] = {c.beta1, c.beta2};
  j["eps"] = c.eps;
  j["scaleParameter"] = c.scale_parameter;
  j["schedule"] = c.schedule;
  j["warmupSteps"] = c.warmup_steps;
  j["totalSteps"] = c.total_steps;
  j["clipNorm"] = c.clip_norm;
  j["gradAccumulation"] = c.grad_accumulation;
  return j.dump();
}

void save_training_state(const std::string& path, const Optimizer& optimizer) {
  io::NamedTensors tensors;
  for (auto& kv : optimizer.state_dict()) tensors.emplace_back(kv.first, kv.second);
  for (auto& kv : rng_state()) tensors.emplace_back(kv.first, kv.second);
  std::map<std::string, std::string> meta{{"format", "instill-training-state"},
                                          {"version", "1"},
                                          {"optimizer", optimizer.config().name},
                                          {"config", optim_config_to_json(optimizer.config())}};
  io::write_safetensors(path, tensors, meta);
}

void load_training_state(const std::string& path, Optimizer& optimizer) {
  io::SafetensorsFile f = io::read_safetensors(path);
  auto fmt = f.metadata.find("format");
  if (fmt == f.metadata.end() || fmt->second != "instill-training-state")
    throw FileError(path, "not an instill training state (metadata 'format' is missing or different)");
  auto opt = f.metadata.find("optimizer");
  if (opt == f.metadata.end() || opt->second != optimizer.config().name)
    throw ArgumentError(path + ": training state of optimizer '" + (opt == f.metadata.end() ? "?" : opt->second) +
                        "', but the model's optimizer is '" + optimizer.config().name + "'");
  std::map<std::string, at::Tensor> state, rng;
  for (auto& [name, t] : f.tensors) {
    if (name.rfind("rng/", 0) == 0)
      rng[name] = t;
    else
      state[name] = t;
  }
  try {
    optimizer.load_state_dict(state);
    set_rng_state(rng);  // only after the optimizer accepted its part: a failed load changes nothing
  } catch (const ArgumentError& e) {
    throw ArgumentError(path + ": " + e.what());
  }
}

}  // namespace instill::train
