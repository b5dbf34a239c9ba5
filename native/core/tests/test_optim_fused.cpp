// The one-pass AdamW for contiguous float32 CPU parameters (train/optim.cpp) against the multi-op path in
// float64 (the path checked against torch::optim::AdamW in test_train.cpp), and against torch's own AdamW in float32.
#include <torch/torch.h>

#include "tests/check.h"
#include "train/optim.h"

using namespace instill::train;

TEST(fused_float32_adamw_matches_float64_reference) {
  torch::manual_seed(11);
  at::Tensor w0 = torch::randn({70000});  // above the parallel grain: several chunks
  at::Tensor a = w0.clone().requires_grad_(true);                  // float32: fused path
  at::Tensor b = w0.to(at::kDouble).clone().requires_grad_(true);  // float64: multi-op path
  at::Tensor c = w0.clone().requires_grad_(true);                  // torch::optim::AdamW, float32
  OptimConfig oc;
  oc.name = "adamw";
  oc.lr = 1e-2;
  oc.weight_decay = 0.1;
  oc.schedule = "constant";
  oc.beta1 = 0.85;
  oc.beta2 = 0.99;
  oc.eps = 1e-7;
  oc.clip_norm = 0;
  Optimizer fa({{"layer.weight", a}}, oc), fb({{"layer.weight", b}}, oc);
  torch::optim::AdamW ref({c}, torch::optim::AdamWOptions(1e-2).weight_decay(0.1).betas({0.85, 0.99}).eps(1e-7));
  for (int s = 0; s < 5; ++s) {
    at::Tensor g = torch::randn({70000});
    a.mutable_grad() = g.clone();
    b.mutable_grad() = g.to(at::kDouble);
    c.mutable_grad() = g.clone();
    fa.apply();
    fb.apply();
    ref.step();
    const double d64 = (a.detach().to(at::kDouble) - b.detach()).abs().max().item<double>();
    const double dt = (a.detach() - c.detach()).abs().max().item<double>();
    REQUIRE_MSG(d64 < 1e-5, "step " << s << ": fused float32 vs float64 differ by " << d64);
    REQUIRE_MSG(dt < 1e-5, "step " << s << ": fused vs torch AdamW differ by " << dt);
  }
  auto sa = fa.state_dict(), sb = fb.state_dict();
  for (auto& kv : sa)
    if (at::isFloatingType(kv.second.scalar_type()))
      REQUIRE_MSG((kv.second.to(at::kDouble) - sb.at(kv.first)).abs().max().item<double>() < 1e-6, kv.first);
}

TEST(non_contiguous_or_float64_parameters_take_the_general_path) {
  torch::manual_seed(2);
  at::Tensor base = torch::randn({6, 8});
  at::Tensor t = base.t().contiguous().t().clone();  // non-contiguous layout
  REQUIRE(!t.is_contiguous());
  at::Tensor p = t.requires_grad_(true);
  at::Tensor q = base.clone().requires_grad_(true);
  OptimConfig oc;
  oc.name = "adamw";
  oc.schedule = "constant";
  Optimizer fp({{"w", p}}, oc), fq({{"w", q}}, oc);
  for (int s = 0; s < 3; ++s) {
    at::Tensor g = torch::randn({6, 8});
    p.mutable_grad() = g.clone();
    q.mutable_grad() = g.clone();
    fp.apply();
    fq.apply();
  }
  REQUIRE((p.detach() - q.detach()).abs().max().item<double>() < 1e-6);
}

int main() { return instill_test::run_all(); }
