// Hypergradient engine (hypergrad/hypergrad.h): every method against an independent reference, in float64.
//  - ridge regression with learnable per-feature log-regularisation phi and learnable training inputs
//    Delta: the inner optimum has a closed form, so the analytic hypergradient is known (an explicit formula
//    for phi, autograd through a direct linear solve for Delta); neumann:K and cg:K converge to it.
//  - unroll:K equals central finite differences through K re-run SGD steps (both execution paths).
//  - fd (DARTS) is close to unroll:1; hvp equals finite differences of gradients.
#include <torch/torch.h>

#include <cmath>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <string>
#include <thread>

#include "common/errors.h"
#include "hypergrad/hypergrad.h"
#include "tests/check.h"

using instill::hypergrad::BilevelProblem;
using instill::hypergrad::HypergradOptions;
using instill::hypergrad::compute_hypergradient;
using TensorList = std::vector<at::Tensor>;

namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);

double rel_err(const TensorList& a, const TensorList& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]).pow(2).sum().item<double>();
    den += b[i].pow(2).sum().item<double>();
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

// Ridge regression:
//   L_train(w; phi, Delta) = 1/(2n) ||(X + Delta) w - y||^2 + 1/2 sum_j exp(phi_j) w_j^2
//   L_meta(w; phi)         = 1/(2m) ||Xv w - yv||^2 + c/2 ||phi||^2      (c: a direct dependence on phi)
struct Ridge {
  int64_t n = 40, m = 30, d = 6;
  double c = 0.05;
  at::Tensor X, y, Xv, yv;
  at::Tensor w, phi, delta;  // theta = {w}; outer = {phi, delta}
  BilevelProblem pb;

  explicit Ridge(uint64_t seed = 0) {
    torch::manual_seed(seed);
    X = torch::randn({n, d}, kF64);
    y = X.matmul(torch::randn({d}, kF64)) + 0.3 * torch::randn({n}, kF64);
    Xv = torch::randn({m, d}, kF64);
    yv = Xv.matmul(torch::randn({d}, kF64)) + 0.3 * torch::randn({m}, kF64);
    phi = (torch::rand({d}, kF64) * 1.5 - 2.0).requires_grad_(true);  // lambda in [0.02, 0.6]
    delta = (0.05 * torch::randn({n, d}, kF64)).requires_grad_(true);
    w = torch::zeros({d}, kF64).requires_grad_(true);
    pb.inner_params = {w};
    pb.outer_params = {phi, delta};
    pb.inner_loss = [this] { return inner_at({w}); };
    pb.outer_loss = [this] { return outer_at({w}); };
  }
  at::Tensor inner_at(const TensorList& th) const {
    auto r = (X + delta).matmul(th[0]) - y;
    return r.pow(2).sum() / (2.0 * n) + 0.5 * (phi.exp() * th[0].pow(2)).sum();
  }
  at::Tensor outer_at(const TensorList& th) const {
    auto r = Xv.matmul(th[0]) - yv;
    return r.pow(2).sum() / (2.0 * m) + 0.5 * c * phi.pow(2).sum();
  }
  void use_functional() {
    pb.inner_loss_at = [this](const TensorList& th) { return inner_at(th); };
    pb.outer_loss_at = [this](const TensorList& th) { return outer_at(th); };
  }
  // Hessian of L_train in w (independent of w): A = Xd^T Xd / n + diag(exp(phi)).
  at::Tensor hessian() const {
    auto Xd = (X + delta).detach();
    return Xd.t().matmul(Xd) / double(n) + torch::diag(phi.detach().exp());
  }
  // w* by a direct solve, differentiable in phi and delta.
  at::Tensor solve_w(const at::Tensor& ph, const at::Tensor& de) const {
    auto Xd = X + de;
    auto A = Xd.t().matmul(Xd) / double(n) + torch::diag(ph.exp());
    auto b = Xd.t().matmul(y) / double(n);
    return at::linalg_solve(A, b.unsqueeze(1)).squeeze(1);
  }
  void set_w_to_optimum() {
    torch::NoGradGuard g;
    w.copy_(solve_w(phi.detach(), delta.detach()));
  }
  // Analytic hypergradient at the optimum. For phi the explicit formula
  //   dL/dphi_j = c phi_j - exp(phi_j) w*_j (A^{-1} v1)_j,   v1 = Xv^T (Xv w* - yv) / m;
  // for delta: autograd through the direct solve (an independent computation of the same quantity).
  TensorList analytic() const {
    auto ph = phi.detach().clone().requires_grad_(true);
    auto de = delta.detach().clone().requires_grad_(true);
    auto ws = solve_w(ph, de);
    auto r = Xv.matmul(ws) - yv;
    auto meta = r.pow(2).sum() / (2.0 * m) + 0.5 * c * ph.pow(2).sum();
    auto g = torch::autograd::grad({meta}, {ph, de});
    // explicit formula for phi, checked against the autograd result
    auto wd = ws.detach();
    auto v1 = Xv.t().matmul(Xv.matmul(wd) - yv) / double(m);
    auto s = at::linalg_solve(hessian(), v1.unsqueeze(1)).squeeze(1);
    auto gphi = c * phi.detach() - phi.detach().exp() * wd * s;
    double diff = (gphi - g[0]).abs().max().item<double>();
    REQUIRE_MSG(diff < 1e-10, "explicit and autograd analytic hypergradients differ by " << diff);
    return {gphi, g[1]};
  }
  // L_meta after K SGD steps from w0 with the given outer values (no autograd).
  double unrolled_meta(const at::Tensor& w0, const at::Tensor& ph, const at::Tensor& de, int64_t K, double lr) const {
    torch::NoGradGuard g;
    auto wk = w0.clone();
    auto Xd = X + de;
    for (int64_t k = 0; k < K; ++k) {
      auto grad = Xd.t().matmul(Xd.matmul(wk) - y) / double(n) + ph.exp() * wk;
      wk = wk - lr * grad;
    }
    auto r = Xv.matmul(wk) - yv;
    return (r.pow(2).sum() / (2.0 * m) + 0.5 * c * ph.pow(2).sum()).item<double>();
  }
  // Central differences of unrolled_meta in every element of phi and delta.
  TensorList unrolled_fd(int64_t K, double lr, double h = 1e-6) const {
    auto w0 = w.detach().clone();
    TensorList out;
    for (int which = 0; which < 2; ++which) {
      auto base = (which == 0 ? phi : delta).detach().clone();
      auto g = torch::zeros_like(base);
      auto flat = base.view({-1});
      auto gflat = g.view({-1});
      for (int64_t i = 0; i < flat.numel(); ++i) {
        double old = flat[i].item<double>();
        flat[i] = old + h;
        double fp = which == 0 ? unrolled_meta(w0, base, delta.detach(), K, lr) : unrolled_meta(w0, phi.detach(), base, K, lr);
        flat[i] = old - h;
        double fm = which == 0 ? unrolled_meta(w0, base, delta.detach(), K, lr) : unrolled_meta(w0, phi.detach(), base, K, lr);
        flat[i] = old;
        gflat[i] = (fp - fm) / (2 * h);
      }
      out.push_back(g);
    }
    return out;
  }
};

