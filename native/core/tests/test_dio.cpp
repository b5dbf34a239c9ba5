// DIO bilevel trainer on T5 (dio/dio.h): hypergradients w.r.t. the learnable instructions checked against
// float64 finite differences through one inner SGD step, memory of the implicit methods flat in K, and the
// bilevel loop changing phi and theta and lowering the meta objective on a fixed toy problem.
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <unistd.h>
#include <string>
#include <vector>

#include "common/memory.h"
#include "hypergrad/hypergrad.h"
#include "tests/check.h"
#include "tests/test_t5_common.h"
#include "t5/generate.h"
#include "dio/dio.h"

using instill::MemoryTracker;
using instill::dio::DioBatch;
using instill::dio::DioOptions;
using instill::dio::DioTrainer;
namespace hg = instill::hypergrad;

namespace {

instill::t5::T5ForConditionalGeneration make_model(at::ScalarType dtype, uint64_t seed, int64_t d_model = 16,
                                                  double dropout = 0.0) {
  auto cfg = t5test::micro_config(true, false, 23);
  cfg.dropout_rate = dropout;
  if (d_model != 16) {
    cfg.d_model = d_model;
    cfg.d_ff = 2 * d_model;
    cfg.d_kv = d_model / 4;
  }
  instill::t5::T5ForConditionalGeneration m(cfg);
  m->init_weights(seed);
  m->to(dtype);
  return m;
}

DioBatch make_batch(int64_t B, int64_t S, int64_t T, uint64_t seed, bool tasks, bool instr) {
  DioBatch b;
  t5test::random_batch(B, S, 23, seed, b.batch.input_ids, b.batch.attention_mask);
  auto gen = at::detail::createCPUGenerator(seed + 100);
  b.batch.labels = at::randint(2, 23, {B, T}, gen, at::kLong);
  b.batch.labels[B - 1][T - 1] = -100;
  if (tasks) b.task_ids = at::arange(B, at::kLong) % 2;
  if (instr) {
    b.instr_ids = at::randint(2, 23, {B, 4}, gen, at::kLong);
    b.instr_mask = at::ones({B, 4}, at::kLong);
    b.instr_mask[0][3] = 0;
  }
  return b;
}

DioOptions options(const std::string& variant, const std::string& spec) {
  DioOptions o;
  o.variant = variant;
  o.prompt_length = 3;
  o.num_tasks = 2;
  o.hypergrad = spec;
  o.inner.name = "adamw";
  o.inner.lr = 1e-2;
  o.inner.schedule = "constant";
  o.outer.name = "adamw";
  o.outer.lr = 1e-2;
  o.outer.schedule = "constant";
  o.outer.clip_norm = 0;
  o.seed = 7;
  return o;
}

// F(phi) = L_meta(theta - lr * grad_theta L_train(theta, phi), phi), theta restored afterwards.
double unrolled_meta(DioTrainer& tr, const DioBatch& train, const DioBatch& meta, double lr) {
  auto th = tr.theta();
  std::vector<at::Tensor> saved;
  for (auto& p : th) saved.push_back(p.detach().clone());
  double out;
  {
    torch::AutoGradMode on(true);
    auto g = torch::autograd::grad({tr.loss(train)}, th, {}, false, false, true);
    torch::NoGradGuard ng;
    for (size_t i = 0; i < th.size(); ++i)
      if (g[i].defined()) th[i].sub_(lr * g[i]);
    out = tr.loss(meta).item<double>();
    for (size_t i = 0; i < th.size(); ++i) th[i].copy_(saved[i]);
  }
  return out;
}

void check_unroll1_against_fd(const std::string& variant) {
  auto model = make_model(at::kDouble, 3);
  model->train();  // dropout is 0 in the micro config
  const double lr = 0.5;
  DioTrainer tr(model, options(variant, "unroll:1,lr=0.5"), {{5, 6, 7, 8}, {}});
  const bool emb = variant == "embedder";
  DioBatch train = make_batch(3, 6, 4, 11, !emb, emb);
  DioBatch meta = make_batch(2, 5, 3, 12, false, emb);
  auto pb = tr.problem(train, meta);
  auto res = hg::compute_hypergradient("unroll:1,lr=0.5", pb);
  // theta untouched by the engine
  auto phi = tr.phi();
  REQUIRE(res.grads.size() == phi.size());
  auto gen = at::detail::createCPUGenerator(5);
  int checked = 0;
  double max_rel = 0;
  for (size_t i = 0; i < phi.size(); ++i) {
    REQUIRE(res.grads[i].abs().sum().item<double>() > 0);
    for (int rep = 0; rep < 4; ++rep) {
      const int64_t j = at::randint(0, phi[i].numel(), {1}, gen, at::kLong).item<int64_t>();
      auto flat = phi[i].detach().view({-1});
      const double x0 = flat[j].item<double>();
      const double eps = 1e-5;
      {
        torch::NoGradGuard ng;
        flat[j] = x0 + eps;
      }
      const double fp = unrolled_meta(tr, train, meta, lr);
      {
        torch::NoGradGuard ng;
        flat[j] = x0 - eps;
      }
      const double fm = unrolled_meta(tr, train, meta, lr);
      {
        torch::NoGradGuard ng;
        flat[j] = x0;
      }
      const double fd = (fp - fm) / (2 * eps);
      const double an = res.grads[i].view({-1})[j].item<double>();
      const double rel = std::fabs(fd - an) / std::max(1e-8, std::fabs(fd) + std::fabs(an));
      max_rel = std::max(max_rel, rel);
      REQUIRE_MSG(std::fabs(fd - an) <= 1e-6 + 1e-5 * std::fabs(fd),
                  variant + " phi[" + std::to_string(i) + "][" + std::to_string(j) + "]: fd " + std::to_string(fd) +
                      " vs unroll:1 " + std::to_string(an));
      ++checked;
    }
  }
  std::printf("  %s: %d entries, max relative difference %.3g\n", variant.c_str(), checked, max_rel);
}

}  // namespace

