// Hypergradients of bilevel problems (DIO, native/core/dio): d L_meta(theta*(phi), phi) / d phi, where the inner
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
//   sama       first-order, optimizer-aware (SAMA, Choe et al. NeurIPS 2023; Betty's hypergradient/sama.py): the
//              base Jacobian's inverse is taken as the identity and the inner optimizer's update rule enters the
//              mixed term: hypergrad = direct - (d f/d phi)^T P v1, P = d(update)/d(gradient) (diagonal: AdamW's
//              exact derivative when BilevelProblem::precondition is set, else lr I), the mixed product by
//              central differences of grad_phi L_train at theta +- e P v1 (e = eps / ||P v1||): no second-order
//              autograd at all. An approximation: its error against the exact hypergradient is measured in
//              tests/test_hypergrad.cpp (ridge problem) and reported in the README, not assumed small.
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
//
// Randomness (dropout): the closures may draw from the default generators (CPU, and the CUDA devices of theta).
// Within one hypergradient every call of inner_loss sees the same generator state (so the same dropout masks),
// and every call of outer_loss its own fixed state; unroll:K's step k sees the state it had when step k first ran,
// so the reverse pass differentiates the trajectory actually taken. On return the generators stand where the
// last fresh draw left them (deterministic, so runs resume bit for bit). A finite difference or a recomputed
// gradient thus never mixes two dropout masks.
//
// Reusing the inner step (BilevelProblem::inner_grad, set by inner_gradient()): a trainer computes the training
// gradient f once (with its graph when the method differentiates it), takes the hypergradient at theta_t on it, and
// then gives f.detach() to its optimizer; the methods then pay no gradient of their own for f.
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

// The states of the default generators that dropout draws from (CPU, and the CUDA devices of `tensors`).
class RngState {
 public:
  static RngState capture(const std::vector<at::Tensor>& tensors);
  void restore() const;
  bool empty() const { return states_.empty(); }

 private:
  std::vector<std::pair<at::Generator, at::Tensor>> states_;
};

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
  // Optional: f = d L_train / d theta at the current theta (this worker's shard, not reduced), computed by the caller
  // with inner_gradient(), with its graph when the method differentiates it (MethodInfo::uses_inner_graph), and the
  // generator state it drew its dropout masks from. The methods then reuse it instead of computing their own.
  std::vector<at::Tensor> inner_grad;
  RngState inner_rng;
  // Optional (sama): P v for the inner optimizer's update derivative P = d update / d gradient (diagonal). Empty:
  // P = lr I (plain SGD with the spec's lr).
  std::function<std::vector<at::Tensor>(const std::vector<at::Tensor>& v)> precondition;
};

struct HypergradOptions {
  double inner_lr = 1e-2;    // spec key lr: unroll and fd step size, sama's P without a preconditioner
  double alpha = 1e-2;       // spec key alpha: Neumann step (needs alpha < 2 / lambda_max(H))
  double damping = 0.0;      // spec key damping: cg solves (H + damping I) x = v1
  double cg_tol = 0.0;       // spec key tol: cg stops when ||r|| <= tol * ||v1|| (0: run all K)
  double fd_epsilon = 0.01;  // spec key eps: fd perturbs by eps / ||v1|| (DARTS), sama by eps / ||P v1||
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
  // L_meta (detached scalar, this worker's shard) where v1 was taken: theta (implicit methods, sama), the look-ahead
  // theta' (fd), theta_K (unroll). Trainers log it instead of running another forward of the meta batch.
  at::Tensor outer_loss;
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
  bool uses_inner_graph;          // differentiates f = d L_train / d theta (inner_gradient keeps its graph)
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

// Computes f = d L_train / d theta at the current theta into problem.inner_grad (create_graph when the method of
// `spec` differentiates it, else a plain gradient) and the generator state it used into problem.inner_rng; returns
// L_train (detached). Then compute_hypergradient(spec, problem) reuses f, and the caller may step its optimizer on
// f.detach() afterwards (after compute_hypergradient: the methods read theta as it is).
at::Tensor inner_gradient(const std::string& spec, BilevelProblem& problem, const HypergradOptions& options = {});

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