double lambda_max(const at::Tensor& A) { return at::linalg_eigvalsh(A).max().item<double>(); }

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ridge_analytic_reference_is_consistent) {
  // The analytic hypergradient itself against finite differences of L_meta(w*(phi, delta), phi).
  Ridge r(1);
  auto ref = r.analytic();
  double h = 1e-6;
  auto meta_at = [&](const at::Tensor& ph, const at::Tensor& de) {
    torch::NoGradGuard g;
    auto ws = r.solve_w(ph, de);
    auto res = r.Xv.matmul(ws) - r.yv;
    return (res.pow(2).sum() / (2.0 * r.m) + 0.5 * r.c * ph.pow(2).sum()).item<double>();
  };
  auto ph = r.phi.detach().clone();
  for (int64_t j = 0; j < r.d; ++j) {
    auto p = ph.clone(), q = ph.clone();
    p[j] += h;
    q[j] -= h;
    double fd = (meta_at(p, r.delta.detach()) - meta_at(q, r.delta.detach())) / (2 * h);
    REQUIRE_CLOSE(fd, ref[0][j].item<double>(), 1e-7);
  }
  auto de = r.delta.detach().clone();
  for (int64_t i : {0, 7, 39}) {
    auto p = de.clone(), q = de.clone();
    p[i][2] += h;
    q[i][2] -= h;
    double fd = (meta_at(r.phi.detach(), p) - meta_at(r.phi.detach(), q)) / (2 * h);
    REQUIRE_CLOSE(fd, ref[1][i][2].item<double>(), 1e-7);
  }
}

TEST(neumann_converges_to_analytic_hypergradient) {
  Ridge r(2);
  r.set_w_to_optimum();
  auto ref = r.analytic();
  HypergradOptions o;
  o.alpha = 1.0 / lambda_max(r.hessian());
  double prev = 1e300;
  for (int64_t K : {1, 5, 20, 60, 200}) {
    auto res = compute_hypergradient("neumann:" + std::to_string(K), r.pb, o);
    double e = rel_err(res.grads, ref);
    std::printf("  neumann:%lld rel err %.3e (hvp %lld)\n", (long long)K, e, (long long)res.stats.hvp_count);
    REQUIRE(e < prev || e < 1e-13);  // monotone until rounding
    REQUIRE(res.stats.hvp_count == K + 1);
    REQUIRE(res.stats.iterations == K);
    prev = e;
  }
  REQUIRE_MSG(prev < 1e-5, "neumann:200 rel err " << prev);
}

TEST(cg_converges_to_analytic_hypergradient) {
  Ridge r(3);
  r.set_w_to_optimum();
  auto ref = r.analytic();
  double e1 = rel_err(compute_hypergradient("cg:1", r.pb).grads, ref);
  double e3 = rel_err(compute_hypergradient("cg:3", r.pb).grads, ref);
  auto res = compute_hypergradient("cg:12", r.pb);
  double e12 = rel_err(res.grads, ref);
  std::printf("  cg rel err K=1 %.3e, K=3 %.3e, K=12 %.3e (residual %.2e, iterations %lld)\n", e1, e3, e12,
              res.stats.residual, (long long)res.stats.iterations);
  REQUIRE(e3 < e1);
  REQUIRE_MSG(e12 < 1e-8, "cg:12 rel err " << e12);
  REQUIRE(res.stats.residual < 1e-8);
}

TEST(cg_with_damping_solves_the_damped_system) {
  Ridge r(4);
  r.set_w_to_optimum();
  auto res = compute_hypergradient("cg:30,damping=0.5", r.pb);
  // Reference: same formula with (A + 0.5 I).
  auto wd = r.w.detach();
  auto v1 = r.Xv.t().matmul(r.Xv.matmul(wd) - r.yv) / double(r.m);
  auto s = at::linalg_solve(r.hessian() + 0.5 * torch::eye(r.d, kF64), v1.unsqueeze(1)).squeeze(1);
  auto gphi = r.c * r.phi.detach() - r.phi.detach().exp() * wd * s;
  REQUIRE(rel_err({res.grads[0]}, {gphi}) < 1e-9);
}

TEST(cg_tolerance_stops_early) {
  Ridge r(5);
  r.set_w_to_optimum();
  auto res = compute_hypergradient("cg:50,tol=1e-6", r.pb);
  REQUIRE(res.stats.iterations <= r.d + 1);
  REQUIRE(res.stats.residual <= 1e-6);
}

