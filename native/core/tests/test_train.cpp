// Optimizers, schedules, clipping, the N-step loop and the training state (native/core/train).
// Adafactor is checked against an independent float64 re-implementation of HF's formulas written with plain
// loops below; AdamW against torch::optim::AdamW; resuming from a saved state against an uninterrupted run.
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <unistd.h>
#include <vector>

#include "common/errors.h"
#include "io/safetensors.h"
#include "tests/check.h"
#include "train/optim.h"
#include "train/trainer.h"

using namespace instill::train;

namespace {

std::string tmp_path(const std::string& name) {
  return "/tmp/instill_test_train_" + std::to_string(::getpid()) + "_" + name;
}

// ---------------- independent Adafactor reference (HF transformers.optimization.Adafactor) ----------------
// Parameter as a row-major float64 array with shape [..., R, C] (or 1-D). Follows the paper/HF formulas:
//   rho_t = 1 - t^decay; lr_t = lr * max(eps2, RMS(x)) (scale_parameter)
//   U = g^2 + eps1;  factored: R_t = rho R + (1-rho) mean_col(U); C_t = rho C + (1-rho) mean_row(U)
//   V_hat = R C / mean(R) (outer product), update = g / sqrt(V_hat); unfactored: V = rho V + (1-rho) U
//   update /= max(1, RMS(update) / d); x -= lr_t * update (+ weight decay x -= wd * lr_t * x first)
struct RefAdafactor {
  std::vector<int64_t> shape;
  std::vector<double> row, col, full;
  int64_t t = 0;
  double lr, eps1 = 1e-30, eps2 = 1e-3, d = 1.0, decay = -0.8, wd;
  bool scale;

