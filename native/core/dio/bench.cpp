// See bench.h.
#include "dio/bench.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "common/memory.h"
#include "dio/dio.h"
#include "hypergrad/hypergrad.h"

namespace instill::dio {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

namespace {

template <class F>
int64_t peak_of(F&& f) {
  MemoryTracker::reset_peak();
  const int64_t base = MemoryTracker::current_bytes();
  f();
  return MemoryTracker::peak_bytes() - base;
}

// float32 matmul rate of this machine now (GFLOP/s, best of a few 512 x 512 products).
double matmul_gflops() {
  auto a = at::randn({512, 512}), b = at::randn({512, 512});
  at::Tensor c = at::matmul(a, b);
  double best = 1e300;
  for (int r = 0; r < 5; ++r) {
    const double t0 = now_s();
    for (int i = 0; i < 4; ++i) c = at::matmul(a, b);
    best = std::min(best, (now_s() - t0) / 4);
  }
  return 2.0 * 512 * 512 * 512 / best / 1e9;
}

DioBatch random_dio_batch(const t5::T5Config& cfg, int64_t B, int64_t S, int64_t T, bool with_tasks, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  DioBatch b;
  b.batch.input_ids = at::randint(2, cfg.vocab_size, {B, S}, gen, at::kLong);
  b.batch.attention_mask = at::ones({B, S}, at::kLong);
  b.batch.labels = at::randint(2, cfg.vocab_size, {B, T}, gen, at::kLong);
  if (with_tasks) b.task_ids = at::arange(B, at::kLong);
  return b;
}

}  // namespace

BenchResult bench_hypergrad(const BenchOptions& o) {
  MemoryTracker::install();
  BenchResult r;
  r.threads = at::get_num_threads();
  r.interop_threads = at::get_num_interop_threads();
  r.matmul_gflops = matmul_gflops();
  torch::AutoGradMode grad_on(true);
  t5::T5Config cfg = o.config;
  cfg.dropout_rate = 0.0;
  t5::T5ForConditionalGeneration model(cfg);
  model->init_weights(o.seed);
  model->train();
  DioOptions dopt;
  dopt.variant = "prompt";
  dopt.prompt_length = o.prompt_length;
  dopt.num_tasks = o.batch;
  dopt.seed = o.seed;
  dopt.inner.name = "adamw";
  dopt.inner.lr = 1e-6;  // the full-step cases move theta a little every run; keep the problem where it is
  dopt.inner.schedule = "constant";
  dopt.outer.name = "adamw";
  dopt.outer.lr = 1e-6;
  dopt.outer.schedule = "constant";
  dopt.hypergrad_options.alpha = 1e-3;
  dopt.hypergrad_options.damping = 100.0;
  DioTrainer tr(model, dopt);
  DioBatch train = random_dio_batch(cfg, o.batch, o.source_length, o.target_length, true, o.seed + 1);
  DioBatch meta = random_dio_batch(cfg, o.batch, o.source_length, o.target_length, false, o.seed + 2);
  auto th = tr.theta();
  for (const auto& p : th) r.parameters += p.numel();
  std::vector<at::Tensor> v;
  {
    auto gen = at::detail::createCPUGenerator(o.seed + 3);
    for (const auto& p : th) v.push_back(at::randn(p.sizes(), gen, at::kDouble).to(p.options()));
  }
  hypergrad::LossFn lf = [&] { return tr.loss(train); };
  hypergrad::HypergradOptions ho;
  ho.alpha = 1e-3;
  ho.damping = 100.0;  // keeps CG's system positive definite at a random init, so cg:K runs all K iterations
  ho.inner_lr = 1e-3;
  auto pb = tr.problem(train, meta);

  struct Runner {
    BenchCase c;
    std::function<void(BenchCase&)> fn;
    std::function<void()> prep;  // untimed, before every run
  };
  std::vector<Runner> runs;
  auto add = [&](const std::string& name, std::function<void(BenchCase&)> fn, std::function<void()> prep = nullptr) {
    runs.push_back({BenchCase{name}, fn, prep});
  };
  add("train_step", [&](BenchCase&) {  // one forward + backward (what the cost model calls a training step)
    for (auto& p : th) p.mutable_grad() = at::Tensor();
    tr.loss(train).backward();
    for (auto& p : th) p.mutable_grad() = at::Tensor();
  });
  add("grad", [&](BenchCase&) { auto g = torch::autograd::grad({tr.loss(train)}, th, {}, false, false, true); });
  add("hvp", [&](BenchCase&) { auto h = hypergrad::hvp(lf, th, v); });
  // The marginal HVP that neumann:K / cg:K pay per term: one double backward on a kept gradient graph.
  std::vector<at::Tensor> fgraph;
  add(
      "hvp_on_graph", [&](BenchCase&) { auto h = hypergrad::vjp(fgraph, v, th, /*retain_graph=*/true); },
      [&] {
        fgraph.clear();
        fgraph = torch::autograd::grad({tr.loss(train)}, th, {}, true, true, true);
      });
  for (const auto& spec : o.specs)
    add(spec, [&, spec](BenchCase& c) {
      auto res = hypergrad::compute_hypergradient(spec, pb, ho);
      c.hvp_count = res.stats.hvp_count;
      c.grad_count = res.stats.grad_count;
      c.iterations = res.stats.iterations;
      c.negative_curvature = res.stats.negative_curvature;
    });
  if (!o.dio_specs.empty()) {
    // Full DIO steps: a plain inner step (no outer update) and steps with an outer update by each spec. One trainer
    // per spec (the spec is fixed at construction), sharing the model.
    add("dio_step", [&](BenchCase&) { tr.step(train, nullptr); });
    for (const auto& spec : o.dio_specs) {
      DioOptions d2 = dopt;
      d2.hypergrad = spec;
      auto t2 = std::make_shared<DioTrainer>(model, d2);
      add("dio_outer:" + spec, [&, t2](BenchCase& c) {
        auto s = t2->step(train, &meta);
        c.hvp_count = s.hvp_count;
        c.grad_count = s.grad_count;
      });
    }
  }
  for (auto& x : runs) {  // warm-up round
    if (x.prep) x.prep();
    x.fn(x.c);
  }
  auto median = [](std::vector<double> x) {
    std::sort(x.begin(), x.end());
    const size_t n = x.size();
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
  };
  const int64_t min_rounds = std::max<int64_t>(1, o.repeats);
  const int64_t max_rounds = std::max(min_rounds, o.max_repeats);
  for (int64_t rep = 0; rep < max_rounds; ++rep) {
    std::vector<double> before;
    for (auto& x : runs) before.push_back(x.c.ratio_to_train_step.empty() ? 0.0 : median(x.c.ratio_to_train_step));
    std::vector<double> secs(runs.size());
    for (size_t i = 0; i < runs.size(); ++i) {
      if (runs[i].prep) runs[i].prep();
      const double t0 = now_s();
      runs[i].fn(runs[i].c);
      secs[i] = now_s() - t0;
    }
    for (size_t i = 0; i < runs.size(); ++i) {
      runs[i].c.seconds.push_back(secs[i]);
      runs[i].c.ratio_to_train_step.push_back(secs[i] / secs[0]);
      runs[i].c.ratio_to_grad.push_back(secs[i] / secs[1]);
    }
    if (rep + 1 >= min_rounds) {
      bool settled = true;
      for (size_t i = 0; i < runs.size(); ++i)
        if (std::fabs(median(runs[i].c.ratio_to_train_step) - before[i]) > 0.03 * before[i]) settled = false;
      r.stable = settled;
      if (settled) break;
    }
  }
  for (auto& x : runs) {
    if (x.prep) x.prep();
    x.c.peak_bytes = peak_of([&] { x.fn(x.c); });
    r.cases.push_back(x.c);
  }
  fgraph.clear();
  return r;
}

}  // namespace instill::dio