TEST(unroll_matches_finite_differences_through_sgd_steps) {
  for (bool functional : {false, true}) {
    Ridge r(6);
    {
      torch::NoGradGuard g;
      r.w.copy_(torch::randn({r.d}, kF64));
    }
    if (functional) r.use_functional();
    auto w_before = r.w.detach().clone();
    for (int64_t K : {1, 3, 7}) {
      HypergradOptions o;
      o.inner_lr = 0.3;
      auto res = compute_hypergradient("unroll:" + std::to_string(K), r.pb, o);
      auto ref = r.unrolled_fd(K, 0.3);
      double e = rel_err(res.grads, ref);
      std::printf("  unroll:%lld (%s) vs finite differences: rel err %.3e\n", (long long)K,
                  functional ? "functional" : "reverse", e);
      REQUIRE_MSG(e < 1e-7, "unroll:" << K << " rel err " << e);
      REQUIRE_MSG(torch::equal(r.w.detach(), w_before), "unroll changed theta");
      REQUIRE(!r.w.grad().defined());
      REQUIRE(!r.phi.grad().defined());
    }
  }
}

TEST(unroll_paths_agree_and_commit_moves_theta) {
  Ridge a(7), b(7);
  b.use_functional();
  HypergradOptions o;
  o.inner_lr = 0.2;
  o.commit_unrolled = true;
  auto ra = compute_hypergradient("unroll:5", a.pb, o);
  auto rb = compute_hypergradient("unroll:5", b.pb, o);
  REQUIRE(rel_err(ra.grads, rb.grads) < 1e-12);
  // theta is now theta_5 of plain SGD
  auto wk = torch::zeros({a.d}, kF64);
  auto Xd = (a.X + a.delta).detach();
  for (int k = 0; k < 5; ++k) wk = wk - 0.2 * (Xd.t().matmul(Xd.matmul(wk) - a.y) / double(a.n) + a.phi.detach().exp() * wk);
  REQUIRE((a.w.detach() - wk).abs().max().item<double>() < 1e-12);
  REQUIRE((b.w.detach() - wk).abs().max().item<double>() < 1e-12);
}

TEST(unroll_spec_lr_overrides_options) {
  Ridge r(8);
  HypergradOptions o;
  o.inner_lr = 0.3;
  auto a = compute_hypergradient("unroll:2", r.pb, o);
  auto b = compute_hypergradient("unroll:2,lr=0.3", r.pb);  // default lr differs, spec sets it
  REQUIRE(rel_err(a.grads, b.grads) < 1e-14);
}

TEST(fd_matches_unroll_one_on_ridge) {
  Ridge r(9);
  {
    torch::NoGradGuard g;
    r.w.copy_(torch::randn({r.d}, kF64));
  }
  auto w_before = r.w.detach().clone();
  HypergradOptions o;
  o.inner_lr = 0.1;
  auto u = compute_hypergradient("unroll:1", r.pb, o);
  auto f = compute_hypergradient("fd", r.pb, o);
  double e = rel_err(f.grads, u.grads);
  std::printf("  fd vs unroll:1 (ridge, quadratic in theta): rel err %.3e\n", e);
  REQUIRE(e < 1e-7);  // the inner gradient is linear in theta, so central differences are exact
  REQUIRE(torch::equal(r.w.detach(), w_before));
}

// A nonlinear problem: a tanh MLP regression with learnable soft inputs (phi) prepended as extra features.
struct Mlp {
  at::Tensor W1, b1, W2, soft, X, Y, Xv, Yv;
  BilevelProblem pb;
  Mlp() {
    torch::manual_seed(11);
    W1 = (0.5 * torch::randn({5, 8}, kF64)).requires_grad_(true);
    b1 = (0.1 * torch::randn({8}, kF64)).requires_grad_(true);
    W2 = (0.5 * torch::randn({8, 2}, kF64)).requires_grad_(true);
    soft = (0.3 * torch::randn({2}, kF64)).requires_grad_(true);
    X = torch::randn({64, 3}, kF64);
    Y = torch::randn({64, 2}, kF64);
    Xv = torch::randn({12, 3}, kF64);
    Yv = torch::randn({12, 2}, kF64);
    pb.inner_params = {W1, W2};  // b1 stays out: with constant soft inputs it would be redundant (singular H)
    pb.outer_params = {soft};
    pb.inner_loss = [this] { return loss(X, Y); };
    pb.outer_loss = [this] { return loss(Xv, Yv); };
  }
  at::Tensor loss(const at::Tensor& x, const at::Tensor& y) const {
    auto in = torch::cat({x, soft.unsqueeze(0).expand({x.size(0), 2})}, 1);
    auto out = torch::tanh(in.matmul(W1) + b1).matmul(W2);
    return (out - y).pow(2).mean();
  }
};

TEST(fd_is_close_to_unroll_one_on_nonlinear_problem) {
  Mlp m;
  HypergradOptions o;
  o.inner_lr = 0.5;
  auto u = compute_hypergradient("unroll:1", m.pb, o);
  auto f = compute_hypergradient("fd", m.pb, o);
  double e = rel_err(f.grads, u.grads);
  std::printf("  fd vs unroll:1 (tanh MLP): rel err %.3e\n", e);
  REQUIRE(e < 1e-3);
  REQUIRE(f.stats.hvp_count == 0);
}

TEST(hvp_matches_finite_differences_of_gradients) {
  Mlp m;
  TensorList params = {m.W1, m.b1, m.W2, m.soft};
  TensorList v;
  for (auto& p : params) v.push_back(torch::randn_like(p));
  auto loss_fn = [&] { return m.loss(m.X, m.Y); };
  auto hv = instill::hypergrad::hvp(loss_fn, params, v);
  const double h = 1e-5;
  auto grad_at = [&](double s) {
    {
      torch::NoGradGuard g;
      for (size_t i = 0; i < params.size(); ++i) params[i].add_(v[i], s);
    }
    auto g = torch::autograd::grad({loss_fn()}, params);
    {
      torch::NoGradGuard ng;
      for (size_t i = 0; i < params.size(); ++i) params[i].sub_(v[i], s);
    }
    return g;
  };
  auto gp = grad_at(h), gm = grad_at(-h);
  TensorList fd;
  for (size_t i = 0; i < params.size(); ++i) fd.push_back((gp[i] - gm[i]) / (2 * h));
  double e = rel_err(hv, fd);
  std::printf("  hvp vs finite differences of gradients: rel err %.3e\n", e);
  REQUIRE(e < 1e-7);
}

