// Hypergradient engine: the registry, spec parsing, and the four methods (see hypergrad.h).
#include "hypergrad/hypergrad.h"

#include <torch/torch.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>
#include <mutex>
#include <unordered_set>

#include "common/errors.h"

namespace instill {
namespace hypergrad {
namespace {

using TensorList = std::vector<at::Tensor>;

// ---------- list arithmetic (no graph: every operand here is detached) ----------

TensorList zeros_like(const TensorList& xs) {
  TensorList out;
  out.reserve(xs.size());
  for (const auto& x : xs) out.push_back(torch::zeros_like(x, torch::MemoryFormat::Contiguous).detach());
  return out;
}

TensorList clone_detached(const TensorList& xs) {
  TensorList out;
  out.reserve(xs.size());
  for (const auto& x : xs) out.push_back(x.detach().clone());
  return out;
}

// y += a * x, in place
void axpy_(TensorList& y, double a, const TensorList& x) {
  for (size_t i = 0; i < y.size(); ++i) y[i].add_(x[i], a);
}

double dot(const TensorList& a, const TensorList& b) {
  double s = 0;
  // at::dot on flat views: no temporaries (accumulates in the tensors' dtype)
  for (size_t i = 0; i < a.size(); ++i) s += at::dot(a[i].reshape({-1}), b[i].reshape({-1})).item<double>();
  return s;
}

double norm(const TensorList& a) { return std::sqrt(dot(a, a)); }

// theta <- values, in place without recording (theta are leaves requiring grad).
void assign_(const TensorList& theta, const TensorList& values) {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < theta.size(); ++i) theta[i].copy_(values[i]);
}

// Restores theta's values when it goes out of scope (normal exit or exception) unless released.
class ThetaGuard {
 public:
  explicit ThetaGuard(const TensorList& theta) : theta_(theta), saved_(clone_detached(theta)) {}
  ~ThetaGuard() {
    if (active_) {
      try {
        assign_(theta_, saved_);
      } catch (...) {
      }
    }
  }
  const TensorList& saved() const { return saved_; }
  void restore() {
    assign_(theta_, saved_);
    active_ = false;
  }
  void release() { active_ = false; }

 private:
  TensorList theta_;
  TensorList saved_;
  bool active_ = true;
};

TensorList concat(const TensorList& a, const TensorList& b) {
  TensorList out(a);
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

void split(const TensorList& all, size_t n, TensorList& first, TensorList& second) {
  first.assign(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n));
  second.assign(all.begin() + static_cast<std::ptrdiff_t>(n), all.end());
}

at::Tensor checked_scalar(const at::Tensor& loss, const char* which) {
  if (!loss.defined()) throw ArgumentError(std::string("hypergradient: ") + which + " returned an undefined tensor");
  if (loss.numel() != 1)
    throw ArgumentError(std::string("hypergradient: ") + which + " must return a scalar, got " +
                        std::to_string(loss.numel()) + " elements");
  return loss.reshape({});
}

TensorList grad_of(const at::Tensor& loss, const TensorList& inputs, bool create_graph) {
  return vjp({loss}, {torch::ones_like(loss)}, inputs, /*retain_graph=*/create_graph, create_graph);
}

// The mean over data-parallel workers (BilevelProblem::reduce) of a gradient-like list; identity alone.
TensorList& reduced(const BilevelProblem& pb, TensorList& xs) {
  if (pb.reduce) pb.reduce(xs);
  return xs;
}
TensorList reduced(const BilevelProblem& pb, TensorList&& xs) {
  if (pb.reduce) pb.reduce(xs);
  return std::move(xs);
}

// ---------- randomness: every call of a closure sees the generator state of its slot ----------

// Slot 0: inner_loss (all calls; unroll's step 0 too), slot k: unroll's step k, slot -1: outer_loss. The first call
// of a slot captures the state it starts from; later calls restore it. finish() leaves the generators where the
// last first call left them.
class Randomness {
 public:
  explicit Randomness(const BilevelProblem& pb)
      : tensors_(pb.inner_params), frontier_(RngState::capture(pb.inner_params)) {
    if (!pb.inner_grad.empty() && !pb.inner_rng.empty()) slots_.emplace(0, pb.inner_rng);
  }
  template <class F>
  at::Tensor call(int64_t slot, F&& f) {
    auto it = slots_.find(slot);
    if (it != slots_.end()) {
      it->second.restore();
      return f();
    }
    slots_.emplace(slot, RngState::capture(tensors_));
    at::Tensor out = f();
    frontier_ = RngState::capture(tensors_);
    return out;
  }
  at::Tensor inner(const BilevelProblem& pb, int64_t slot = 0) {
    return call(slot, [&] { return checked_scalar(pb.inner_loss(), "inner_loss"); });
  }
  at::Tensor outer(const BilevelProblem& pb) {
    return call(-1, [&] { return checked_scalar(pb.outer_loss(), "outer_loss"); });
  }
  void finish() { frontier_.restore(); }

