// Optimizers, schedules and clipping: see optim.h for the formulas and their sources.
#include "train/optim.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "common/errors.h"

namespace instill::train {

void OptimConfig::validate() const {
  if (name != "adamw" && name != "adafactor")
    throw ArgumentError("optimizer.name: expected 'adamw' or 'adafactor', got '" + name + "'");
  if (schedule != "linear" && schedule != "constant")
    throw ArgumentError("optimizer.schedule: expected 'linear' or 'constant', got '" + schedule + "'");
  auto finite_nonneg = [](double v, const char* field) {
    if (!std::isfinite(v) || v < 0) throw RangeError(std::string("optimizer.") + field + ": must be a finite number >= 0");
  };
  finite_nonneg(lr, "lr");
  finite_nonneg(weight_decay, "weightDecay");
  finite_nonneg(clip_norm, "clipNorm");
  finite_nonneg(eps, "eps");
  if (!(beta1 >= 0 && beta1 < 1)) throw RangeError("optimizer.betas[0]: must be in [0, 1)");
  if (!(beta2 >= 0 && beta2 < 1)) throw RangeError("optimizer.betas[1]: must be in [0, 1)");
  if (total_steps < 1) throw RangeError("optimizer.totalSteps: must be >= 1");
  if (warmup_steps < 0) throw RangeError("optimizer.warmupSteps: must be >= 0");
  if (grad_accumulation < 1) throw RangeError("optimizer.gradAccumulation: must be >= 1");
}

double schedule_factor(const OptimConfig& c, int64_t step) {
  const double s = static_cast<double>(step);
  const double w = static_cast<double>(c.warmup_steps);
  if (step < c.warmup_steps) return s / std::max(1.0, w);
  if (c.schedule == "constant") return 1.0;
  const double t = static_cast<double>(c.total_steps);
  return std::max(0.0, (t - s) / std::max(1.0, t - w));
}

double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  std::vector<at::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return 0.0;
  std::vector<at::Tensor> norms;
  norms.reserve(grads.size());
  for (const auto& g : grads) norms.push_back(g.norm(2));
  at::Tensor total = norms.size() == 1 ? norms[0] : at::stack(norms).norm(2);
  const double norm = total.item<double>();
  if (max_norm > 0) {
    at::Tensor coef = at::clamp(max_norm / (total + 1e-6), c10::nullopt, 1.0);
    for (auto& g : grads) g.mul_(coef.to(g.device()));
  }
  return norm;
}

bool decays(const std::string& n) {
  return n.find("bias") == std::string::npos && n.find("layer_norm") == std::string::npos;
}

Optimizer::Optimizer(std::vector<std::pair<std::string, at::Tensor>> params, OptimConfig config)
    : params_(std::move(params)), config_(std::move(config)) {
  config_.validate();
  std::set<std::string> seen;
  for (const auto& [name, p] : params_) {
    if (!p.defined()) throw ArgumentError("optimizer: parameter '" + name + "' is undefined");
    if (!p.requires_grad()) throw ArgumentError("optimizer: parameter '" + name + "' does not require grad");
    if (!at::isFloatingType(p.scalar_type()))
      throw ArgumentError("optimizer: parameter '" + name + "' is not floating point");
    if (!seen.insert(name).second) throw ArgumentError("optimizer: duplicate parameter name '" + name + "'");
    decay_.push_back(decays(name));
  }
  state_.resize(params_.size());
}

std::vector<at::Tensor> Optimizer::param_tensors() const {
  std::vector<at::Tensor> v;
  v.reserve(params_.size());
  for (const auto& np : params_) v.push_back(np.second);
  return v;
}

void Optimizer::zero_grad() {
  for (auto& np : params_) np.second.mutable_grad().reset();
}

double Optimizer::apply() {
  const double lr = current_lr();
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    const at::Tensor& g = params_[i].second.grad();
    if (!g.defined()) continue;
    if (g.is_sparse()) throw ArgumentError("optimizer: sparse gradient for '" + params_[i].first + "'");
    if (config_.name == "adamw")
      adamw_update(i, g, lr);
    else
      adafactor_update(i, g, lr);
  }
  ++step_;
  return lr;
}