TEST(hvp_on_ridge_equals_hessian_times_v) {
  Ridge r(12);
  auto v = torch::randn({r.d}, kF64);
  auto hv = instill::hypergrad::hvp(r.pb.inner_loss, {r.w}, {v});
  REQUIRE((hv[0] - r.hessian().matmul(v)).abs().max().item<double>() < 1e-12);
}

// Dense Hessian of loss_fn in params (flattened), column by column with hvp.
at::Tensor dense_hessian(const instill::hypergrad::LossFn& loss_fn, const TensorList& params) {
  int64_t n = 0;
  for (auto& p : params) n += p.numel();
  auto H = torch::zeros({n, n}, kF64);
  for (int64_t j = 0; j < n; ++j) {
    auto e = torch::zeros({n}, kF64);
    e[j] = 1.0;
    TensorList v;
    int64_t off = 0;
    for (auto& p : params) {
      v.push_back(e.slice(0, off, off + p.numel()).view(p.sizes()));
      off += p.numel();
    }
    TensorList hv = instill::hypergrad::hvp(loss_fn, params, v);
    TensorList flat;
    for (auto& t : hv) flat.push_back(t.reshape({-1}));
    H.select(1, j).copy_(torch::cat(flat));
  }
  return H;
}

at::Tensor flat_cat(const TensorList& ts) {
  TensorList flat;
  for (auto& t : ts) flat.push_back(t.reshape({-1}));
  return torch::cat(flat);
}

// L2-regularised logistic regression with a learnable shift of the training features: strictly convex
// and nonlinear in theta (Hessian depends on theta).
struct Logistic {
  at::Tensor w, soft, X, y, Xv, yv;
  BilevelProblem pb;
  Logistic() {
    torch::manual_seed(21);
    w = torch::zeros({5}, kF64).requires_grad_(true);
    soft = (0.3 * torch::randn({5}, kF64)).requires_grad_(true);
    X = torch::randn({50, 5}, kF64);
    y = torch::sign(X.matmul(torch::randn({5}, kF64)) + 0.5 * torch::randn({50}, kF64));
    Xv = torch::randn({30, 5}, kF64);
    yv = torch::sign(Xv.matmul(torch::randn({5}, kF64)));
    pb.inner_params = {w};
    pb.outer_params = {soft};
    pb.inner_loss = [this] {
      return torch::softplus(-y * (X + soft).matmul(w)).mean() + 0.05 * w.pow(2).sum() + 0.02 * (soft * w).sum().pow(2);
    };
    pb.outer_loss = [this] { return torch::softplus(-yv * Xv.matmul(w)).mean(); };
  }
};

TEST(implicit_methods_match_dense_ift_on_nonlinear_problem) {
  // theta driven to the minimum by Newton's method with a dense Hessian; the reference is the IFT
  // hypergradient with a dense solve: direct - (df/dphi)^T H^{-1} v1.
  Logistic m;
  const TensorList& th = m.pb.inner_params;
  double gnorm = 1;
  for (int it = 0; it < 50 && gnorm > 1e-14; ++it) {
    auto H = dense_hessian(m.pb.inner_loss, th);
    auto g = flat_cat(torch::autograd::grad({m.pb.inner_loss()}, th));
    gnorm = g.norm().item<double>();
    auto step = at::linalg_solve(H, g.unsqueeze(1)).squeeze(1);
    torch::NoGradGuard ng;
    th[0].sub_(step);
  }
  REQUIRE_MSG(gnorm < 1e-10, "Newton did not converge: |grad| = " << gnorm);
  auto H = dense_hessian(m.pb.inner_loss, th);
  auto eig = at::linalg_eigvalsh(H);
  const double lmin = eig.min().item<double>(), lmax = eig.max().item<double>();
  REQUIRE(lmin > 0);
  auto v1 = torch::autograd::grad({m.pb.outer_loss()}, th);
  auto x = at::linalg_solve(H, v1[0].unsqueeze(1)).squeeze(1);
  auto f = torch::autograd::grad({m.pb.inner_loss()}, th, {}, true, true);
  auto jx = torch::autograd::grad(f, {m.soft}, {x});
  TensorList ref = {-jx[0]};  // the outer loss does not read phi: no direct term

  auto cg = compute_hypergradient("cg:20", m.pb);
  HypergradOptions o;
  o.alpha = 1.0 / lmax;
  const int64_t kn = std::min<int64_t>(20000, int64_t(40.0 * lmax / lmin));
  auto n_short = compute_hypergradient("neumann:3", m.pb, o);
  auto n_long = compute_hypergradient("neumann:" + std::to_string(kn), m.pb, o);
  double ec = rel_err(cg.grads, ref), e3 = rel_err(n_short.grads, ref), el = rel_err(n_long.grads, ref);
  std::printf("  logistic at its minimum (cond %.1f): cg:20 %.3e, neumann:3 %.3e, neumann:%lld %.3e\n",
              lmax / lmin, ec, e3, (long long)kn, el);
  REQUIRE(ec < 1e-9);
  REQUIRE(el < 1e-8);
  REQUIRE(el < e3);
}

TEST(cg_stops_on_negative_curvature) {
  // L_train = -1/2 ||w||^2 + <w, phi>: H = -I, so CG's first curvature is negative; x stays 0 and the
  // hypergradient is the direct term (here c * phi).
  Ridge r(17);
  BilevelProblem pb = r.pb;
  pb.inner_loss = [&] { return -0.5 * r.w.pow(2).sum() + (r.w * r.phi).sum() + 0 * r.delta.sum(); };
  auto res = compute_hypergradient("cg:5", pb);
  REQUIRE(res.stats.negative_curvature);
  REQUIRE(res.stats.iterations == 1);
  REQUIRE((res.grads[0] - r.c * r.phi.detach()).abs().max().item<double>() < 1e-14);
  auto ok = compute_hypergradient("cg:5,damping=2", pb);  // H + 2I = I: solvable
  REQUIRE(!ok.stats.negative_curvature);
}