TEST(unroll1_hypergradient_matches_fd_prompt_variant) { check_unroll1_against_fd("prompt"); }

TEST(unroll1_hypergradient_matches_fd_embedder_variant) { check_unroll1_against_fd("embedder"); }

TEST(prompt_init_from_written_instruction_and_vocab) {
  auto model = make_model(at::kFloat, 3);
  DioTrainer tr(model, options("prompt", "neumann:1"), {{5, 6}, {}});
  auto P = tr.phi()[0];
  REQUIRE(P.sizes().equals(std::vector<int64_t>{2, 3, 16}));
  auto W = model->shared->weight.detach();
  REQUIRE(P[0][0].equal(W[5]));
  REQUIRE(P[0][1].equal(W[6]));
  REQUIRE(P[0][2].equal(W[5]));  // cycled
  // the empty row comes from sampled vocabulary embeddings: each row equals some embedding row
  for (int64_t i = 0; i < 3; ++i) REQUIRE(((W - P[1][i]).abs().sum(1) == 0).any().item<bool>());
  REQUIRE_THROWS(DioTrainer(model, options("prompt", "neumann:1"), {{5}}));       // wrong number of rows
  REQUIRE_THROWS(DioTrainer(model, options("prompt", "neumann:1"), {{5}, {99}}));  // id out of range
  REQUIRE_THROWS(DioTrainer(model, options("bogus", "neumann:1")));
  REQUIRE_THROWS(DioTrainer(model, options("prompt", "newton:3")));
  DioBatch bad = make_batch(2, 5, 3, 1, true, false);
  bad.task_ids = torch::tensor({0, 2}, at::kLong);
  REQUIRE_THROWS(tr.loss(bad));
}