 private:
  TensorList tensors_;
  std::map<int64_t, RngState> slots_;
  RngState frontier_;
};

// ---------- the methods ----------

HypergradResult unroll_functional(BilevelProblem& pb, const HypergradSpec& spec) {
  HypergradResult res;
  Randomness rng(pb);
  const double lr = spec.options.inner_lr;
  TensorList th;
  for (const auto& t : pb.inner_params) th.push_back(t.detach().requires_grad_(true));
  for (int64_t k = 0; k < spec.k; ++k) {
    at::Tensor loss = rng.call(k, [&] { return checked_scalar(pb.inner_loss_at(th), "inner_loss_at"); });
    TensorList g = grad_of(loss, th, /*create_graph=*/true);
    ++res.stats.grad_count;
    TensorList next;
    next.reserve(th.size());
    for (size_t i = 0; i < th.size(); ++i) next.push_back(th[i] - lr * g[i]);
    th = std::move(next);
    ++res.stats.iterations;
  }
  at::Tensor outer = rng.call(-1, [&] { return checked_scalar(pb.outer_loss_at(th), "outer_loss_at"); });
  res.outer_loss = outer.detach();
  res.grads = grad_of(outer, pb.outer_params, /*create_graph=*/false);
  ++res.stats.grad_count;
  res.stats.hvp_count = spec.k;  // the backward pass crosses each step's gradient graph once
  if (spec.options.commit_unrolled) assign_(pb.inner_params, th);
  rng.finish();
  return res;
}

// Reverse-mode differentiation through K SGD steps over stored iterates (Maclaurin et al. 2015,
// Franceschi et al. 2017): with a_K = dL_meta/dtheta_K,
//   dL/dphi = direct - lr * sum_k (d g_k/d phi)^T a_{k+1},  a_k = a_{k+1} - lr * H_k a_{k+1},
// each step's (H_k a, (d g_k/d phi)^T a) computed by one double backward at the stored theta_k, with the generator
// state step k first ran with (the same dropout masks: the trajectory taken is the one differentiated).
HypergradResult unroll_reverse(BilevelProblem& pb, const HypergradSpec& spec) {
  HypergradResult res;
  Randomness rng(pb);
  const double lr = spec.options.inner_lr;
  const TensorList& theta = pb.inner_params;
  const TensorList& phi = pb.outer_params;
  ThetaGuard guard(theta);
  std::vector<TensorList> iterates(static_cast<size_t>(spec.k));
  for (int64_t k = 0; k < spec.k; ++k) {
    iterates[k] = k == 0 ? guard.saved() : clone_detached(theta);
    TensorList g;
    if (k == 0 && !pb.inner_grad.empty()) {
      g = reduced(pb, clone_detached(pb.inner_grad));  // the caller's f at theta_0 (its shard: reduce a copy)
    } else {
      g = reduced(pb, grad_of(rng.inner(pb, k), theta, false));
      ++res.stats.grad_count;
    }
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < theta.size(); ++i) theta[i].sub_(g[i], lr);
  }
  TensorList a, hyper;
  at::Tensor outer = rng.outer(pb);
  res.outer_loss = outer.detach();
  split(reduced(pb, grad_of(outer, concat(theta, phi), false)), theta.size(), a, hyper);
  ++res.stats.grad_count;
  TensorList theta_k = spec.options.commit_unrolled ? clone_detached(theta) : TensorList{};
  const TensorList all = concat(theta, phi);
  for (int64_t k = spec.k - 1; k >= 0; --k) {
    assign_(theta, iterates[k]);
    if (k > 0) iterates[k].clear();
    TensorList g = grad_of(rng.inner(pb, k), theta, true);
    ++res.stats.grad_count;
    TensorList ha, ja;
    split(reduced(pb, vjp(g, a, all, /*retain_graph=*/false)), theta.size(), ha, ja);
    ++res.stats.hvp_count;
    axpy_(hyper, -lr, ja);
    axpy_(a, -lr, ha);
    ++res.stats.iterations;
  }
  if (spec.options.commit_unrolled) {
    assign_(theta, theta_k);
    guard.release();
  } else {
    guard.restore();
  }
  rng.finish();
  res.grads = std::move(hyper);
  return res;
}

HypergradResult unroll_method(BilevelProblem& pb, const HypergradSpec& spec) {
  if (pb.inner_loss_at && pb.outer_loss_at && !pb.reduce) return unroll_functional(pb, spec);
  return unroll_reverse(pb, spec);
}

// v1 = d L_meta / d theta and the direct term at the current theta (reduced), and L_meta.
void outer_gradient(BilevelProblem& pb, Randomness& rng, HypergradResult& res, TensorList& v1, TensorList& direct) {
  at::Tensor outer = rng.outer(pb);
  res.outer_loss = outer.detach();
  split(reduced(pb, grad_of(outer, concat(pb.inner_params, pb.outer_params), false)), pb.inner_params.size(), v1,
        direct);
  ++res.stats.grad_count;
}

// Shared start of the implicit methods: v1 and the direct term at the current theta, and f with graph (the
// caller's, when BilevelProblem::inner_grad is set).
struct ImplicitStart {
  TensorList v1, direct, f;
};

ImplicitStart implicit_start(BilevelProblem& pb, Randomness& rng, HypergradResult& res) {
  ImplicitStart s;
  outer_gradient(pb, rng, res, s.v1, s.direct);
  if (!pb.inner_grad.empty()) {
    if (std::none_of(pb.inner_grad.begin(), pb.inner_grad.end(), [](const at::Tensor& t) { return t.requires_grad(); }))
      throw ArgumentError("hypergradient " + res.method +
                          ": BilevelProblem.inner_grad has no graph (compute it with hypergrad::inner_gradient for "
                          "this method, or with create_graph)");
    s.f = pb.inner_grad;
  } else {
    s.f = grad_of(rng.inner(pb), pb.inner_params, /*create_graph=*/true);
    ++res.stats.grad_count;
  }
  return s;
}

HypergradResult neumann_method(BilevelProblem& pb, const HypergradSpec& spec) {
  HypergradResult res;
  res.method = spec.method;
  Randomness rng(pb);
  const double alpha = spec.options.alpha;
  ImplicitStart s = implicit_start(pb, rng, res);
  TensorList v = s.v1;
  TensorList p = clone_detached(s.v1);
  for (int64_t k = 0; k < spec.k; ++k) {
    TensorList hv = reduced(pb, vjp(s.f, v, pb.inner_params, /*retain_graph=*/true));
    ++res.stats.hvp_count;
    axpy_(v, -alpha, hv);  // v was v1 (owned by s) or a previous iterate: in-place is safe
    axpy_(p, 1.0, v);
    ++res.stats.iterations;
  }
  // The caller's graph is kept (it owns f); our own is freed by this last product.
  TensorList jp = reduced(pb, vjp(s.f, p, pb.outer_params, /*retain_graph=*/!pb.inner_grad.empty()));
  ++res.stats.hvp_count;
  axpy_(s.direct, -alpha, jp);
  res.grads = std::move(s.direct);
  rng.finish();
  return res;
}

HypergradResult cg_method(BilevelProblem& pb, const HypergradSpec& spec) {
  HypergradResult res;
  res.method = spec.method;
  Randomness rng(pb);
  const double damping = spec.options.damping;
  ImplicitStart s = implicit_start(pb, rng, res);
  const double bnorm = norm(s.v1);
  TensorList x = zeros_like(s.v1);
  TensorList r = clone_detached(s.v1);
  TensorList p = clone_detached(s.v1);
  double rs = bnorm * bnorm;
  for (int64_t k = 0; k < spec.k && rs > 0; ++k) {
    if (std::sqrt(rs) <= spec.options.cg_tol * bnorm) break;
    TensorList ap = reduced(pb, vjp(s.f, p, pb.inner_params, /*retain_graph=*/true));
    ++res.stats.hvp_count;
    if (damping != 0) axpy_(ap, damping, p);
    const double pap = dot(p, ap);
    ++res.stats.iterations;
    if (!(pap > 0)) {  // negative curvature (non-convex L_train): stop with the current x (truncated CG)
      res.stats.negative_curvature = true;
      break;
    }
    const double step = rs / pap;
    axpy_(x, step, p);
    axpy_(r, -step, ap);
    const double rs_new = dot(r, r);
    for (size_t i = 0; i < p.size(); ++i) p[i].mul_(rs_new / rs).add_(r[i]);
    rs = rs_new;
  }
  res.stats.residual = bnorm > 0 ? std::sqrt(rs) / bnorm : 0.0;
  TensorList jx = reduced(pb, vjp(s.f, x, pb.outer_params, /*retain_graph=*/!pb.inner_grad.empty()));
  ++res.stats.hvp_count;
  axpy_(s.direct, -1.0, jx);
  res.grads = std::move(s.direct);
  rng.finish();
  return res;
}

// Central differences of grad_phi L_train along w: (grad_phi L(theta + e w) - grad_phi L(theta - e w)) / (2 e) with
// e = eps / ||w||, from `base` (theta is left at base + ... : the caller restores it). Both calls see the same masks.
// Returns zeros when w = 0.
TensorList mixed_by_differences(BilevelProblem& pb, Randomness& rng, HypergradResult& res, const TensorList& base,
                                const TensorList& w, double eps) {
  const TensorList& theta = pb.inner_params;
  const TensorList& phi = pb.outer_params;
  const double wnorm = norm(w);
  if (!(wnorm > 0)) return zeros_like(phi);
  const double e = eps / wnorm;
  TensorList plus = clone_detached(base);
  axpy_(plus, e, w);
  assign_(theta, plus);
  plus.clear();
  TensorList gp = reduced(pb, grad_of(rng.inner(pb), phi, false));
  TensorList minus = clone_detached(base);
  axpy_(minus, -e, w);
  assign_(theta, minus);
  minus.clear();
  TensorList gm = reduced(pb, grad_of(rng.inner(pb), phi, false));
  res.stats.grad_count += 2;
  for (size_t i = 0; i < gp.size(); ++i) gp[i].sub_(gm[i]).mul_(1.0 / (2 * e));
  return gp;
}

// DARTS (Liu et al. 2019, eq. 7-8): theta' = theta - lr g; v1, direct at theta';
// hypergrad = direct - lr * (grad_phi L_train(theta + e v1) - grad_phi L_train(theta - e v1)) / (2 e),
// e = eps / ||v1||. g and both differences see the same dropout masks.
HypergradResult fd_method(BilevelProblem& pb, const HypergradSpec& spec) {
  HypergradResult res;
  Randomness rng(pb);
  const double lr = spec.options.inner_lr;
  const TensorList& theta = pb.inner_params;
  ThetaGuard guard(theta);
  TensorList g;
  if (!pb.inner_grad.empty()) {
    g = reduced(pb, clone_detached(pb.inner_grad));
  } else {
    g = reduced(pb, grad_of(rng.inner(pb), theta, false));
    ++res.stats.grad_count;
  }
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < theta.size(); ++i) theta[i].sub_(g[i], lr);
  }
  g.clear();
  TensorList v1, direct;
  outer_gradient(pb, rng, res, v1, direct);
  TensorList mixed = mixed_by_differences(pb, rng, res, guard.saved(), v1, spec.options.fd_epsilon);
  axpy_(direct, -lr, mixed);
  guard.restore();
  rng.finish();
  res.stats.iterations = 1;
  res.grads = std::move(direct);
  return res;
}