TEST(spec_parsing_and_errors_name_the_spec) {
  using instill::hypergrad::parse_spec;
  auto s = parse_spec("neumann:5");
  REQUIRE(s.method == "neumann" && s.k == 5);
  s = parse_spec(" cg:10 , damping=0.25,tol=1e-9 ");
  REQUIRE(s.method == "cg" && s.k == 10);
  REQUIRE_CLOSE(s.options.damping, 0.25, 0);
  REQUIRE_CLOSE(s.options.cg_tol, 1e-9, 0);
  s = parse_spec("fd,eps=0.02,lr=0.5");
  REQUIRE(s.method == "fd" && s.k == 0);
  REQUIRE_CLOSE(s.options.fd_epsilon, 0.02, 0);
  REQUIRE_CLOSE(s.options.inner_lr, 0.5, 0);
  REQUIRE(parse_spec("unroll").k == 1);
  REQUIRE(parse_spec("neumann").k == 1);
  REQUIRE(instill::hypergrad::method_names().size() == 5);  // unroll, neumann, cg, fd, sama

  auto arg_err = [](const std::string& spec, const std::string& needle) {
    bool typed = false;
    std::string msg;
    try {
      parse_spec(spec);
    } catch (const instill::ArgumentError& e) {
      typed = true;
      msg = e.what();
    } catch (const instill::RangeError& e) {
      typed = true;
      msg = e.what();
    }
    REQUIRE_MSG(typed, "no ArgumentError/RangeError for spec " << spec);
    REQUIRE_MSG(msg.find("\"" + spec + "\"") != std::string::npos, "message lacks the spec: " << msg);
    REQUIRE_MSG(msg.find(needle) != std::string::npos, "message lacks '" << needle << "': " << msg);
  };
  arg_err("newton:3", "unknown method 'newton'");
  arg_err("newton:3", "neumann");  // lists the known methods
  arg_err("neumann:0", "K=0");
  arg_err("neumann:x", "not a positive integer");
  arg_err("neumann:-2", "not a positive integer");
  arg_err("fd:3", "takes no K");
  arg_err("cg:5,alpha=1", "no option 'alpha'");
  arg_err("neumann:3,alpha=-1", "alpha=-1");
  arg_err("neumann:3,alpha=abc", "not a finite number");
  arg_err("neumann:3,alpha", "not key=value");
  arg_err("cg:3,damping=1,damping=2", "given twice");
  arg_err("", "no method name");
  arg_err("fd,eps=0", "eps=0");
  REQUIRE_THROWS(instill::hypergrad::parse_spec("unroll:3", [] { HypergradOptions o; o.inner_lr = -1; return o; }()));
}

TEST(problem_validation) {
  Ridge r(13);
  BilevelProblem bad = r.pb;
  bad.outer_params.clear();
  REQUIRE(error_of([&] { compute_hypergradient("neumann:2", bad); }).find("outer_params is empty") != std::string::npos);
  bad = r.pb;
  bad.inner_params = {torch::zeros({3}, kF64)};
  REQUIRE(error_of([&] { compute_hypergradient("cg:2", bad); }).find("inner_params[0] does not require grad") !=
          std::string::npos);
  bad = r.pb;
  bad.outer_params.push_back(r.w);
  REQUIRE(error_of([&] { compute_hypergradient("fd", bad); }).find("twice") != std::string::npos);
  bad = r.pb;
  bad.outer_loss = [&] { return r.w * 2; };
  REQUIRE(error_of([&] { compute_hypergradient("neumann:1", bad); }).find("scalar") != std::string::npos);
}

TEST(theta_is_restored_when_a_closure_throws) {
  Ridge r(14);
  {
    torch::NoGradGuard g;
    r.w.copy_(torch::randn({r.d}, kF64));
  }
  auto before = r.w.detach().clone();
  int calls = 0;
  BilevelProblem pb = r.pb;
  pb.inner_loss = [&] {
    if (++calls == 3) throw std::runtime_error("boom");
    return r.inner_at({r.w});
  };
  REQUIRE(error_of([&] { compute_hypergradient("unroll:4", pb); }) == "boom");
  REQUIRE(torch::equal(r.w.detach(), before));
  calls = 0;
  REQUIRE(error_of([&] { compute_hypergradient("fd", pb); }) == "boom");
  REQUIRE(torch::equal(r.w.detach(), before));
}

TEST(apply_to_grad_writes_and_accumulates) {
  Ridge r(15);
  r.set_w_to_optimum();
  auto res = compute_hypergradient("cg:10", r.pb);
  instill::hypergrad::apply_to_grad(r.pb, res);
  REQUIRE(torch::equal(r.phi.grad(), res.grads[0]));
  instill::hypergrad::apply_to_grad(r.pb, res, /*accumulate=*/true);
  REQUIRE((r.phi.grad() - 2 * res.grads[0]).abs().max().item<double>() < 1e-15);
  REQUIRE(torch::equal(r.delta.grad(), 2 * res.grads[1]));
}

TEST(outer_loss_without_phi_and_theta_unused_by_outer) {
  // Outer loss not reading phi (no direct term) and a theta tensor unused by the losses: zeros, no errors.
  Ridge r(16);
  r.set_w_to_optimum();
  auto unused = torch::zeros({3}, kF64).requires_grad_(true);
  BilevelProblem pb = r.pb;
  pb.inner_params.push_back(unused);
  pb.outer_loss = [&] {
    auto res = r.Xv.matmul(r.w) - r.yv;
    return res.pow(2).sum() / (2.0 * r.m);
  };
  for (const char* spec : {"neumann:3", "cg:3", "unroll:2", "fd"}) {
    auto res = compute_hypergradient(spec, pb);
    REQUIRE(res.grads.size() == 2);
    REQUIRE(res.grads[0].sizes() == r.phi.sizes());
    REQUIRE(std::isfinite(res.grads[0].sum().item<double>()));
  }
}

