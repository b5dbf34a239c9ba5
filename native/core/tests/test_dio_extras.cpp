// DIO extensions (dio/dio.h): demonstration selection by straight-through Gumbel-softmax (forward equals the
// model reading the selected demonstration's tokens; d loss / d logits equals the straight-through formula built
// from finite differences of the relaxed loss; seeded sampling), the embedder reading encoder states (hypergradient
// and HVP against float64 finite differences), and the training state (a run resumed from saved weights, phi and
// state continues bit for bit, dropout on).
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <unistd.h>
#include <vector>

#include "hypergrad/hypergrad.h"
#include "tests/check.h"
#include "tests/test_t5_common.h"
#include "dio/dio.h"

using instill::dio::DioBatch;
using instill::dio::DioOptions;
using instill::dio::DioTrainer;
namespace hg = instill::hypergrad;
namespace t5 = instill::t5;

namespace {

constexpr int64_t kVocab = 23;

t5::T5ForConditionalGeneration make_model(at::ScalarType dtype, uint64_t seed, double dropout = 0.0) {
  auto cfg = t5test::micro_config(true, false, kVocab);
  cfg.dropout_rate = dropout;
  t5::T5ForConditionalGeneration m(cfg);
  m->init_weights(seed);
  m->to(dtype);
  return m;
}

DioOptions options(const std::string& variant, int64_t demos, const std::string& encoding = "embeddings") {
  DioOptions o;
  o.variant = variant;
  o.prompt_length = 3;
  o.num_tasks = 2;
  o.hypergrad = "neumann:2";
  o.inner.name = "adamw";
  o.inner.lr = 1e-2;
  o.inner.schedule = "constant";
  o.outer.name = "adamw";
  o.outer.lr = 5e-2;
  o.outer.schedule = "constant";
  o.outer.clip_norm = 0;
  o.seed = 7;
  o.num_demonstrations = demos;
  o.gumbel_tau = 0.7;
  o.instruction_encoding = encoding;
  return o;
}

// B examples of tasks 0/1 (prompt rows, demo logits rows), 3 candidate demonstrations of uneven length each.
DioBatch make_batch(int64_t B, uint64_t seed, bool tasks, bool instr, bool demos) {
  DioBatch b;
  t5test::random_batch(B, 6, kVocab, seed, b.batch.input_ids, b.batch.attention_mask);
  auto gen = at::detail::createCPUGenerator(seed + 100);
  b.batch.labels = at::randint(2, kVocab, {B, 4}, gen, at::kLong);
  b.batch.labels[B - 1][3] = -100;
  if (tasks) b.task_ids = at::arange(B, at::kLong) % 2;
  if (instr) {
    b.instr_ids = at::randint(2, kVocab, {B, 4}, gen, at::kLong);
    b.instr_mask = at::ones({B, 4}, at::kLong);
    b.instr_mask[0][3] = 0;
  }
  if (demos) {
    const int64_t m = 3, Ld = 5;
    b.demo_ids = at::randint(2, kVocab, {B, m, Ld}, gen, at::kLong);
    b.demo_mask = at::ones({B, m, Ld}, at::kLong);
    for (int64_t i = 0; i < B; ++i)
      for (int64_t j = 0; j < m; ++j) {
        const int64_t len = Ld - (i + j) % 3;  // right padding, as collated by TypeScript
        b.demo_mask[i][j].narrow(0, len, Ld - len).zero_();
        b.demo_ids[i][j].narrow(0, len, Ld - len).zero_();
      }
    b.demo_task_ids = at::arange(B, at::kLong) % 2;
    if (B > 2) b.demo_task_ids[B - 1] = -1;  // an example of a task without logits: candidate 0
  }
  return b;
}

double max_abs(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

}  // namespace

TEST(hard_sample_forward_equals_the_demonstration_text_in_the_input) {
  auto model = make_model(at::kDouble, 3);
  model->eval();
  for (bool with_prompt : {false, true}) {
    DioTrainer tr(model, options("prompt", 3), {{5, 6, 7}, {}});
    DioBatch b = make_batch(3, 11, with_prompt, false, true);
    {
      torch::NoGradGuard ng;  // distinct logits so that some rows select a candidate other than 0
      tr.phi().back().copy_(torch::tensor({{0.0, 2.0, -1.0}, {1.0, 0.0, 3.0}}, at::kDouble));
    }
    tr.sample_demonstrations(b);
    auto demo = tr.demonstrations(b);
    const int64_t B = 3;
    REQUIRE(demo.index[B - 1].item<int64_t>() == 0);  // no logits: first candidate
    REQUIRE((demo.index != 0).any().item<bool>());      // and some row reads another candidate
    // Reference: the selected candidate's tokens (with their padding mask) put in front of the input ids.
    at::Tensor sel_ids = b.demo_ids.gather(1, demo.index.view({B, 1, 1}).expand({B, 1, 5})).squeeze(1);
    at::Tensor sel_mask = b.demo_mask.gather(1, demo.index.view({B, 1, 1}).expand({B, 1, 5})).squeeze(1);
    t5::T5Inputs ref;
    ref.input_ids = at::cat({sel_ids, b.batch.input_ids}, 1);
    ref.attention_mask = at::cat({sel_mask, b.batch.attention_mask}, 1);
    ref.labels = b.batch.labels;
    ref.prefix_embeds = tr.soft_tokens(b);
    t5::T5Inputs mine;
    mine.input_ids = b.batch.input_ids;
    mine.attention_mask = b.batch.attention_mask;
    mine.labels = b.batch.labels;
    at::Tensor soft = tr.soft_tokens(b);
    mine.prefix_embeds = soft.defined() ? at::cat({soft, demo.embeds}, 1) : demo.embeds;
    mine.prefix_mask = soft.defined() ? at::cat({at::ones({B, 3}, demo.mask.options()), demo.mask}, 1) : demo.mask;
    torch::NoGradGuard ng;
    auto r = model->forward(ref), o = model->forward(mine);
    const double dl = max_abs(r.logits, o.logits);
    std::printf("  %s: selected candidates %lld %lld %lld, max |logits difference| %.3g, losses %.12f / %.12f\n",
                with_prompt ? "with soft prompt" : "demonstration only", (long long)demo.index[0].item<int64_t>(),
                (long long)demo.index[1].item<int64_t>(), (long long)demo.index[2].item<int64_t>(), dl,
                r.loss.item<double>(), tr.loss(b).item<double>());
    REQUIRE(dl <= 1e-6);
    REQUIRE(std::fabs(r.loss.item<double>() - tr.loss(b).item<double>()) <= 1e-10);
    // the straight-through weights are exactly one-hot in the forward
    REQUIRE(demo.weights.equal(at::one_hot(demo.index, 3).to(at::kDouble)));
  }
}

TEST(logit_gradient_matches_the_straight_through_formula) {
  auto model = make_model(at::kDouble, 4);
  model->train();  // dropout 0
  auto o = options("embedder", 3);
  DioTrainer tr(model, o);
  {
    torch::NoGradGuard ng;
    tr.phi().back().copy_(torch::tensor({{0.3, -0.2, 0.5}, {-1.0, 0.4, 0.1}}, at::kDouble));
  }
  const int64_t B = 4, m = 3;
  DioBatch b = make_batch(B, 21, false, true, true);
  tr.sample_demonstrations(b);
  at::Tensor a = tr.phi().back();
  auto g = torch::autograd::grad({tr.loss(b)}, {a})[0];
  // Independent: the relaxed loss L(y) with prefix [soft | sum_j y_j E_j] and the selected mask; dL/dy by central
  // finite differences at y = the hard sample; then d s / d a = (diag(s) - s s^T) / tau per example.
  auto demo = tr.demonstrations(b);
  at::Tensor y0 = demo.weights.detach().clone();
  at::Tensor E = model->shared->weight.detach().index_select(0, b.demo_ids.reshape({-1})).view({B, m, 5, 16});
  at::Tensor soft = tr.soft_tokens(b).detach();
  auto relaxed = [&](const at::Tensor& y) {
    torch::NoGradGuard ng;
    t5::T5Inputs in;
    in.input_ids = b.batch.input_ids;
    in.attention_mask = b.batch.attention_mask;
    in.labels = b.batch.labels;
    in.prefix_embeds = at::cat({soft, at::einsum("bm,bmld->bld", {y, E})}, 1);
    in.prefix_mask = at::cat({at::ones({B, 3}, demo.mask.options()), demo.mask}, 1);
    return model->forward(in).loss.item<double>();
  };
  at::Tensor dy = at::zeros({B, m}, at::kDouble);
  const double eps = 1e-6;
  for (int64_t i = 0; i < B; ++i)
    for (int64_t j = 0; j < m; ++j) {
      at::Tensor yp = y0.clone(), ym = y0.clone();
      yp[i][j] += eps;
      ym[i][j] -= eps;
      dy[i][j] = (relaxed(yp) - relaxed(ym)) / (2 * eps);
    }
  at::Tensor expect = at::zeros_like(a);
  for (int64_t i = 0; i < B; ++i) {
    const int64_t t = b.demo_task_ids[i].item<int64_t>();
    if (t < 0) continue;
    at::Tensor s = at::softmax((a.detach()[t] + b.demo_gumbel[i]) / o.gumbel_tau, 0);
    at::Tensor J = (at::diag(s) - at::outer(s, s)) / o.gumbel_tau;  // d s_j / d a_k, symmetric
    expect[t] += at::matmul(J, dy[i]);
  }
  const double diff = max_abs(g, expect), scale = expect.abs().max().item<double>();
  std::printf("  d loss / d logits: max |autograd - formula| %.3g (scale %.3g)\n", diff, scale);
  REQUIRE(scale > 1e-6);
  REQUIRE(diff <= 1e-7 + 1e-6 * scale);
}

TEST(demonstration_sampling_is_seeded_and_reproducible) {
  auto base = make_model(at::kFloat, 5);
  DioTrainer a(make_model(at::kFloat, 5), options("embedder", 3));
  DioTrainer b(make_model(at::kFloat, 5), options("embedder", 3));
  auto o2 = options("embedder", 3);
  o2.seed = 8;
  DioTrainer c(make_model(at::kFloat, 5), o2);
  DioBatch x = make_batch(4, 31, false, true, true), y = x, z = x;
  a.sample_demonstrations(x);
  b.sample_demonstrations(y);
  c.sample_demonstrations(z);
  REQUIRE(x.demo_gumbel.equal(y.demo_gumbel));
  REQUIRE(!x.demo_gumbel.equal(z.demo_gumbel));
  DioBatch x2 = make_batch(4, 31, false, true, true);
  a.sample_demonstrations(x2);
  REQUIRE(!x2.demo_gumbel.equal(x.demo_gumbel));  // a fresh draw each step
  // Whole bilevel steps: same seed, same phi afterwards; the demonstration logits moved.
  DioBatch tr = make_batch(4, 32, false, true, true), meta = make_batch(3, 33, false, true, true);
  meta.demo_task_ids = at::full({3}, -1, at::kLong);
  DioTrainer p(make_model(at::kFloat, 5), options("embedder", 3)), q(make_model(at::kFloat, 5), options("embedder", 3));
  for (int s = 0; s < 3; ++s) {
    p.step(tr, &meta);
    q.step(tr, &meta);
  }
  for (size_t i = 0; i < p.phi().size(); ++i) REQUIRE(p.phi()[i].equal(q.phi()[i]));
  REQUIRE(p.phi().back().abs().sum().item<double>() > 0);
  // bad batches name the field
  DioBatch bad = make_batch(2, 34, false, true, true);
  bad.demo_task_ids = torch::tensor({0, 2}, at::kLong);
  REQUIRE_THROWS(p.loss(bad));
  bad.demo_task_ids = torch::tensor({0, 1}, at::kLong);
  bad.demo_ids = bad.demo_ids.narrow(1, 0, 2);
  bad.demo_mask = bad.demo_mask.narrow(1, 0, 2);
  REQUIRE_THROWS(p.loss(bad));  // 2 candidates where the trainer has 3 logits per task
  auto no = options("embedder", 0);
  DioTrainer n(make_model(at::kFloat, 5), no);
  REQUIRE_THROWS(n.loss(make_batch(2, 35, false, true, true)));  // logits rows asked of a trainer without them
  auto bad_tau = options("embedder", 3);
  bad_tau.gumbel_tau = 0;
  REQUIRE_THROWS(DioTrainer(make_model(at::kFloat, 5), bad_tau));
  auto bad_enc = options("embedder", 0, "states");
  REQUIRE_THROWS(DioTrainer(make_model(at::kFloat, 5), bad_enc));
}

// F(phi) = L_meta(theta - lr * grad_theta L_train(theta, phi), phi), theta restored afterwards.
static double unrolled_meta(DioTrainer& tr, const DioBatch& train, const DioBatch& meta, double lr) {
  auto th = tr.theta();
  std::vector<at::Tensor> saved;
  for (auto& p : th) saved.push_back(p.detach().clone());
  torch::AutoGradMode on(true);
  auto g = torch::autograd::grad({tr.loss(train)}, th, {}, false, false, true);
  torch::NoGradGuard ng;
  for (size_t i = 0; i < th.size(); ++i)
    if (g[i].defined()) th[i].sub_(lr * g[i]);
  const double out = tr.loss(meta).item<double>();
  for (size_t i = 0; i < th.size(); ++i) th[i].copy_(saved[i]);
  return out;
}

TEST(encoder_instruction_encoding_hypergradient_and_hvp_match_fd) {
  auto model = make_model(at::kDouble, 6);
  model->train();  // dropout 0
  DioTrainer tr(model, options("embedder", 3, "encoder"));
  {
    torch::NoGradGuard ng;
    tr.phi().back().copy_(torch::tensor({{0.3, -0.2, 0.5}, {-1.0, 0.4, 0.1}}, at::kDouble));
  }
  DioBatch train = make_batch(3, 41, false, true, true), meta = make_batch(2, 42, false, true, true);
  meta.demo_task_ids = at::full({2}, -1, at::kLong);
  tr.sample_demonstrations(train);
  // the encoder states differ from the token embeddings: the option changes the soft tokens
  DioTrainer emb(make_model(at::kDouble, 6), options("embedder", 3, "embeddings"));
  REQUIRE(max_abs(tr.soft_tokens(train), emb.soft_tokens(train)) > 1e-6);
  auto pb = tr.problem(train, meta);
  auto res = hg::compute_hypergradient("unroll:1,lr=0.5", pb);
  auto phi = tr.phi();
  int checked = 0;
  double max_rel = 0;
  for (size_t i = 0; i < phi.size(); ++i) {
    REQUIRE_MSG(res.grads[i].abs().sum().item<double>() > 0, "phi[" + std::to_string(i) + "] has a zero hypergradient");
    // The demonstration logits act through a hard sample: F is piecewise constant in them and its finite differences
    // are 0; their (straight-through) gradient is checked against the formula above. They do get a hypergradient.
    if (i + 1 == phi.size()) continue;
    auto flat = phi[i].detach().view({-1});
    for (int64_t j : {int64_t{0}, flat.numel() / 2, flat.numel() - 1}) {
      const double x0 = flat[j].item<double>(), eps = 1e-5;
      auto at_x = [&](double x) {
        {
          torch::NoGradGuard ng;
          flat[j] = x;
        }
        return unrolled_meta(tr, train, meta, 0.5);
      };
      const double fd = (at_x(x0 + eps) - at_x(x0 - eps)) / (2 * eps);
      at_x(x0);
      const double an = res.grads[i].view({-1})[j].item<double>();
      max_rel = std::max(max_rel, std::fabs(fd - an) / std::max(1e-8, std::fabs(fd) + std::fabs(an)));
      REQUIRE_MSG(std::fabs(fd - an) <= 1e-6 + 1e-5 * std::fabs(fd),
                  "phi[" + std::to_string(i) + "][" + std::to_string(j) + "]: fd " + std::to_string(fd) + " vs " +
                      std::to_string(an));
      ++checked;
    }
  }
  // HVP through the encoder-read instruction: H v against central differences of the gradient.
  auto th = tr.theta();
  std::vector<at::Tensor> v;
  auto gen = at::detail::createCPUGenerator(9);
  for (auto& p : th) v.push_back(at::randn(p.sizes(), gen, at::kDouble));
  hg::LossFn lf = [&] { return tr.loss(train); };
  auto hv = hg::hvp(lf, th, v);
  auto grad_at = [&](double t) {
    {
      torch::NoGradGuard ng;
      for (size_t i = 0; i < th.size(); ++i) th[i].add_(t * v[i]);
    }
    auto g = torch::autograd::grad({tr.loss(train)}, th, {}, false, false, true);
    {
      torch::NoGradGuard ng;
      for (size_t i = 0; i < th.size(); ++i) th[i].sub_(t * v[i]);
    }
    return g;
  };
  const double h = 1e-5;
  auto gp = grad_at(h), gm = grad_at(-h);
  double worst = 0, scale = 0;
  for (size_t i = 0; i < th.size(); ++i) {
    if (!gp[i].defined()) continue;
    at::Tensor fd = (gp[i] - gm[i]) / (2 * h);
    worst = std::max(worst, max_abs(fd, hv[i]));
    scale = std::max(scale, hv[i].abs().max().item<double>());
  }
  std::printf("  encoder: %d hypergradient entries, max relative difference %.3g; HVP max |fd - exact| %.3g (scale %.3g)\n",
              checked, max_rel, worst, scale);
  REQUIRE(worst <= 1e-6 * std::max(1.0, scale));
}

TEST(training_state_resume_is_bitwise) {
  const std::string dir = "/tmp/instill_test_dio_state_" + std::to_string(::getpid());
  const std::string state = dir + "_state.safetensors", phi = dir + "_phi.safetensors";
  auto o = options("embedder", 3, "encoder");
  o.meta_every = 2;
  DioBatch trb[4], meta[2];
  for (int s = 0; s < 4; ++s) trb[s] = make_batch(4, 50 + s, false, true, true);
  for (int s = 0; s < 2; ++s) {
    meta[s] = make_batch(3, 60 + s, false, true, true);
    meta[s].demo_task_ids = at::full({3}, -1, at::kLong);
  }
  auto run_steps = [&](DioTrainer& t, int from, int to) {
    for (int s = from; s < to; ++s) t.step(trb[s], (s + 1) % 2 == 0 ? &meta[s / 2] : nullptr);
  };
  auto full_model = make_model(at::kFloat, 7, 0.1);  // dropout on: the default generator's state matters
  torch::manual_seed(1);
  DioTrainer full(full_model, o);
  run_steps(full, 0, 4);

  auto part_model = make_model(at::kFloat, 7, 0.1);
  torch::manual_seed(1);
  DioTrainer part(part_model, o);
  run_steps(part, 0, 2);
  std::vector<at::Tensor> weights;
  for (auto& p : part.theta()) weights.push_back(p.detach().clone());
  part.save_phi(phi);
  part.save_state(state);
  run_steps(part, 2, 3);  // diverge from the saved point; the resumed trainer must not care

  auto res_model = make_model(at::kFloat, 7, 0.1);
  torch::manual_seed(12345);  // a different process would start from another generator state
  auto o2 = o;
  o2.seed = 7;
  DioTrainer resumed(res_model, o2);
  {
    torch::NoGradGuard ng;
    auto th = resumed.theta();
    for (size_t i = 0; i < th.size(); ++i) th[i].copy_(weights[i]);
  }
  resumed.load_phi(phi);
  resumed.load_state(state);
  REQUIRE(resumed.steps() == 2);
  run_steps(resumed, 2, 4);
  for (size_t i = 0; i < full.phi().size(); ++i) REQUIRE_MSG(full.phi()[i].equal(resumed.phi()[i]), "phi " + std::to_string(i));
  auto a = full.theta(), b = resumed.theta();
  for (size_t i = 0; i < a.size(); ++i) REQUIRE_MSG(a[i].equal(b[i]), "theta " + std::to_string(i));
  // a state of another variant is refused and changes nothing
  DioTrainer other(make_model(at::kFloat, 7), options("prompt", 3));
  REQUIRE_THROWS(other.load_state(state));
  REQUIRE(other.steps() == 0);
  std::remove(state.c_str());
  std::remove(phi.c_str());
}

int main() { return instill_test::run_all(); }