// SAMA (see hypergrad.h): hypergrad = direct - (d f/d phi)^T P v1 at theta, P the inner optimizer's update
// derivative (BilevelProblem::precondition) or lr I; the mixed product by central differences.
HypergradResult sama_method(BilevelProblem& pb, const HypergradSpec& spec) {
  HypergradResult res;
  Randomness rng(pb);
  ThetaGuard guard(pb.inner_params);
  TensorList v1, direct;
  outer_gradient(pb, rng, res, v1, direct);
  TensorList w;
  if (pb.precondition) {
    w = pb.precondition(v1);
    if (w.size() != v1.size())
      throw ArgumentError("hypergradient sama: BilevelProblem.precondition returned " + std::to_string(w.size()) +
                          " tensors for " + std::to_string(v1.size()) + " inner parameters");
    for (auto& t : w) t = t.detach();
  } else {
    w = std::move(v1);
    for (auto& t : w) t.mul_(spec.options.inner_lr);
  }
  TensorList mixed = mixed_by_differences(pb, rng, res, guard.saved(), w, spec.options.fd_epsilon);
  axpy_(direct, -1.0, mixed);
  guard.restore();
  rng.finish();
  res.stats.iterations = 1;
  res.grads = std::move(direct);
  return res;
}

// ---------- the registry: adding a method is one entry ----------