// BilevelProblem::reduce (data parallelism): two workers, each with half of the training and meta rows and its
// own copies of theta and phi, joined by an in-process mean (threads standing in for an all-reduce), get the
// full-batch hypergradient of every method, and their theta stay identical.
struct ThreadMean {
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0, left = 0;
  int64_t generation = 0;
  TensorList* slot[2] = {nullptr, nullptr};
  TensorList mean;
  void operator()(int rank, TensorList& xs) {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [&] { return left == 0; });  // the previous round has been read by both
    slot[rank] = &xs;
    if (++arrived == 2) {
      REQUIRE(slot[0]->size() == slot[1]->size());
      mean.clear();
      for (size_t i = 0; i < xs.size(); ++i) mean.push_back(((*slot[0])[i] + (*slot[1])[i]) / 2.0);
      arrived = 0;
      left = 2;
      ++generation;
      cv.notify_all();
    } else {
      const int64_t g = generation;
      cv.wait(lk, [&] { return generation != g; });
    }
    for (size_t i = 0; i < xs.size(); ++i) xs[i].copy_(mean[i]);
    if (--left == 0) cv.notify_all();
  }
};

TEST(reduce_hook_gives_the_full_batch_hypergradient_on_two_shards) {
  Ridge full(17);
  full.set_w_to_optimum();
  {
    torch::NoGradGuard g;
    full.w.add_(0.05 * torch::randn({full.d}, kF64));  // away from the optimum: unroll and fd move theta
  }
  HypergradOptions o;
  o.alpha = 0.5 / lambda_max(full.hessian());
  o.inner_lr = 0.1;
  for (const char* spec : {"neumann:4", "cg:4", "unroll:3", "fd", "sama"}) {
    for (bool functional : {false, true}) {
      BilevelProblem ref_pb = full.pb;
      if (functional) {
        ref_pb.inner_loss_at = [&](const TensorList& th) { return full.inner_at(th); };
        ref_pb.outer_loss_at = [&](const TensorList& th) { return full.outer_at(th); };
      }
      auto ref = compute_hypergradient(spec, ref_pb, o);
      ThreadMean tm;
      struct Worker {
        at::Tensor w, phi, delta;
        BilevelProblem pb;
        instill::hypergrad::HypergradResult res;
        std::exception_ptr error;
      };
      Worker wk[2];
      const int64_t n2 = full.n / 2, m2 = full.m / 2;
      for (int r = 0; r < 2; ++r) {
        Worker& k = wk[r];
        k.w = full.w.detach().clone().requires_grad_(true);
        k.phi = full.phi.detach().clone().requires_grad_(true);
        k.delta = full.delta.detach().clone().requires_grad_(true);
        auto X = full.X.narrow(0, r * n2, n2), y = full.y.narrow(0, r * n2, n2);
        auto Xv = full.Xv.narrow(0, r * m2, m2), yv = full.yv.narrow(0, r * m2, m2);
        const double c = full.c;
        auto inner_at = [&k, X, y, r, n2](const TensorList& th) {
          auto res = (X + k.delta.narrow(0, r * n2, n2)).matmul(th[0]) - y;
          return res.pow(2).sum() / (2.0 * n2) + 0.5 * (k.phi.exp() * th[0].pow(2)).sum();
        };
        auto outer_at = [&k, Xv, yv, c, m2](const TensorList& th) {
          auto res = Xv.matmul(th[0]) - yv;
          return res.pow(2).sum() / (2.0 * m2) + 0.5 * c * k.phi.pow(2).sum();
        };
        k.pb.inner_params = {k.w};
        k.pb.outer_params = {k.phi, k.delta};
        k.pb.inner_loss = [&k, inner_at] { return inner_at({k.w}); };
        k.pb.outer_loss = [&k, outer_at] { return outer_at({k.w}); };
        if (functional) {  // ignored under reduce: unroll runs in reverse mode
          k.pb.inner_loss_at = inner_at;
          k.pb.outer_loss_at = outer_at;
        }
        k.pb.reduce = [&tm, r](TensorList& xs) { tm(r, xs); };
      }
      std::thread t0([&] {
        try { wk[0].res = compute_hypergradient(spec, wk[0].pb, o); } catch (...) { wk[0].error = std::current_exception(); }
      });
      std::thread t1([&] {
        try { wk[1].res = compute_hypergradient(spec, wk[1].pb, o); } catch (...) { wk[1].error = std::current_exception(); }
      });
      t0.join();
      t1.join();
      for (int r = 0; r < 2; ++r) {
        if (wk[r].error) std::rethrow_exception(wk[r].error);
        const double e = rel_err(wk[r].res.grads, ref.grads);
        REQUIRE_MSG(e < 1e-12, spec << (functional ? " (functional)" : "") << " rank " << r << " rel err " << e);
        REQUIRE(torch::equal(wk[r].w.detach(), full.w.detach()));  // theta restored, identical on both
      }
      REQUIRE(torch::equal(wk[0].res.grads[1], wk[1].res.grads[1]));
    }
  }
}

// ---------- dropout: every closure call of one hypergradient sees the masks it should ----------