void Optimizer::adamw_update(size_t i, const at::Tensor& grad, double lr) {
  at::Tensor p = params_[i].second;
  auto& st = state_[i];
  if (st.empty()) {
    st["step"] = at::zeros({1}, at::kLong);
    st["exp_avg"] = at::zeros_like(p, at::MemoryFormat::Preserve);
    st["exp_avg_sq"] = at::zeros_like(p, at::MemoryFormat::Preserve);
  }
  st["step"].add_(1);
  const double t = static_cast<double>(st["step"].item<int64_t>());
  const double b1 = config_.beta1, b2 = config_.beta2;
  const double wd = decay_[i] ? config_.weight_decay : 0.0;
  at::Tensor& m = st["exp_avg"];
  at::Tensor& v = st["exp_avg_sq"];
  const double bc1 = 1 - std::pow(b1, t);
  const double bc2 = 1 - std::pow(b2, t);
  const double step_size = lr / bc1;
  auto fusable = [&](const at::Tensor& x) {
    return x.device().is_cpu() && x.scalar_type() == at::kFloat && x.is_contiguous() && x.numel() == p.numel();
  };
  if (fusable(p) && fusable(grad) && fusable(m) && fusable(v)) {
    // float32 on CPU: the same formula as below in one pass over p, g, m, v (torch.optim.AdamW without foreach
    // makes eight passes and two temporaries; on a 60M-parameter T5 that was ~15% of a training step).
    float* pp = p.data_ptr<float>();
    const float* gp = grad.data_ptr<float>();
    float* mp = m.data_ptr<float>();
    float* vp = v.data_ptr<float>();
    const float decay = static_cast<float>(1 - lr * wd), fb1 = static_cast<float>(b1), fb2 = static_cast<float>(b2);
    const float a1 = static_cast<float>(1 - b1), a2 = static_cast<float>(1 - b2);
    const float sbc2 = static_cast<float>(std::sqrt(bc2)), eps = static_cast<float>(config_.eps);
    const float ss = static_cast<float>(step_size);
    at::parallel_for(0, p.numel(), 1 << 14, [&](int64_t lo, int64_t hi) {
      for (int64_t j = lo; j < hi; ++j) {
        const float gj = gp[j];
        const float mj = mp[j] * fb1 + gj * a1;
        const float vj = vp[j] * fb2 + gj * gj * a2;
        mp[j] = mj;
        vp[j] = vj;
        pp[j] = pp[j] * decay - ss * (mj / (std::sqrt(vj) / sbc2 + eps));
      }
    });
    return;
  }
  p.mul_(1 - lr * wd);
  m.mul_(b1).add_(grad, 1 - b1);
  v.mul_(b2).addcmul_(grad, grad, 1 - b2);
  at::Tensor denom = (v.sqrt() / std::sqrt(bc2)).add_(config_.eps);
  p.addcdiv_(m, denom, -step_size);
}

namespace {
at::Tensor rms(const at::Tensor& t) { return t.norm(2) / std::sqrt(static_cast<double>(t.numel())); }
}  // namespace

void Optimizer::adafactor_update(size_t i, const at::Tensor& grad_in, double base_lr) {
  at::Tensor p = params_[i].second;
  auto& st = state_[i];
  // Half-precision parameters are updated in float32 and copied back (as HF does).
  const bool low = p.scalar_type() != at::kFloat && p.scalar_type() != at::kDouble;
  at::Tensor grad = low ? grad_in.to(at::kFloat) : grad_in;
  at::Tensor pw = low ? p.to(at::kFloat) : p;
  const bool factored = grad.dim() >= 2;
  if (st.empty()) {
    st["step"] = at::zeros({1}, at::kLong);
    if (factored) {
      auto sizes = grad.sizes().vec();
      std::vector<int64_t> row(sizes.begin(), sizes.end() - 1);
      std::vector<int64_t> col(sizes.begin(), sizes.end() - 2);
      col.push_back(sizes.back());
      st["exp_avg_sq_row"] = at::zeros(row, grad.options());
      st["exp_avg_sq_col"] = at::zeros(col, grad.options());
    } else {
      st["exp_avg_sq"] = at::zeros_like(grad, at::MemoryFormat::Contiguous);
    }
  }
  st["step"].add_(1);
  const double t = static_cast<double>(st["step"].item<int64_t>());
  // lr = rel_step * param_scale, param_scale = max(eps2, RMS(p)) when scale_parameter.
  double lr = base_lr;
  if (config_.scale_parameter) lr *= std::max(config_.eps2, rms(pw).item<double>());
  const double beta2t = 1.0 - std::pow(t, config_.decay_rate);
  at::Tensor update = grad.pow(2).add_(config_.eps1);
  if (factored) {
    at::Tensor& r = st["exp_avg_sq_row"];
    at::Tensor& c = st["exp_avg_sq_col"];
    r.mul_(beta2t).add_(update.mean(-1), 1.0 - beta2t);
    c.mul_(beta2t).add_(update.mean(-2), 1.0 - beta2t);
    at::Tensor r_factor = (r / r.mean(-1, /*keepdim=*/true)).rsqrt_().unsqueeze(-1);
    at::Tensor c_factor = c.unsqueeze(-2).rsqrt();
    update = at::mul(r_factor, c_factor);
    update.mul_(grad);
  } else {
    at::Tensor& v = st["exp_avg_sq"];
    v.mul_(beta2t).add_(update, 1.0 - beta2t);
    update = v.rsqrt().mul_(grad);
  }
  update.div_((rms(update) / config_.clip_threshold).clamp_(1.0));
  update.mul_(lr);
  const double wd = decay_[i] ? config_.weight_decay : 0.0;
  if (wd != 0) pw.add_(pw, -wd * lr);
  pw.add_(-update);
  if (low) p.copy_(pw);
}