const std::vector<MethodInfo>& registry() {
  static const std::vector<MethodInfo> table = {
      {"unroll", true, 1, {"lr"}, "differentiate through K inner SGD steps with step lr", false, unroll_method},
      {"neumann", true, 1, {"alpha"}, "implicit function theorem, K-step Neumann series with step alpha (DIO)", true,
       neumann_method},
      {"cg", true, 10, {"damping", "tol"}, "implicit function theorem, K conjugate-gradient iterations on H + damping I",
       true, cg_method},
      {"fd", false, 0, {"lr", "eps"}, "DARTS finite-difference approximation of one unrolled step with lr", false,
       fd_method},
      {"sama", false, 0, {"lr", "eps"},
       "SAMA: first order, identity base Jacobian, the inner optimizer's update derivative in the mixed term", false,
       sama_method},
  };
  return table;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\n\r");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\n\r");
  return s.substr(b, e - b + 1);
}

std::string join(const std::vector<std::string>& xs) {
  std::string out;
  for (size_t i = 0; i < xs.size(); ++i) out += (i ? ", " : "") + xs[i];
  return out;
}

std::string spec_error(const std::string& spec, const std::string& what) {
  return "hypergradient spec \"" + spec + "\": " + what;
}

double parse_number(const std::string& spec, const std::string& key, const std::string& text) {
  if (text.empty()) throw ArgumentError(spec_error(spec, "option " + key + " has no value"));
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || errno == ERANGE || !std::isfinite(v))
    throw ArgumentError(spec_error(spec, "option " + key + "=" + text + " is not a finite number"));
  return v;
}