TEST(implicit_methods_run_and_memory_is_flat_in_k) {
  MemoryTracker::install();
  auto model = make_model(at::kFloat, 4, 64);
  DioTrainer tr(model, options("prompt", "neumann:1"));
  model->train();
  DioBatch train = make_batch(4, 12, 6, 21, true, false);
  DioBatch meta = make_batch(4, 12, 6, 22, false, false);
  auto pb = tr.problem(train, meta);
  hg::HypergradOptions ho;
  ho.alpha = 1e-3;
  ho.damping = 1.0;
  ho.inner_lr = 1e-2;
  auto peak = [&](const std::string& spec, std::vector<at::Tensor>* grads) {
    MemoryTracker::reset_peak();
    const int64_t base = MemoryTracker::current_bytes();
    auto r = hg::compute_hypergradient(spec, pb, ho);
    const int64_t p = MemoryTracker::peak_bytes() - base;
    for (auto& g : r.grads) REQUIRE(torch::isfinite(g).all().item<bool>());
    if (grads) *grads = r.grads;
    return p;
  };
  std::vector<at::Tensor> g1, g10;
  const int64_t n1 = peak("neumann:1", &g1), n10 = peak("neumann:10", &g10);
  const int64_t c1 = peak("cg:1", nullptr), c10 = peak("cg:10", nullptr);
  const int64_t u1 = peak("unroll:1", nullptr), u10 = peak("unroll:10", nullptr);
  int64_t theta_bytes = 0;
  for (auto& p : tr.theta()) theta_bytes += p.numel() * 4;
  std::printf("  peak bytes: neumann 1/10 %lld/%lld, cg 1/10 %lld/%lld, unroll 1/10 %lld/%lld (theta %lld)\n",
              (long long)n1, (long long)n10, (long long)c1, (long long)c10, (long long)u1, (long long)u10,
              (long long)theta_bytes);
  REQUIRE(n10 <= n1 + n1 / 5);
  REQUIRE(c10 <= c1 + c1 / 5);
  REQUIRE(u10 >= u1 + 5 * theta_bytes);  // unrolling keeps K iterates: the contrast that makes "flat" meaningful
  REQUIRE(!g1[0].equal(g10[0]));         // more Neumann terms change the answer
}

TEST(bilevel_step_changes_phi_and_theta) {
  auto model = make_model(at::kFloat, 5);
  DioTrainer tr(model, options("prompt", "neumann:3,alpha=0.01"));
  DioBatch train = make_batch(3, 6, 4, 31, true, false);
  DioBatch meta = make_batch(2, 6, 4, 32, false, false);
  auto phi0 = tr.phi()[0].detach().clone();
  std::vector<at::Tensor> th0;
  for (auto& p : tr.theta()) th0.push_back(p.detach().clone());
  auto st = tr.step(train, &meta);
  REQUIRE(st.outer_updated);
  REQUIRE(std::isfinite(st.meta_loss) && std::isfinite(st.hypergrad_norm) && st.hypergrad_norm > 0);
  REQUIRE(st.hvp_count >= 3);
  REQUIRE(!tr.phi()[0].equal(phi0));
  // only the prompts of the tasks in the batch (0 and 1 both present) move; theta moves
  bool theta_moved = false;
  auto th = tr.theta();
  for (size_t i = 0; i < th.size(); ++i) theta_moved = theta_moved || !th[i].equal(th0[i]);
  REQUIRE(theta_moved);
  // meta_every = 0: fixed instructions, phi never moves
  auto o = options("prompt", "neumann:3");
  o.meta_every = 0;
  DioTrainer fixed(make_model(at::kFloat, 5), o);
  auto p0 = fixed.phi()[0].detach().clone();
  auto st2 = fixed.step(train, &meta);
  REQUIRE(!st2.outer_updated);
  REQUIRE(fixed.phi()[0].equal(p0));
}

// The outer optimizer alone on a fixed toy problem: with unroll:1 the hypergradient is the exact gradient of
// F(phi) = L_meta(theta - lr grad L_train(theta, phi), phi), so small outer steps must lower F.
TEST(outer_steps_lower_the_unrolled_meta_objective) {
  for (std::string variant : {"prompt", "embedder"}) {
    auto model = make_model(at::kDouble, 6);
    auto o = options(variant, "unroll:1,lr=0.5");
    o.outer.lr = 1e-3;
    DioTrainer tr(model, o);
    const bool emb = variant == "embedder";
    DioBatch train = make_batch(3, 6, 4, 41, !emb, emb);
    DioBatch meta = make_batch(3, 6, 4, 42, false, emb);
    std::vector<double> f;
    f.push_back(unrolled_meta(tr, train, meta, 0.5));
    for (int s = 0; s < 5; ++s) {
      auto pb = tr.problem(train, meta);
      auto res = hg::compute_hypergradient(o.hypergrad, pb);
      tr.outer_optimizer().zero_grad();
      hg::apply_to_grad(pb, res);
      tr.outer_optimizer().apply();
      f.push_back(unrolled_meta(tr, train, meta, 0.5));
    }
    std::printf("  %s: F %.6f -> %.6f\n", variant.c_str(), f.front(), f.back());
    for (size_t i = 1; i < f.size(); ++i) REQUIRE_MSG(f[i] < f[i - 1], variant + " step " + std::to_string(i));
  }
}