// The tanh MLP with dropout 0.1 on its hidden layer (drawn from the default CPU generator, as T5's dropout is).
struct DropMlp {
  at::Tensor W1, W2, soft, X, Y, Xv, Yv;
  BilevelProblem pb;
  DropMlp() {
    torch::manual_seed(21);
    W1 = (0.5 * torch::randn({5, 16}, kF64)).requires_grad_(true);
    W2 = (0.5 * torch::randn({16, 2}, kF64)).requires_grad_(true);
    soft = (0.3 * torch::randn({2}, kF64)).requires_grad_(true);
    X = torch::randn({32, 3}, kF64);
    Y = torch::randn({32, 2}, kF64);
    Xv = torch::randn({12, 3}, kF64);
    Yv = torch::randn({12, 2}, kF64);
    pb.inner_params = {W1, W2};
    pb.outer_params = {soft};
    pb.inner_loss = [this] { return loss_at({W1, W2}, soft, X, Y); };
    pb.outer_loss = [this] { return loss_at({W1, W2}, soft, Xv, Yv); };
  }
  static at::Tensor loss_at(const TensorList& th, const at::Tensor& sf, const at::Tensor& x, const at::Tensor& y) {
    auto in = torch::cat({x, sf.unsqueeze(0).expand({x.size(0), 2})}, 1);
    auto h = torch::dropout(torch::tanh(in.matmul(th[0])), 0.1, /*train=*/true);
    return (h.matmul(th[1]) - y).pow(2).mean();
  }
  void use_functional() {
    pb.inner_loss_at = [this](const TensorList& th) { return loss_at(th, soft, X, Y); };
    pb.outer_loss_at = [this](const TensorList& th) { return loss_at(th, soft, Xv, Yv); };
  }
  // L_meta after K SGD steps, every forward drawing fresh masks from the generator started at `start`, in the order
  // the steps run (then the outer loss): the trajectory unroll:K takes.
  double unrolled_meta(const at::Tensor& sf, int64_t K, double lr, const instill::hypergrad::RngState& start) const {
    start.restore();
    TensorList th = {W1.detach().clone().requires_grad_(true), W2.detach().clone().requires_grad_(true)};
    for (int64_t k = 0; k < K; ++k) {
      auto g = torch::autograd::grad({loss_at(th, sf, X, Y)}, th);
      torch::NoGradGuard ng;
      for (size_t i = 0; i < th.size(); ++i) th[i] = (th[i] - lr * g[i]).detach().requires_grad_(true);
    }
    torch::NoGradGuard ng;
    return loss_at(th, sf, Xv, Yv).item<double>();
  }
};

TEST(unroll_under_dropout_matches_finite_differences_through_the_same_steps) {
  for (bool functional : {false, true}) {
    DropMlp m;
    if (functional) m.use_functional();
    for (int64_t K : {1, 3}) {
      HypergradOptions o;
      o.inner_lr = 0.3;
      auto start = instill::hypergrad::RngState::capture({m.W1});
      auto res = compute_hypergradient("unroll:" + std::to_string(K), m.pb, o);
      auto after = instill::hypergrad::RngState::capture({m.W1});
      auto base = m.soft.detach().clone();
      auto ref = torch::zeros_like(base);
      const double h = 1e-6;
      for (int64_t j = 0; j < base.numel(); ++j) {
        auto p = base.clone(), q = base.clone();
        p[j] += h;
        q[j] -= h;
        ref[j] = (m.unrolled_meta(p, K, 0.3, start) - m.unrolled_meta(q, K, 0.3, start)) / (2 * h);
      }
      after.restore();
      double e = rel_err(res.grads, {ref});
      std::printf("  dropout 0.1: unroll:%lld (%s) vs finite differences through the same %lld steps: rel err %.3e\n",
                  (long long)K, functional ? "functional" : "reverse", (long long)K, e);
      REQUIRE_MSG(e < 1e-6, "unroll:" << K << " under dropout: rel err " << e);
    }
  }
}

TEST(fd_under_dropout_uses_one_mask_and_matches_unroll_one) {
  DropMlp m;
  HypergradOptions o;
  o.inner_lr = 0.5;
  auto start = instill::hypergrad::RngState::capture({m.W1});
  auto u = compute_hypergradient("unroll:1", m.pb, o);
  start.restore();
  auto f = compute_hypergradient("fd", m.pb, o);
  double e = rel_err(f.grads, u.grads);
  std::printf("  dropout 0.1: fd vs unroll:1 (tanh MLP, same masks): rel err %.3e\n", e);
  REQUIRE_MSG(e < 1e-3, "fd under dropout: rel err " << e);
  // the same generator state gives the same hypergradient, and the generator ends where it did the first time
  start.restore();
  auto f2 = compute_hypergradient("fd", m.pb, o);
  REQUIRE(torch::equal(f.grads[0], f2.grads[0]));
}

TEST(implicit_methods_under_dropout_are_deterministic_and_reuse_the_inner_masks) {
  DropMlp m;
  HypergradOptions o;
  o.alpha = 0.05;
  o.damping = 1.0;
  for (const char* spec : {"neumann:3", "cg:3", "sama"}) {
    auto start = instill::hypergrad::RngState::capture({m.W1});
    BilevelProblem a = m.pb;
    at::Tensor la = instill::hypergrad::inner_gradient(spec, a, o);
    auto ra = compute_hypergradient(spec, a, o);
    start.restore();
    BilevelProblem b = m.pb;
    instill::hypergrad::inner_gradient(spec, b, o);
    auto rb = compute_hypergradient(spec, b, o);
    REQUIRE_MSG(torch::equal(ra.grads[0], rb.grads[0]), spec);
    // the precomputed f is the gradient of the inner loss with the masks recorded in inner_rng
    a.inner_rng.restore();
    auto g = torch::autograd::grad({m.pb.inner_loss()}, m.pb.inner_params);
    for (size_t i = 0; i < g.size(); ++i) REQUIRE(torch::allclose(g[i], a.inner_grad[i].detach(), 1e-12, 1e-14));
    REQUIRE(std::isfinite(la.item<double>()));
  }
}

// ---------- reuse of the inner step's gradient; the outer loss returned ----------