void check_options(const std::string& spec, const HypergradOptions& o) {
  auto bad = [&](const std::string& key, double v, const char* need) {
    std::ostringstream os;
    os << key << "=" << v << " must be " << need;
    throw RangeError(spec_error(spec, os.str()));
  };
  if (!(o.inner_lr > 0) || !std::isfinite(o.inner_lr)) bad("lr", o.inner_lr, "> 0");
  if (!(o.alpha > 0) || !std::isfinite(o.alpha)) bad("alpha", o.alpha, "> 0");
  if (!(o.damping >= 0) || !std::isfinite(o.damping)) bad("damping", o.damping, ">= 0");
  if (!(o.cg_tol >= 0) || !std::isfinite(o.cg_tol)) bad("tol", o.cg_tol, ">= 0");
  if (!(o.fd_epsilon > 0) || !std::isfinite(o.fd_epsilon)) bad("eps", o.fd_epsilon, "> 0");
}

void check_tensors(const TensorList& ts, const char* field) {
  if (ts.empty()) throw ArgumentError(std::string("hypergradient: BilevelProblem.") + field + " is empty");
  for (size_t i = 0; i < ts.size(); ++i) {
    const auto& t = ts[i];
    std::string where = std::string("hypergradient: BilevelProblem.") + field + "[" + std::to_string(i) + "]";
    if (!t.defined()) throw ArgumentError(where + " is undefined");
    if (!t.is_floating_point()) throw ArgumentError(where + " is not a floating-point tensor");
    if (!t.requires_grad()) throw ArgumentError(where + " does not require grad");
  }
}