TEST(alternating_bilevel_steps_lower_the_meta_loss) {
  auto model = make_model(at::kFloat, 8);
  auto o = options("embedder", "neumann:3,alpha=0.01");
  o.inner.lr = 3e-3;
  DioTrainer tr(model, o);
  DioBatch train = make_batch(4, 6, 4, 51, false, true);
  DioBatch meta = make_batch(4, 6, 4, 52, false, true);
  std::vector<double> m;
  for (int s = 0; s < 8; ++s) m.push_back(tr.step(train, &meta).meta_loss);
  std::printf("  meta loss %.4f -> %.4f\n", m.front(), m.back());
  REQUIRE(m.back() < m.front());
  REQUIRE(tr.steps() == 8);
}

TEST(phi_save_load_roundtrip) {
  auto model = make_model(at::kFloat, 9);
  DioTrainer a(model, options("embedder", "neumann:1"));
  DioTrainer b(make_model(at::kFloat, 9), [] {
    auto o = options("embedder", "neumann:1");
    o.seed = 99;
    return o;
  }());
  const std::string path = "/tmp/instill_test_dio_phi_" + std::to_string(::getpid()) + ".safetensors";
  a.save_phi(path);
  REQUIRE(!b.phi()[0].equal(a.phi()[0]));
  b.load_phi(path);
  for (size_t i = 0; i < a.phi().size(); ++i) REQUIRE(b.phi()[i].equal(a.phi()[i]));
  DioTrainer c(make_model(at::kFloat, 9), options("prompt", "neumann:1"));
  REQUIRE_THROWS(c.load_phi(path));  // other variant
  std::remove(path.c_str());
}

// ---------- dropout, the inner step reused, the meta loss, the lr, SAMA ----------

TEST(unroll_under_dropout_matches_finite_differences_through_the_same_steps_t5) {
  auto model = make_model(at::kDouble, 3, 16, /*dropout=*/0.1);
  model->train();
  const double lr = 0.5;
  const int64_t K = 2;
  DioTrainer tr(model, options("prompt", "unroll:2"), {{5, 6, 7, 8}, {}});
  DioBatch train = make_batch(3, 6, 4, 11, true, false);
  DioBatch meta = make_batch(2, 5, 3, 12, false, false);
  auto pb = tr.problem(train, meta);
  auto start = hg::RngState::capture(tr.theta());
  hg::HypergradOptions ho;
  ho.inner_lr = lr;
  auto res = hg::compute_hypergradient("unroll:2", pb, ho);
  // F(phi): K SGD steps then the meta loss, every forward drawing its masks in order from `start`.
  auto th = tr.theta();
  std::vector<at::Tensor> saved;
  for (auto& p : th) saved.push_back(p.detach().clone());
  auto F = [&] {
    start.restore();
    torch::AutoGradMode on(true);
    for (int64_t k = 0; k < K; ++k) {
      auto g = torch::autograd::grad({tr.loss(train)}, th, {}, false, false, true);
      torch::NoGradGuard ng;
      for (size_t i = 0; i < th.size(); ++i)
        if (g[i].defined()) th[i].sub_(lr * g[i]);
    }
    double out;
    {
      torch::NoGradGuard ng;
      out = tr.loss(meta).item<double>();
      for (size_t i = 0; i < th.size(); ++i) th[i].copy_(saved[i]);
    }
    return out;
  };
  auto flat = tr.phi()[0].detach().view({-1});
  auto gen = at::detail::createCPUGenerator(9);
  double worst = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const int64_t j = at::randint(0, flat.numel(), {1}, gen, at::kLong).item<int64_t>();
    const double x0 = flat[j].item<double>(), eps = 1e-5;
    torch::NoGradGuard ng;
    flat[j] = x0 + eps;
    const double fp = F();
    flat[j] = x0 - eps;
    const double fm = F();
    flat[j] = x0;
    const double fd = (fp - fm) / (2 * eps), an = res.grads[0].view({-1})[j].item<double>();
    worst = std::max(worst, std::fabs(fd - an) / std::max(1e-8, std::fabs(fd)));
    REQUIRE_MSG(std::fabs(fd - an) <= 1e-6 + 1e-5 * std::fabs(fd),
                "phi[" << j << "]: finite differences " << fd << " vs unroll:2 " << an << " (dropout 0.1)");
  }
  std::printf("  T5 micro, dropout 0.1: unroll:2 vs finite differences through the same 2 steps: max rel diff %.2e\n", worst);
}

