// Benchmark of the hypergradient methods on an MLP-sized DIO-like problem: a per-token MLP classifier over
// token embeddings with a learnable soft prompt (phi, P vectors of d) prepended to every sequence, theta the
// MLP's parameters. Prints one JSON object:
//   {train_step_s, grad_s, hvp_s, hvp_full_s, threads, params, methods: {"neumann:3": {seconds,
//    ratio_to_train_step, peak_bytes, hvp_count, grad_count}, ...}}
// train_step_s: forward + backward + SGD update; grad_s: forward + backward (autograd::grad);
// hvp_s: one extra double backward on a retained gradient graph (the marginal HVP that neumann/cg pay per
// iteration); hvp_full_s: forward + create_graph backward + double backward. peak_bytes: the counting CPU
// allocator's peak above the live bytes at the start of the call.
//
// Usage: bench_hypergrad [--reps N] [--threads N] [--d D] [--hidden H] [--quick]
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/memory.h"
#include "hypergrad/hypergrad.h"

using instill::MemoryTracker;
using namespace instill::hypergrad;
using TensorList = std::vector<at::Tensor>;

namespace {

struct Problem {
  int64_t d, hidden, classes = 64, B = 32, T = 16, P = 8;
  TensorList theta;
  at::Tensor phi, X, Y, Xv, Yv;
  BilevelProblem pb;
  Problem(int64_t d_, int64_t hidden_) : d(d_), hidden(hidden_) {
    torch::manual_seed(0);
    auto W1 = (torch::randn({d, hidden}) / std::sqrt(double(d))).requires_grad_(true);
    auto b1 = torch::zeros({hidden}).requires_grad_(true);
    auto W2 = (torch::randn({hidden, d}) / std::sqrt(double(hidden))).requires_grad_(true);
    auto b2 = torch::zeros({d}).requires_grad_(true);
    auto Wc = (torch::randn({d, classes}) / std::sqrt(double(d))).requires_grad_(true);
    theta = {W1, b1, W2, b2, Wc};
    phi = (0.1 * torch::randn({P, d})).requires_grad_(true);
    X = torch::randn({B, T, d});
    Y = torch::randint(classes, {B}, torch::kLong);
    Xv = torch::randn({B, T, d});
    Yv = torch::randint(classes, {B}, torch::kLong);
    pb.inner_params = theta;
    pb.outer_params = {phi};
    pb.inner_loss = [this] { return loss(theta, X, Y); };
    pb.outer_loss = [this] { return loss(theta, Xv, Yv); };
  }
  void functional(bool on) {
    if (on) {
      pb.inner_loss_at = [this](const TensorList& th) { return loss(th, X, Y); };
      pb.outer_loss_at = [this](const TensorList& th) { return loss(th, Xv, Yv); };
    } else {
      pb.inner_loss_at = nullptr;
      pb.outer_loss_at = nullptr;
    }
  }
  at::Tensor loss(const TensorList& th, const at::Tensor& x, const at::Tensor& y) const {
    auto prompt = phi.unsqueeze(0).expand({x.size(0), P, d});
    auto h = torch::cat({prompt, x}, 1);                              // B x (P+T) x d
    h = h + torch::gelu(h.matmul(th[0]) + th[1]).matmul(th[2]) + th[3];  // residual MLP block
    auto logits = h.mean(1).matmul(th[4]);
    return torch::nn::functional::cross_entropy(logits, y);
  }
  int64_t param_count() const {
    int64_t n = 0;
    for (auto& t : theta) n += t.numel();
    return n;
  }
};

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

template <typename F>
double median_seconds(int reps, F&& f) {
  f();  // warm-up
  std::vector<double> ts;
  for (int i = 0; i < reps; ++i) {
    double t0 = now();
    f();
    ts.push_back(now() - t0);
  }
  std::sort(ts.begin(), ts.end());
  return ts[ts.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 5, threads = 0;
  int64_t d = 256, hidden = 1024;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_hypergrad: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--reps") reps = std::max(1, std::atoi(next()));
    else if (a == "--threads") threads = std::atoi(next());
    else if (a == "--d") d = std::atoll(next());
    else if (a == "--hidden") hidden = std::atoll(next());
    else if (a == "--quick") quick = true;
    else {
      std::fprintf(stderr, "bench_hypergrad: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if (threads > 0) torch::set_num_threads(threads);
  if (quick) reps = 1;
  MemoryTracker::install();
  Problem pr(d, hidden);
  auto& pb = pr.pb;

  const double train_step_s = median_seconds(reps, [&] {
    auto l = pr.loss(pr.theta, pr.X, pr.Y);
    auto g = torch::autograd::grad({l}, pr.theta);
    torch::NoGradGuard ng;
    for (size_t i = 0; i < pr.theta.size(); ++i) pr.theta[i].sub_(g[i], 1e-4);
  });
  const double grad_s = median_seconds(reps, [&] {
    auto l = pr.loss(pr.theta, pr.X, pr.Y);
    auto g = torch::autograd::grad({l}, pr.theta);
  });
  TensorList v;
  for (auto& t : pr.theta) v.push_back(torch::randn_like(t));
  double hvp_s = 0;
  {
    auto l = pr.loss(pr.theta, pr.X, pr.Y);
    auto f = torch::autograd::grad({l}, pr.theta, {}, true, true);
    hvp_s = median_seconds(reps, [&] { auto hv = vjp(f, v, pr.theta, /*retain_graph=*/true); });
  }
  const double hvp_full_s = median_seconds(reps, [&] { auto hv = hvp(pb.inner_loss, pr.theta, v); });

  nlohmann::json out;
  out["problem"] = {{"params", pr.param_count()}, {"d", d}, {"hidden", hidden}, {"batch", pr.B},
                    {"tokens", pr.T}, {"prompt_tokens", pr.P}, {"dtype", "float32"}};
  out["threads"] = at::get_num_threads();
  out["train_step_s"] = train_step_s;
  out["grad_s"] = grad_s;
  out["hvp_s"] = hvp_s;
  out["hvp_full_s"] = hvp_full_s;
  out["hvp_over_grad"] = hvp_s / grad_s;
  out["hvp_full_over_grad"] = hvp_full_s / grad_s;
  nlohmann::json methods = nlohmann::json::object();
  HypergradOptions o;
  o.inner_lr = 1e-3;
  o.alpha = 1e-3;
  o.damping = 1e-2;
  std::vector<std::string> specs;
  for (int k : {1, 3, 10})
    for (const char* m : {"unroll", "neumann", "cg"}) specs.push_back(std::string(m) + ":" + std::to_string(k));
  specs.push_back("fd");
  // unroll's two execution paths: functional (create_graph through the steps) and reverse over iterates
  std::vector<std::pair<std::string, bool>> runs;
  for (auto& s : specs) {
    runs.push_back({s, false});
    if (s.rfind("unroll", 0) == 0) runs.push_back({s, true});
  }
  for (auto& [spec, functional] : runs) {
    pr.functional(functional);
    HypergradResult res;
    int64_t peak = 0;
    const double secs = median_seconds(quick ? 1 : std::max(1, reps / 2), [&] {
      const int64_t base = MemoryTracker::current_bytes();
      MemoryTracker::reset_peak();
      res = compute_hypergradient(spec, pb, o);
      peak = std::max(peak, MemoryTracker::peak_bytes() - base);
    });
    std::string key = functional ? spec + "/functional" : spec;
    methods[key] = {{"seconds", secs},
                    {"ratio_to_train_step", secs / train_step_s},
                    {"target_ratio", spec.rfind("neumann", 0) == 0 || spec.rfind("cg", 0) == 0
                                         ? nlohmann::json(1 + 1.5 * res.k)
                                         : nlohmann::json(nullptr)},
                    {"peak_bytes", peak},
                    {"hvp_count", res.stats.hvp_count},
                    {"grad_count", res.stats.grad_count}};
  }
  pr.functional(false);
  out["methods"] = methods;
  std::cout << out.dump(2) << std::endl;
  return 0;
}