void check_problem(const BilevelProblem& pb) {
  check_tensors(pb.inner_params, "inner_params");
  check_tensors(pb.outer_params, "outer_params");
  if (!pb.inner_loss) throw ArgumentError("hypergradient: BilevelProblem.inner_loss is not set");
  if (!pb.outer_loss) throw ArgumentError("hypergradient: BilevelProblem.outer_loss is not set");
  if (static_cast<bool>(pb.inner_loss_at) != static_cast<bool>(pb.outer_loss_at))
    throw ArgumentError("hypergradient: set both BilevelProblem.inner_loss_at and outer_loss_at, or neither");
  if (!pb.inner_grad.empty()) {
    if (pb.inner_grad.size() != pb.inner_params.size())
      throw ArgumentError("hypergradient: BilevelProblem.inner_grad has " + std::to_string(pb.inner_grad.size()) +
                          " tensors, inner_params " + std::to_string(pb.inner_params.size()));
    for (size_t i = 0; i < pb.inner_grad.size(); ++i)
      if (!pb.inner_grad[i].defined() || !pb.inner_grad[i].sizes().equals(pb.inner_params[i].sizes()))
        throw ArgumentError("hypergradient: BilevelProblem.inner_grad[" + std::to_string(i) +
                            "] is undefined or not shaped like inner_params[" + std::to_string(i) + "]");
  }
  std::unordered_set<const void*> seen;
  for (const auto* list : {&pb.inner_params, &pb.outer_params})
    for (const auto& t : *list)
      if (!seen.insert(t.unsafeGetTensorImpl()).second)
        throw ArgumentError("hypergradient: a tensor appears twice in inner_params/outer_params");
}

}  // namespace

std::vector<at::Tensor> vjp(const std::vector<at::Tensor>& outputs, const std::vector<at::Tensor>& grad_outputs,
                            const std::vector<at::Tensor>& inputs, bool retain_graph, bool create_graph) {
  if (outputs.size() != grad_outputs.size())
    throw ArgumentError("vjp: outputs and grad_outputs differ in length");
  TensorList outs, gos;
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (outputs[i].defined() && outputs[i].requires_grad()) {
      outs.push_back(outputs[i]);
      gos.push_back(grad_outputs[i]);
    }
  }
  TensorList result;
  if (!outs.empty()) {
    torch::AutoGradMode enable(true);
    result = torch::autograd::grad(outs, inputs, gos, retain_graph, create_graph, /*allow_unused=*/true);
  } else {
    result.resize(inputs.size());
  }
  for (size_t i = 0; i < result.size(); ++i)
    if (!result[i].defined()) result[i] = torch::zeros_like(inputs[i]).detach();
  return result;
}

std::vector<at::Tensor> hvp(const LossFn& loss_fn, const std::vector<at::Tensor>& params,
                            const std::vector<at::Tensor>& v) {
  if (v.size() != params.size()) throw ArgumentError("hvp: v and params differ in length");
  torch::AutoGradMode enable(true);
  at::Tensor loss = checked_scalar(loss_fn(), "hvp loss");
  TensorList g = grad_of(loss, params, /*create_graph=*/true);
  return vjp(g, v, params, /*retain_graph=*/false);
}

RngState RngState::capture(const std::vector<at::Tensor>& tensors) {
  RngState s;
  std::vector<at::Device> devices{at::Device(at::kCPU)};
  for (const auto& t : tensors)
    if (t.defined() && t.is_cuda() && std::find(devices.begin(), devices.end(), t.device()) == devices.end())
      devices.push_back(t.device());
  for (const auto& d : devices) {
    at::Generator gen = at::globalContext().defaultGenerator(d);
    std::lock_guard<std::mutex> lock(gen.mutex());
    s.states_.emplace_back(gen, gen.get_state());
  }
  return s;
}

void RngState::restore() const {
  for (const auto& [gen, state] : states_) {
    at::Generator g = gen;
    std::lock_guard<std::mutex> lock(g.mutex());
    g.set_state(state);
  }
}

// The registry entry of a method name; nullptr when unknown (parse_spec has already refused unknown names).
static const MethodInfo* find_method(const std::string& name) {
  for (const auto& m : registry())
    if (m.name == name) return &m;
  return nullptr;
}

at::Tensor inner_gradient(const std::string& spec_text, BilevelProblem& problem, const HypergradOptions& options) {
  HypergradSpec spec = parse_spec(spec_text, options);
  check_problem(problem);
  const MethodInfo* info = find_method(spec.method);
  torch::AutoGradMode enable(true);
  problem.inner_grad.clear();
  problem.inner_rng = RngState::capture(problem.inner_params);
  at::Tensor loss = checked_scalar(problem.inner_loss(), "inner_loss");
  problem.inner_grad = grad_of(loss, problem.inner_params, /*create_graph=*/info->uses_inner_graph);
  return loss.detach();
}

const std::vector<MethodInfo>& methods() { return registry(); }

std::vector<std::string> method_names() {
  std::vector<std::string> names;
  for (const auto& m : registry()) names.push_back(m.name);
  return names;
}