TEST(precomputed_inner_gradient_gives_the_same_hypergradient_for_one_gradient_less) {
  Ridge r(31);
  r.set_w_to_optimum();
  {
    torch::NoGradGuard g;
    r.w.add_(0.05 * torch::randn({r.d}, kF64));
  }
  HypergradOptions o;
  o.alpha = 0.5 / lambda_max(r.hessian());
  o.inner_lr = 0.1;
  for (const char* spec : {"neumann:4", "cg:4", "unroll:3", "fd", "sama"}) {
    auto plain = compute_hypergradient(spec, r.pb, o);
    BilevelProblem pb = r.pb;
    at::Tensor l = instill::hypergrad::inner_gradient(spec, pb, o);
    REQUIRE_CLOSE(l.item<double>(), r.inner_at({r.w}).item<double>(), 1e-14);
    auto reused = compute_hypergradient(spec, pb, o);
    const double e = rel_err(reused.grads, plain.grads);
    REQUIRE_MSG(e < 1e-13, spec << ": rel err " << e);
    const int64_t saved = std::string(spec) == "sama" ? 0 : 1;  // sama never needs f itself
    REQUIRE_MSG(reused.stats.grad_count == plain.stats.grad_count - saved,
                spec << ": grad_count " << reused.stats.grad_count << " vs " << plain.stats.grad_count);
    REQUIRE(plain.outer_loss.defined() && reused.outer_loss.defined());
    REQUIRE_CLOSE(reused.outer_loss.item<double>(), plain.outer_loss.item<double>(), 1e-14);
  }
  // the implicit methods' outer loss is L_meta at theta itself
  auto n = compute_hypergradient("neumann:1", r.pb, o);
  REQUIRE_CLOSE(n.outer_loss.item<double>(), r.outer_at({r.w}).item<double>(), 1e-14);
  // an inner_grad without a graph is refused by the methods that differentiate it, naming the field
  BilevelProblem pb = r.pb;
  instill::hypergrad::inner_gradient("fd", pb, o);  // fd keeps no graph
  auto msg = error_of([&] { compute_hypergradient("neumann:1", pb, o); });
  REQUIRE_MSG(msg.find("inner_grad") != std::string::npos, msg);
  pb.inner_grad[0] = torch::zeros({1}, kF64);  // not shaped like theta
  msg = error_of([&] { compute_hypergradient("fd", pb, o); });
  REQUIRE_MSG(msg.find("inner_grad") != std::string::npos, msg);
}

// ---------- SAMA: exactness of what it computes, and its error against the exact hypergradient ----------

TEST(sama_computes_its_formula_and_its_error_is_reported) {
  Ridge r(33);
  r.set_w_to_optimum();
  auto exact = r.analytic();
  // Its formula, computed exactly by autograd: direct - (d f / d phi)^T P v1 at theta.
  auto formula = [&](const std::function<at::Tensor(const at::Tensor&)>& P) {
    auto outer = r.outer_at({r.w});
    auto gv = torch::autograd::grad({outer}, {r.w, r.phi, r.delta}, {}, false, false, true);
    at::Tensor v1 = gv[0];
    TensorList direct = {gv[1].defined() ? gv[1] : torch::zeros_like(r.phi), gv[2].defined() ? gv[2] : torch::zeros_like(r.delta)};
    auto f = torch::autograd::grad({r.inner_at({r.w})}, {r.w}, {}, true, true)[0];
    auto m = torch::autograd::grad({f}, {r.phi, r.delta}, {P(v1)}, false, false, true);
    return TensorList{direct[0] - m[0], direct[1] - m[1]};
  };
  const double lmax = lambda_max(r.hessian());
  // P = lr I (no preconditioner: SGD)
  HypergradOptions o;
  o.inner_lr = 1.0 / lmax;
  auto s = compute_hypergradient("sama", r.pb, o);
  REQUIRE(s.stats.hvp_count == 0);
  double ef = rel_err(s.grads, formula([&](const at::Tensor& v) { return v * o.inner_lr; }));
  REQUIRE_MSG(ef < 1e-7, "sama vs its own formula: rel err " << ef);  // central differences, quadratic in w
  // A diagonal preconditioner (Jacobi: diag(H)^-1, what an adaptive optimizer's P approximates at best)
  at::Tensor jac = 1.0 / torch::diag(r.hessian());
  BilevelProblem pj = r.pb;
  pj.precondition = [&](const TensorList& v) { return TensorList{v[0] * jac}; };
  auto sj = compute_hypergradient("sama", pj, o);
  double ej = rel_err(sj.grads, formula([&](const at::Tensor& v) { return v * jac; }));
  REQUIRE_MSG(ej < 1e-7, "sama (preconditioned) vs its own formula: rel err " << ej);
  // Its error against the exact hypergradient (the README reports these figures).
  auto cosine = [](const TensorList& a, const TensorList& b) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      ab += (a[i] * b[i]).sum().item<double>();
      aa += a[i].pow(2).sum().item<double>();
      bb += b[i].pow(2).sum().item<double>();
    }
    return ab / std::sqrt(aa * bb);
  };
  auto n1 = compute_hypergradient("neumann:1", r.pb, [&] { HypergradOptions x; x.alpha = 1.0 / lmax; return x; }());
  std::printf("  ridge, vs the exact hypergradient (rel err, cosine):\n");
  std::printf("    sama, P = I / lambda_max(H)       %.3f, %.3f\n", rel_err(s.grads, exact), cosine(s.grads, exact));
  std::printf("    sama, P = diag(H)^-1 (Jacobi)     %.3f, %.3f\n", rel_err(sj.grads, exact), cosine(sj.grads, exact));
  std::printf("    neumann:1, alpha = 1 / lambda_max %.3f, %.3f\n", rel_err(n1.grads, exact), cosine(n1.grads, exact));
  for (int64_t K : {5, 20}) {
    HypergradOptions x;
    x.alpha = 1.0 / lmax;
    auto nk = compute_hypergradient("neumann:" + std::to_string(K), r.pb, x);
    std::printf("    neumann:%-2lld                        %.3f, %.3f\n", (long long)K, rel_err(nk.grads, exact),
                cosine(nk.grads, exact));
  }
  // (sama with P = alpha I is neumann's identity term alone: the formula of neumann:0.)
  REQUIRE(cosine(s.grads, exact) > 0);  // a descent direction on this problem, nothing more is claimed
}

int main() { return instill_test::run_all(); }
