// Hypergradients of bilevel problems (DIO, issue 8): d L_meta(theta*(phi), phi) / d phi, where the inner
// parameters theta are (approximately) trained on L_train(theta, phi). Methods are selected by a spec
// string looked up in one registry (hypergrad.cpp, kMethods):
//
//   unroll:K   differentiate through K inner SGD steps theta <- theta - lr * grad L_train (exact)
//   neumann:K  implicit function theorem, inverse Hessian by a K-step Neumann series with step alpha
//              (DIO's method): p = sum_{j=0..K} (I - alpha H)^j v1, hypergrad = direct - alpha (d f/d phi)^T p
//   cg:K       implicit function theorem, (H + damping I) x = v1 solved by K conjugate-gradient iterations,
//              hypergrad = direct - (d f/d phi)^T x; on negative curvature CG stops with the x it has
//              (truncated CG) and sets stats.negative_curvature: use damping on non-convex losses
//   fd         DARTS' finite-difference approximation of one unrolled step with lr
//
// where v1 = d L_meta / d theta, f = d L_train / d theta, H = d f / d theta, and direct = d L_meta / d phi
// (zero when the outer loss does not read phi). Every method uses Hessian-vector products by double
// backward; none forms a Hessian.
//
// Spec grammar: name[:K][,key=value]*, e.g. "neumann:5", "neumann:5,alpha=0.05", "cg:10,damping=0.1",
// "unroll:3,lr=0.1", "fd,eps=0.01,lr=0.1". Keys override the HypergradOptions fields of the same meaning:
// lr (inner_lr), alpha, damping, tol (cg_tol), eps (fd_epsilon). Invalid specs throw ArgumentError /
// RangeError with the spec in the message.
//
// Contract: theta and phi are leaf tensors with requires_grad (e.g. a module's parameters and a soft
// prompt). The loss closures read theta and phi as they are when called and build a fresh graph each
// call. The engine never touches .grad of anything and returns the caller's theta unchanged (bitwise)
// unless options.commit_unrolled is set for unroll:K; "unroll" and "fd" change theta's values in place
// (under NoGradGuard) while they run and restore them, also when a closure throws. The implicit methods
// assume theta is near a minimiser of L_train (that is where the implicit function theorem holds).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace instill {
namespace hypergrad {

using LossFn = std::function<at::Tensor()>;
using LossAtFn = std::function<at::Tensor(const std::vector<at::Tensor>& theta)>;

struct BilevelProblem {
  std::vector<at::Tensor> inner_params;  // theta
  std::vector<at::Tensor> outer_params;  // phi
  LossFn inner_loss;                     // L_train(theta, phi): a scalar, fresh graph each call
  LossFn outer_loss;                     // L_meta(theta) (may also read phi directly)
  // Optional functional forms, evaluated at the given tensors in place of theta (aligned with
  // inner_params). When both are set, unroll:K builds the unrolled graph literally
  // (theta_{k+1} = theta_k - lr * grad, create_graph) and backpropagates through it; otherwise it runs
  // the same differentiation in reverse mode over stored iterates (the result is the same up to
  // rounding; memory is K copies of theta instead of K graphs).
  LossAtFn inner_loss_at;
  LossAtFn outer_loss_at;
  // Data parallelism: each worker's closures see its shard of the batches, and `reduce` replaces each tensor
  // of a list, in place, by its mean over the workers (a bucketed all-reduce). The methods apply it to every
  // first-order gradient, Hessian-vector product and mixed product they compute, so with equal shards the
  // result is the full-batch hypergradient on every worker and the workers' theta stay identical; every
  // worker calls it the same number of times. unroll:K then runs in reverse mode over stored iterates (an
  // all-reduce cannot sit inside a differentiated graph). Empty: one process.
  std::function<void(std::vector<at::Tensor>&)> reduce;
};

struct HypergradOptions {
  double inner_lr = 1e-2;    // spec key lr: unroll and fd step size
  double alpha = 1e-2;       // spec key alpha: Neumann step (needs alpha < 2 / lambda_max(H))
  double damping = 0.0;      // spec key damping: cg solves (H + damping I) x = v1
  double cg_tol = 0.0;       // spec key tol: cg stops when ||r|| <= tol * ||v1|| (0: run all K)
  double fd_epsilon = 0.01;  // spec key eps: fd perturbs by eps / ||v1|| (DARTS)
  bool commit_unrolled = false;  // unroll: leave theta at theta_K instead of restoring it
};

struct HypergradStats {
  int64_t hvp_count = 0;        // double-backward products (Hessian- or mixed-Jacobian-vector)
  int64_t grad_count = 0;       // first-order gradient evaluations (a loss forward + backward)
  int64_t iterations = 0;       // unroll steps, Neumann terms or CG iterations actually run
  double residual = 0.0;        // cg: ||(H + damping I) x - v1|| / ||v1|| at exit (recursive residual)
  bool negative_curvature = false;  // cg: stopped because p^T (H + damping I) p <= 0 (raise damping)
  double seconds = 0.0;         // wall time of compute_hypergradient
};

struct HypergradResult {
  std::vector<at::Tensor> grads;  // d L_meta / d phi, aligned with outer_params, same dtypes/shapes
  HypergradStats stats;
  std::string method;  // registry name, e.g. "neumann"
  int64_t k = 0;       // K used (0 for methods without K)
};

// A parsed spec: the method's registry name, K, and the options with the spec's keys applied.
struct HypergradSpec {
  std::string method;
  int64_t k = 0;
  HypergradOptions options;
};

using MethodFn = std::function<HypergradResult(BilevelProblem&, const HypergradSpec&)>;

struct MethodInfo {
  std::string name;
  bool takes_k;                   // "name:K" accepted
  int64_t default_k;              // K when the spec gives none (ignored when !takes_k)
  std::vector<std::string> keys;  // option keys the method accepts
  std::string summary;
  MethodFn fn;
};

// The registry, in a fixed order.
const std::vector<MethodInfo>& methods();
std::vector<std::string> method_names();

// Parses and validates a spec against the registry; defaults come from `defaults`.
HypergradSpec parse_spec(const std::string& spec, const HypergradOptions& defaults = {});

// Computes d L_meta / d phi with the method named by spec. Validates the problem (non-empty theta and
// phi, defined floating tensors requiring grad, closures set) and throws ArgumentError otherwise.
HypergradResult compute_hypergradient(const std::string& spec, BilevelProblem& problem,
                                      const HypergradOptions& options = {});

// Writes (or adds, when accumulate) result.grads into the .grad of problem.outer_params, so that an
// ordinary torch::optim optimizer over phi can step.
void apply_to_grad(BilevelProblem& problem, const HypergradResult& result, bool accumulate = false);

// --- building blocks (public for tests and other native code) ---

// H v for H = d^2 loss / d params^2, where loss = loss_fn() is evaluated at the current params.
std::vector<at::Tensor> hvp(const LossFn& loss_fn, const std::vector<at::Tensor>& params,
                            const std::vector<at::Tensor>& v);

// sum_i <outputs_i, grad_outputs_i> differentiated w.r.t. inputs; undefined results (inputs not
// reached) become zeros, outputs that do not require grad are skipped.
std::vector<at::Tensor> vjp(const std::vector<at::Tensor>& outputs,
                            const std::vector<at::Tensor>& grad_outputs,
                            const std::vector<at::Tensor>& inputs, bool retain_graph,
                            bool create_graph = false);

}  // namespace hypergrad
}  // namespace instill