TEST(outer_step_reuses_the_inner_gradient_and_returns_the_meta_loss) {
  auto model = make_model(at::kDouble, 5);
  model->train();  // dropout 0 in the micro config: the reference forward below is comparable
  DioTrainer tr(model, options("prompt", "neumann:1"), {{5, 6}, {}});
  DioBatch train = make_batch(3, 6, 4, 31, true, false);
  DioBatch meta = make_batch(2, 5, 3, 32, false, false);
  double meta_before, train_before;
  {
    torch::NoGradGuard ng;
    meta_before = tr.loss(meta).item<double>();
    train_before = tr.loss(train).item<double>();
  }
  auto st = tr.step(train, &meta);
  REQUIRE(st.outer_updated);
  REQUIRE_MSG(st.grad_count == 1, "an outer step with neumann:1 computed " << st.grad_count << " gradients (v1 only expected)");
  REQUIRE(st.hvp_count == 2);
  REQUIRE_CLOSE(st.meta_loss, meta_before, 1e-12);  // the outer loss the hypergradient took v1 from, at theta_t
  REQUIRE_CLOSE(st.train_loss, train_before, 1e-12);
}

TEST(unroll_and_fd_take_the_inner_optimizers_learning_rate) {
  for (const char* spec : {"unroll:1", "fd"}) {
    for (bool follow : {true, false}) {
      auto model = make_model(at::kDouble, 6);
      model->train();
      auto o = options("prompt", spec);
      o.inner.lr = 0.05;  // differs from HypergradOptions' default 1e-2
      o.hypergrad_options.inner_lr = 0.2;
      o.hypergrad_lr_from_inner = follow;
      DioTrainer tr(model, o, {{5, 6}, {}});
      DioBatch train = make_batch(3, 6, 4, 41, true, false);
      DioBatch meta = make_batch(2, 5, 3, 42, false, false);
      auto pb = tr.problem(train, meta);
      hg::HypergradOptions ho;
      ho.inner_lr = follow ? 0.05 : 0.2;
      auto ref = hg::compute_hypergradient(spec, pb, ho);
      const double ref_norm = ref.grads[0].norm().item<double>();
      auto st = tr.step(train, &meta);
      REQUIRE_MSG(std::fabs(st.hypergrad_norm - ref_norm) <= 1e-9 * ref_norm,
                  spec << (follow ? " (lr from the inner optimizer)" : " (fixed lr)") << ": hypergradient norm "
                       << st.hypergrad_norm << " vs " << ref_norm << " with lr " << ho.inner_lr);
    }
  }
}