  void step(std::vector<double>& x, const std::vector<double>& g) {
    ++t;
    const size_t n = x.size();
    double ss = 0;
    for (double v : x) ss += v * v;
    const double rms_x = std::sqrt(ss / static_cast<double>(n));
    const double lr_t = scale ? lr * std::max(eps2, rms_x) : lr;
    const double rho = 1.0 - std::pow(static_cast<double>(t), decay);
    std::vector<double> upd(n);
    if (shape.size() >= 2) {
      const int64_t C = shape.back(), R = shape[shape.size() - 2];
      const int64_t M = static_cast<int64_t>(n) / (R * C);  // leading (batch) dims
      if (row.empty()) { row.assign(M * R, 0.0); col.assign(M * C, 0.0); }
      for (int64_t m = 0; m < M; ++m) {
        for (int64_t r = 0; r < R; ++r) {
          double s = 0;
          for (int64_t c = 0; c < C; ++c) { double gg = g[(m * R + r) * C + c]; s += gg * gg + eps1; }
          row[m * R + r] = rho * row[m * R + r] + (1 - rho) * (s / C);
        }
        for (int64_t c = 0; c < C; ++c) {
          double s = 0;
          for (int64_t r = 0; r < R; ++r) { double gg = g[(m * R + r) * C + c]; s += gg * gg + eps1; }
          col[m * C + c] = rho * col[m * C + c] + (1 - rho) * (s / R);
        }
        double row_mean = 0;
        for (int64_t r = 0; r < R; ++r) row_mean += row[m * R + r];
        row_mean /= R;
        for (int64_t r = 0; r < R; ++r)
          for (int64_t c = 0; c < C; ++c) {
            const double vhat = row[m * R + r] / row_mean * col[m * C + c];
            upd[(m * R + r) * C + c] = g[(m * R + r) * C + c] / std::sqrt(vhat);
          }
      }
    } else {
      if (full.empty()) full.assign(n, 0.0);
      for (size_t i = 0; i < n; ++i) {
        full[i] = rho * full[i] + (1 - rho) * (g[i] * g[i] + eps1);
        upd[i] = g[i] / std::sqrt(full[i]);
      }
    }
    double us = 0;
    for (double u : upd) us += u * u;
    const double rms_u = std::sqrt(us / static_cast<double>(n));
    const double denom = std::max(1.0, rms_u / d);
    for (size_t i = 0; i < n; ++i) {
      if (wd != 0) x[i] -= wd * lr_t * x[i];
      x[i] -= lr_t * upd[i] / denom;
    }
  }
};

std::vector<double> to_vec(const at::Tensor& t) {
  at::Tensor c = t.detach().to(at::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

}  // namespace

TEST(schedule_linear_and_constant_match_hf) {
  OptimConfig c;
  c.warmup_steps = 4;
  c.total_steps = 10;
  // HF get_linear_schedule_with_warmup lambdas for steps 0..11.
  const double want[] = {0, 0.25, 0.5, 0.75, 1.0, 5.0 / 6, 4.0 / 6, 3.0 / 6, 2.0 / 6, 1.0 / 6, 0, 0};
  for (int s = 0; s < 12; ++s) REQUIRE_CLOSE(schedule_factor(c, s), want[s], 1e-15);
  c.schedule = "constant";
  const double want_c[] = {0, 0.25, 0.5, 0.75, 1, 1, 1};
  for (int s = 0; s < 7; ++s) REQUIRE_CLOSE(schedule_factor(c, s), want_c[s], 1e-15);
  c.warmup_steps = 0;
  c.schedule = "linear";
  REQUIRE_CLOSE(schedule_factor(c, 0), 1.0, 0);
  REQUIRE_CLOSE(schedule_factor(c, 5), 0.5, 1e-15);
}

TEST(config_validation_names_the_field) {
  OptimConfig c;
  c.name = "sgd";
  REQUIRE_THROWS(c.validate());
  c = OptimConfig{};
  c.total_steps = 0;
  try {
    c.validate();
    REQUIRE_MSG(false, "expected RangeError");
  } catch (const instill::RangeError& e) {
    REQUIRE(std::string(e.what()).find("totalSteps") != std::string::npos);
  }
}

TEST(adafactor_matches_float64_reference) {
  torch::manual_seed(3);
  for (bool scale : {true, false}) {
    for (double wd : {0.0, 0.01}) {
      std::vector<std::vector<int64_t>> shapes = {{5, 7}, {2, 3, 4}, {6}};
      std::vector<std::pair<std::string, at::Tensor>> params;
      std::vector<RefAdafactor> refs;
      std::vector<std::vector<double>> xs;
      for (size_t i = 0; i < shapes.size(); ++i) {
        at::Tensor p = torch::randn(shapes[i], torch::kDouble).requires_grad_(true);
        params.emplace_back("block." + std::to_string(i) + ".weight", p);
        RefAdafactor r;
        r.shape = shapes[i];
        r.lr = 0.05;
        r.wd = wd;
        r.scale = scale;
        refs.push_back(r);
        xs.push_back(to_vec(p));
      }
      OptimConfig c;
      c.name = "adafactor";
      c.lr = 0.05;
      c.schedule = "constant";
      c.total_steps = 100;
      c.weight_decay = wd;
      c.scale_parameter = scale;
      Optimizer opt(params, c);
      for (int step = 0; step < 5; ++step) {
        for (size_t i = 0; i < params.size(); ++i) {
          // Grads of varied magnitude so the update clipping (RMS > 1) triggers on some steps.
          at::Tensor g = torch::randn(shapes[i], torch::kDouble) * (step == 0 ? 10.0 : 0.1 * (step + 1));
          params[i].second.mutable_grad() = g;
          refs[i].step(xs[i], to_vec(g));
        }
        const double lr = opt.apply();
        REQUIRE_CLOSE(lr, 0.05, 0);
        for (size_t i = 0; i < params.size(); ++i) {
          const double d = max_abs_diff(to_vec(params[i].second), xs[i]);
          REQUIRE_MSG(d < 1e-12, "adafactor step " << step << " param " << i << " scale " << scale << " wd " << wd
                                                   << ": max diff " << d);
        }
      }
      // Buffers: factored for >= 2-D, full otherwise.
      auto sd = opt.state_dict();
      REQUIRE(sd.count("optimizer/block.0.weight/exp_avg_sq_row") && sd.count("optimizer/block.0.weight/exp_avg_sq_col"));
      REQUIRE(sd.at("optimizer/block.1.weight/exp_avg_sq_col").sizes() == at::IntArrayRef({2, 4}));
      REQUIRE(sd.count("optimizer/block.2.weight/exp_avg_sq") && !sd.count("optimizer/block.2.weight/exp_avg_sq_row"));
      REQUIRE(sd.at("scheduler/step").item<int64_t>() == 5);
    }
  }
}

TEST(adafactor_float32_close_to_reference) {
  torch::manual_seed(4);
  at::Tensor p = torch::randn({8, 16}).requires_grad_(true);
  RefAdafactor r;
  r.shape = {8, 16};
  r.lr = 1e-2;
  r.wd = 0;
  r.scale = true;
  std::vector<double> x = to_vec(p);
  OptimConfig c;
  c.name = "adafactor";
  c.lr = 1e-2;
  c.schedule = "constant";
  Optimizer opt({{"w", p}}, c);
  for (int s = 0; s < 4; ++s) {
    at::Tensor g = torch::randn({8, 16});
    p.mutable_grad() = g;
    r.step(x, to_vec(g));
    opt.apply();
  }
  REQUIRE(max_abs_diff(to_vec(p), x) < 1e-5);
}

TEST(adamw_matches_torch_optim_adamw) {
  torch::manual_seed(5);
  at::Tensor a = torch::randn({4, 6}, torch::kDouble).requires_grad_(true);
  at::Tensor b = a.detach().clone().requires_grad_(true);
  OptimConfig c;
  c.name = "adamw";
  c.lr = 1e-2;
  c.weight_decay = 0.1;
  c.schedule = "constant";
  c.beta1 = 0.85;
  c.beta2 = 0.99;
  c.eps = 1e-7;
  Optimizer mine({{"layer.weight", a}}, c);
  torch::optim::AdamW ref({b}, torch::optim::AdamWOptions(1e-2).weight_decay(0.1).betas({0.85, 0.99}).eps(1e-7));
  for (int s = 0; s < 6; ++s) {
    at::Tensor g = torch::randn({4, 6}, torch::kDouble);
    a.mutable_grad() = g.clone();
    b.mutable_grad() = g.clone();
    mine.apply();
    ref.step();
    REQUIRE_MSG(max_abs_diff(to_vec(a), to_vec(b)) < 1e-13, "adamw step " << s);
  }
  // Layer-norm weights get no weight decay (HF Trainer).
  REQUIRE(!decays("encoder.block.0.layer.0.layer_norm.weight"));
  REQUIRE(!decays("encoder.final_layer_norm.weight"));
  REQUIRE(decays("encoder.block.0.layer.0.SelfAttention.q.weight"));
}

TEST(clip_grad_norm_reports_preclip_norm) {
  at::Tensor p1 = torch::zeros({3}, torch::kDouble).requires_grad_(true);
  at::Tensor p2 = torch::zeros({2, 2}, torch::kDouble).requires_grad_(true);
  at::Tensor p3 = torch::zeros({2}, torch::kDouble).requires_grad_(true);  // no grad
  p1.mutable_grad() = torch::tensor({3.0, 0.0, 4.0}, torch::kDouble);
  p2.mutable_grad() = torch::tensor({0.0, 12.0, 0.0, 0.0}, torch::kDouble).view({2, 2});
  const double n = clip_grad_norm({p1, p2, p3}, 6.5);
  REQUIRE_CLOSE(n, 13.0, 1e-12);
  const double total = std::sqrt(p1.grad().pow(2).sum().item<double>() + p2.grad().pow(2).sum().item<double>());
  REQUIRE_CLOSE(total, 6.5 * 13.0 / (13.0 + 1e-6), 1e-9);
  REQUIRE_CLOSE(clip_grad_norm({p1, p2}, 0), total, 1e-12);  // 0 = measure only
}

namespace {

// A small classifier with dropout: the test stand-in for a model (the loss is a mean over labelled rows).
struct NetImpl : torch::nn::Module {
  NetImpl() {
    fc1 = register_module("fc1", torch::nn::Linear(8, 32));
    fc2 = register_module("fc2", torch::nn::Linear(32, 5));
    drop = register_module("drop", torch::nn::Dropout(0.3));
  }
  at::Tensor loss(const Batch& b) {
    at::Tensor h = drop(torch::relu(fc1(b.input_ids)));
    at::Tensor logits = fc2(h);
    return torch::nn::functional::cross_entropy(
        logits, b.labels.view(-1), torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
  }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  torch::nn::Dropout drop{nullptr};
};
TORCH_MODULE(Net);

std::vector<std::pair<std::string, at::Tensor>> named(Net& n) {
  std::vector<std::pair<std::string, at::Tensor>> v;
  for (auto& kv : n->named_parameters()) v.emplace_back(kv.key(), kv.value());
  return v;
}

std::vector<Batch> make_batches(int count, int64_t rows) {
  torch::manual_seed(11);
  std::vector<Batch> out;
  for (int i = 0; i < count; ++i) {
    Batch b;
    b.input_ids = torch::randn({rows, 8});
    b.labels = torch::randint(0, 5, {rows, 1}, torch::kLong);
    out.push_back(b);
  }
  return out;
}

}  // namespace

TEST(train_steps_accumulation_equals_concatenated_batch) {
  // With equal token counts per micro-batch, mean of micro-batch means == mean over the concatenation.
  auto batches = make_batches(2, 6);
  for (const char* name : {"adamw", "adafactor"}) {
    torch::manual_seed(1);
    Net a;
    torch::manual_seed(1);
    Net b;
    a->eval();  // no dropout: compare gradients only
    b->eval();
    OptimConfig c;
    c.name = name;
    c.lr = 1e-2;
    c.total_steps = 10;
    c.clip_norm = 0.5;
    c.grad_accumulation = 2;
    Optimizer oa(named(a), c);
    c.grad_accumulation = 1;
    Optimizer ob(named(b), c);
    auto ra = train_steps([&](const Batch& x) { return a->loss(x); }, oa, batches);
    Batch cat;
    cat.input_ids = torch::cat({batches[0].input_ids, batches[1].input_ids});
    cat.labels = torch::cat({batches[0].labels, batches[1].labels});
    auto rb = train_steps([&](const Batch& x) { return b->loss(x); }, ob, {cat});
    REQUIRE(ra.losses.size() == 1 && rb.losses.size() == 1);
    REQUIRE_CLOSE(ra.losses[0], rb.losses[0], 1e-6);
    REQUIRE_CLOSE(ra.grad_norms[0], rb.grad_norms[0], 1e-6);
    REQUIRE(ra.tokens == 12 && rb.tokens == 12);
    auto pa = named(a), pb = named(b);
    for (size_t i = 0; i < pa.size(); ++i)
      REQUIRE_MSG(max_abs_diff(to_vec(pa[i].second), to_vec(pb[i].second)) < 1e-6, name << " " << pa[i].first);
  }
}

TEST(train_steps_lowers_loss_and_follows_schedule) {
  auto batches = make_batches(4, 16);
  torch::manual_seed(2);
  Net net;
  OptimConfig c;
  c.name = "adamw";
  c.lr = 3e-2;
  c.warmup_steps = 2;
  c.total_steps = 40;
  Optimizer opt(named(net), c);
  std::vector<Batch> fixed(40, batches[0]);
  int calls = 0;
  auto r = train_steps([&](const Batch& x) { return net->loss(x); }, opt, fixed,
                       [&](const StepProgress& p) { ++calls; REQUIRE(p.step_in_call == calls && p.steps_in_call == 40); });
  REQUIRE(calls == 40);
  REQUIRE(r.step == 40);
  REQUIRE_CLOSE(r.lrs[0], 0.0, 0);  // HF: first warmup step has lr 0
  REQUIRE_CLOSE(r.lrs[1], 1.5e-2, 1e-15);
  REQUIRE_CLOSE(r.lrs[2], 3e-2, 1e-15);
  REQUIRE_CLOSE(r.lrs[39], 3e-2 * 1.0 / 38.0, 1e-15);
  REQUIRE_MSG(r.losses.back() < 0.5 * r.losses.front(), "loss " << r.losses.front() << " -> " << r.losses.back());
  REQUIRE(r.tokens == 40 * 16);
}

TEST(train_steps_checks_batches_and_cancel) {
  auto batches = make_batches(3, 4);
  Net net;
  OptimConfig c;
  c.grad_accumulation = 2;
  Optimizer opt(named(net), c);
  auto fn = [&](const Batch& x) { return net->loss(x); };
  REQUIRE_THROWS(train_steps(fn, opt, batches));
  REQUIRE_THROWS(train_steps(fn, opt, {}));
  std::atomic<bool> cancel{true};
  auto r = train_steps(fn, opt, {batches[0], batches[1]}, nullptr, &cancel);
  REQUIRE(r.cancelled && r.losses.empty() && r.step == 0);
  // Cancel after the first of three steps.
  cancel = false;
  auto r2 = train_steps(fn, opt, {batches[0], batches[1], batches[0], batches[1], batches[0], batches[1]},
                        [&](const StepProgress&) { cancel = true; }, &cancel);
  REQUIRE(r2.cancelled && r2.losses.size() == 1 && r2.step == 1);
}

TEST(resume_from_training_state_is_bitwise_identical) {
  auto batches = make_batches(6, 8);
  for (const char* name : {"adafactor", "adamw"}) {
    OptimConfig c;
    c.name = name;
    c.lr = 1e-2;
    c.warmup_steps = 2;
    c.total_steps = 6;
    c.weight_decay = 0.01;
    // Uninterrupted: 6 steps, dropout on.
    torch::manual_seed(7);
    Net full;
    Optimizer of(named(full), c);
    torch::manual_seed(99);
    auto rf = train_steps([&](const Batch& x) { return full->loss(x); }, of, batches);
    // Interrupted: 3 steps, save weights + training state.
    torch::manual_seed(7);
    Net first;
    Optimizer o1(named(first), c);
    torch::manual_seed(99);
    auto r1 = train_steps([&](const Batch& x) { return first->loss(x); }, o1,
                          std::vector<Batch>(batches.begin(), batches.begin() + 3));
    const std::string wpath = tmp_path(std::string(name) + "_weights.safetensors");
    const std::string spath = tmp_path(std::string(name) + "_state.safetensors");
    instill::io::NamedTensors w;
    for (auto& np : named(first)) w.emplace_back(np.first, np.second.detach());
    instill::io::write_safetensors(wpath, w);
    save_training_state(spath, o1);
    // Disturb the RNG, then resume in fresh objects.
    torch::manual_seed(12345);
    (void)torch::rand({100});
    Net second;  // different random init, overwritten below
    {
      torch::NoGradGuard ng;
      auto loaded = instill::io::read_safetensors(wpath);
      auto params = second->named_parameters();
      for (auto& [n, t] : loaded.tensors) params[n].copy_(t);
    }
    Optimizer o2(named(second), c);
    load_training_state(spath, o2);
    REQUIRE(o2.step() == 3);
    auto r2 = train_steps([&](const Batch& x) { return second->loss(x); }, o2,
                          std::vector<Batch>(batches.begin() + 3, batches.end()));
    for (int i = 0; i < 3; ++i) {
      REQUIRE_MSG(r1.losses[i] == rf.losses[i], name << " step " << i);
      REQUIRE_MSG(r2.losses[i] == rf.losses[3 + i],
                  name << " resumed step " << i << ": " << r2.losses[i] << " vs " << rf.losses[3 + i]);
      REQUIRE(r2.lrs[i] == rf.lrs[3 + i]);
      REQUIRE(r2.grad_norms[i] == rf.grad_norms[3 + i]);
    }
    auto pf = named(full), p2 = named(second);
    for (size_t i = 0; i < pf.size(); ++i) REQUIRE(torch::equal(pf[i].second, p2[i].second));
    std::remove(wpath.c_str());
    std::remove(spath.c_str());
  }
}

TEST(training_state_rejects_mismatches) {
  Net net;
  OptimConfig c;
  c.name = "adamw";
  Optimizer opt(named(net), c);
  auto batches = make_batches(1, 4);
  train_steps([&](const Batch& x) { return net->loss(x); }, opt, batches);
  const std::string path = tmp_path("mismatch.safetensors");
  save_training_state(path, opt);
  // Other optimizer.
  OptimConfig c2;
  c2.name = "adafactor";
  Optimizer other(named(net), c2);
  REQUIRE_THROWS(load_training_state(path, other));
  // Other parameter names.
  auto renamed = named(net);
  renamed[0].first = "something.else";
  Optimizer wrong(renamed, c);
  try {
    load_training_state(path, wrong);
    REQUIRE_MSG(false, "expected ArgumentError");
  } catch (const instill::ArgumentError& e) {
    REQUIRE(std::string(e.what()).find("fc1.weight") != std::string::npos);
  }
  REQUIRE(wrong.step() == 0);  // a failed load changes nothing
  // Not a training state.
  const std::string other_file = tmp_path("plain.safetensors");
  instill::io::write_safetensors(other_file, {{"x", torch::zeros({2})}});
  REQUIRE_THROWS(load_training_state(other_file, opt));
  REQUIRE_THROWS(load_training_state(tmp_path("missing.safetensors"), opt));
  std::remove(path.c_str());
  std::remove(other_file.c_str());
}

int main() { return instill_test::run_all(); }