std::map<std::string, at::Tensor> Optimizer::state_dict() const {
  std::map<std::string, at::Tensor> out;
  for (size_t i = 0; i < params_.size(); ++i)
    for (const auto& [buf, t] : state_[i])
      out["optimizer/" + params_[i].first + "/" + buf] = t.detach().to(at::kCPU).contiguous().clone();
  out["scheduler/step"] = at::full({1}, step_, at::kLong);
  return out;
}

void Optimizer::load_state_dict(const std::map<std::string, at::Tensor>& state) {
  auto it = state.find("scheduler/step");
  if (it == state.end() || it->second.numel() != 1 || it->second.scalar_type() != at::kLong)
    throw ArgumentError("training state: missing or malformed 'scheduler/step'");
  const int64_t step = it->second.item<int64_t>();
  if (step < 0) throw RangeError("training state: 'scheduler/step' is negative");
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < params_.size(); ++i) index[params_[i].first] = i;
  // Buffers each optimizer keeps, to reject foreign or corrupted state.
  const std::set<std::string> known = config_.name == "adamw"
                                          ? std::set<std::string>{"step", "exp_avg", "exp_avg_sq"}
                                          : std::set<std::string>{"step", "exp_avg_sq", "exp_avg_sq_row", "exp_avg_sq_col"};
  std::vector<std::map<std::string, at::Tensor>> fresh(params_.size());
  const std::string prefix = "optimizer/";
  for (const auto& [key, t] : state) {
    if (key.rfind(prefix, 0) != 0) continue;
    const auto slash = key.rfind('/');
    if (slash <= prefix.size()) throw ArgumentError("training state: malformed key '" + key + "'");
    const std::string pname = key.substr(prefix.size(), slash - prefix.size());
    const std::string buf = key.substr(slash + 1);
    auto pi = index.find(pname);
    if (pi == index.end())
      throw ArgumentError("training state: optimizer state for '" + pname + "', which is not a trainable parameter here");
    if (!known.count(buf))
      throw ArgumentError("training state: buffer '" + buf + "' of '" + pname + "' does not belong to " + config_.name);
    const at::Tensor& p = params_[pi->second].second;
    at::Tensor v;
    if (buf == "step") {
      if (t.numel() != 1 || t.scalar_type() != at::kLong)
        throw ArgumentError("training state: '" + key + "' must be one int64");
      v = t.clone();
    } else {
      const bool low = p.scalar_type() != at::kFloat && p.scalar_type() != at::kDouble;
      const auto want_dtype = (config_.name == "adafactor" && low) ? at::kFloat : p.scalar_type();
      if (t.scalar_type() != want_dtype)
        throw ArgumentError("training state: '" + key + "' has dtype " + std::string(c10::toString(t.scalar_type())) +
                            ", expected " + c10::toString(want_dtype));
      std::vector<int64_t> want = p.sizes().vec();
      if (buf == "exp_avg_sq_row") want.pop_back();
      if (buf == "exp_avg_sq_col") want.erase(want.end() - 2);
      if (t.sizes().vec() != want) {
        std::ostringstream os;
        os << "training state: '" << key << "' has shape " << t.sizes() << ", expected " << at::IntArrayRef(want);
        throw ArgumentError(os.str());
      }
      v = t.to(p.device()).clone();
    }
    fresh[pi->second][buf] = v;
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& f = fresh[i];
    if (f.empty()) continue;  // never updated (no gradient so far)
    const bool ok = config_.name == "adamw"
                        ? (f.count("step") && f.count("exp_avg") && f.count("exp_avg_sq") && f.size() == 3)
                        : (f.count("step") && ((f.count("exp_avg_sq") && f.size() == 2) ||
                                               (f.count("exp_avg_sq_row") && f.count("exp_avg_sq_col") && f.size() == 3)));
    if (!ok) throw ArgumentError("training state: incomplete optimizer state for '" + params_[i].first + "'");
    if (config_.name == "adafactor" && (params_[i].second.dim() >= 2) != (f.count("exp_avg_sq_row") == 1))
      throw ArgumentError("training state: factored/unfactored mismatch for '" + params_[i].first + "'");
  }
  state_ = std::move(fresh);
  step_ = step;
}

int64_t Optimizer::state_bytes() const {
  int64_t n = 0;
  for (const auto& st : state_)
    for (const auto& kv : st) n += kv.second.numel() * static_cast<int64_t>(kv.second.element_size());
  return n;
}

}  // namespace instill::train