TEST(adamw_preconditioner_is_the_derivative_of_the_update) {
  auto model = make_model(at::kDouble, 8);
  model->train();
  auto o = options("prompt", "sama");
  o.inner.clip_norm = 0;
  o.inner.weight_decay = 0.01;
  DioTrainer tr(model, o, {{5, 6}, {}});
  DioBatch train = make_batch(3, 6, 4, 51, true, false);
  DioBatch meta = make_batch(2, 5, 3, 52, false, false);
  for (int s = 0; s < 3; ++s) tr.step(train, &meta);  // AdamW state with history (t = 3)
  auto th = tr.theta();
  std::vector<at::Tensor> g, v;
  auto gen = at::detail::createCPUGenerator(3);
  for (auto& p : th) {
    g.push_back(at::randn(p.sizes(), gen, at::kDouble) * 0.1);
    v.push_back(at::randn(p.sizes(), gen, at::kDouble));
  }
  auto pv = tr.precondition(g, v);
  // d/dh of the update with gradient g + h v, by central differences on copies of the optimizer
  auto update = [&](double h) {
    std::vector<std::pair<std::string, at::Tensor>> ps;
    std::vector<at::Tensor> before;
    for (size_t i = 0; i < th.size(); ++i) {
      ps.emplace_back(tr.inner_optimizer().params()[i].first, th[i].detach().clone().requires_grad_(true));
      before.push_back(th[i].detach().clone());
    }
    instill::train::Optimizer opt(ps, tr.inner_optimizer().config());
    opt.load_state_dict(tr.inner_optimizer().state_dict());
    for (size_t i = 0; i < ps.size(); ++i) ps[i].second.mutable_grad() = g[i] + h * v[i];
    opt.apply();
    std::vector<at::Tensor> d;
    for (size_t i = 0; i < ps.size(); ++i) d.push_back(before[i] - ps[i].second.detach());
    return d;
  };
  const double h = 1e-6;
  auto up = update(h), dn = update(-h);
  double num = 0, den = 0;
  for (size_t i = 0; i < th.size(); ++i) {
    auto fd = (up[i] - dn[i]) / (2 * h);
    num += (fd - pv[i]).pow(2).sum().item<double>();
    den += fd.pow(2).sum().item<double>();
  }
  const double e = std::sqrt(num / den);
  std::printf("  AdamW update derivative vs central differences: rel err %.2e\n", e);
  REQUIRE(e < 1e-6);
  // a DIO run with sama: no Hessian-vector products, phi moves
  auto phi0 = tr.phi()[0].detach().clone();
  auto st = tr.step(train, &meta);
  REQUIRE(st.outer_updated);
  REQUIRE(st.hvp_count == 0);
  REQUIRE(st.grad_count == 3);  // v1 and the two differences
  REQUIRE(!tr.phi()[0].equal(phi0));
}

TEST(score_options_reads_the_soft_tokens) {
  auto model = make_model(at::kDouble, 9);
  DioTrainer tr(model, options("prompt", "neumann:1"), {{5, 6}, {7}});
  DioBatch b = make_batch(2, 5, 3, 61, true, false);
  at::Tensor opts = at::full({2, 2, 3}, -100, at::kLong);
  opts.index_put_({0, 0, at::indexing::Slice(0, 2)}, torch::tensor({4, 1}));
  opts.index_put_({0, 1, at::indexing::Slice(0, 3)}, torch::tensor({5, 6, 1}));
  opts.index_put_({1, 0, at::indexing::Slice(0, 2)}, torch::tensor({7, 1}));
  opts.index_put_({1, 1, at::indexing::Slice(0, 2)}, torch::tensor({8, 1}));
  auto with = tr.score_options(b, opts);
  DioBatch plain = b;
  plain.task_ids = at::Tensor();
  auto without = tr.score_options(plain, opts);
  instill::t5::T5Inputs in;
  in.input_ids = b.batch.input_ids;
  in.attention_mask = b.batch.attention_mask;
  torch::NoGradGuard ng;
  model->eval();
  auto ref = instill::t5::score_options(*model, in, opts).sum.to(at::kDouble);
  REQUIRE((without - ref).abs().max().item<double>() < 1e-12);  // no soft tokens: the plain model's scores
  REQUIRE((with - ref).abs().max().item<double>() > 1e-6);      // soft tokens change them
  // equals the summed token log-likelihood of each option with the soft tokens in front (the loss path)
  for (int64_t e = 0; e < 2; ++e)
    for (int64_t k = 0; k < 2; ++k) {
      DioBatch one;
      one.batch.input_ids = b.batch.input_ids.narrow(0, e, 1);
      one.batch.attention_mask = b.batch.attention_mask.narrow(0, e, 1);
      one.batch.labels = opts[e][k].unsqueeze(0);
      one.task_ids = b.task_ids.narrow(0, e, 1);
      const double n = (opts[e][k] != -100).sum().item<double>();
      REQUIRE_CLOSE(-tr.loss(one).item<double>() * n, with[e][k].item<double>(), 1e-10);
    }
}

int main() { return instill_test::run_all(); }