HypergradSpec parse_spec(const std::string& spec_in, const HypergradOptions& defaults) {
  const std::string spec = trim(spec_in);
  std::vector<std::string> parts;
  {
    std::string cur;
    for (char c : spec) {
      if (c == ',') {
        parts.push_back(trim(cur));
        cur.clear();
      } else {
        cur += c;
      }
    }
    parts.push_back(trim(cur));
  }
  std::string head = parts[0];
  std::string name = head, ktext;
  bool has_k = false;
  size_t colon = head.find(':');
  if (colon != std::string::npos) {
    name = trim(head.substr(0, colon));
    ktext = trim(head.substr(colon + 1));
    has_k = true;
  }
  if (name.empty())
    throw ArgumentError(spec_error(spec_in, "no method name (expected name[:K][,key=value]*, methods: " +
                                                join(method_names()) + ")"));
  const MethodInfo* info = find_method(name);
  if (!info) throw ArgumentError(spec_error(spec_in, "unknown method '" + name + "' (known: " + join(method_names()) + ")"));

  HypergradSpec out;
  out.method = info->name;
  out.options = defaults;
  out.k = info->takes_k ? info->default_k : 0;
  if (has_k) {
    if (!info->takes_k) throw ArgumentError(spec_error(spec_in, "method '" + name + "' takes no K"));
    if (ktext.empty() || ktext.size() > 9 || !std::all_of(ktext.begin(), ktext.end(), [](char c) { return c >= '0' && c <= '9'; }))
      throw ArgumentError(spec_error(spec_in, "K '" + ktext + "' is not a positive integer"));
    out.k = std::stoll(ktext);
    if (out.k < 1 || out.k > 100000) throw RangeError(spec_error(spec_in, "K=" + ktext + " must be in [1, 100000]"));
  }
  std::set<std::string> given;
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string& kv = parts[i];
    size_t eq = kv.find('=');
    if (kv.empty() || eq == std::string::npos)
      throw ArgumentError(spec_error(spec_in, "option '" + kv + "' is not key=value"));
    std::string key = trim(kv.substr(0, eq)), value = trim(kv.substr(eq + 1));
    if (std::find(info->keys.begin(), info->keys.end(), key) == info->keys.end())
      throw ArgumentError(spec_error(spec_in, "method '" + name + "' has no option '" + key + "' (accepted: " +
                                                  join(info->keys) + ")"));
    if (!given.insert(key).second) throw ArgumentError(spec_error(spec_in, "option '" + key + "' given twice"));
    double v = parse_number(spec_in, key, value);
    if (key == "lr") out.options.inner_lr = v;
    else if (key == "alpha") out.options.alpha = v;
    else if (key == "damping") out.options.damping = v;
    else if (key == "tol") out.options.cg_tol = v;
    else if (key == "eps") out.options.fd_epsilon = v;
    else throw ArgumentError(spec_error(spec_in, "option '" + key + "' is registered but not handled"));
  }
  check_options(spec_in, out.options);
  return out;
}

HypergradResult compute_hypergradient(const std::string& spec_text, BilevelProblem& problem,
                                      const HypergradOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  HypergradSpec spec = parse_spec(spec_text, options);
  check_problem(problem);
  const MethodInfo* info = find_method(spec.method);
  torch::AutoGradMode enable(true);
  HypergradResult res = info->fn(problem, spec);
  if (res.grads.size() != problem.outer_params.size())
    throw std::logic_error("hypergradient " + spec.method + ": result not aligned with outer_params");
  for (auto& g : res.grads) g = g.detach();
  res.method = spec.method;
  res.k = spec.k;
  res.stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

void apply_to_grad(BilevelProblem& problem, const HypergradResult& result, bool accumulate) {
  if (result.grads.size() != problem.outer_params.size())
    throw ArgumentError("apply_to_grad: result has " + std::to_string(result.grads.size()) +
                        " tensors, outer_params has " + std::to_string(problem.outer_params.size()));
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < result.grads.size(); ++i) {
    at::Tensor& phi = problem.outer_params[i];
    const at::Tensor& g = result.grads[i];
    if (!g.sizes().equals(phi.sizes()))
      throw ArgumentError("apply_to_grad: result.grads[" + std::to_string(i) + "] has the wrong shape");
    if (accumulate && phi.grad().defined()) {
      phi.mutable_grad().add_(g.to(phi.grad().options()));
    } else {
      phi.mutable_grad() = g.detach().to(phi.options()).clone();
    }
  }
}

}  // namespace hypergrad
}  // namespace instill
