// Memory of the hypergradient methods, measured by the counting CPU allocator (common/memory.h):
// implicit methods (neumann, cg) stay flat in K; unrolling grows linearly in K.
#include <torch/torch.h>

#include <cstdio>

#include "common/memory.h"
#include "hypergrad/hypergrad.h"
#include "tests/check.h"

using instill::MemoryTracker;
using instill::hypergrad::BilevelProblem;
using instill::hypergrad::HypergradOptions;
using instill::hypergrad::compute_hypergradient;
using TensorList = std::vector<at::Tensor>;

TEST(tracker_counts_allocations_and_releases) {
  MemoryTracker::install();
  MemoryTracker::install();  // idempotent
  REQUIRE(MemoryTracker::installed());
  const int64_t base = MemoryTracker::current_bytes();
  MemoryTracker::reset_peak();
  {
    auto a = torch::empty({1000, 250}, torch::kFloat32);  // 1,000,000 bytes
    REQUIRE(MemoryTracker::current_bytes() - base == 1000000);
    {
      auto b = torch::empty({500}, torch::kFloat64);  // 4,000 bytes
      REQUIRE(MemoryTracker::current_bytes() - base == 1004000);
    }
    REQUIRE(MemoryTracker::current_bytes() - base == 1000000);
    a.add_(1.0);  // in place: no allocation
    REQUIRE(MemoryTracker::current_bytes() - base == 1000000);
  }
  REQUIRE(MemoryTracker::current_bytes() == base);
  REQUIRE(MemoryTracker::peak_bytes() - base == 1004000);
  MemoryTracker::reset_peak();
  REQUIRE(MemoryTracker::peak_bytes() == base);
  // Tensors behave normally through the wrapper (data, views, resize, free).
  auto x = torch::arange(10, torch::kFloat64);
  x.resize_({1000});
  REQUIRE(x.numel() == 1000);
  auto y = torch::randn({64, 64}).matmul(torch::eye(64));
  REQUIRE(y.size(0) == 64);
}

namespace {

// Parameters dominate: W is 1024 x 1024 float32 (4 MiB); data and phi are a few KiB.
struct Wide {
  at::Tensor W, b, p, X, Y, Xv, Yv;
  BilevelProblem pb;
  explicit Wide(bool functional) {
    torch::manual_seed(0);
    const int64_t d = 1024, n = 8;
    W = (torch::randn({d, d}) / 32.0).requires_grad_(true);
    b = torch::zeros({d}).requires_grad_(true);
    p = (0.1 * torch::randn({d})).requires_grad_(true);  // phi: a learnable input offset (a "soft prompt")
    X = torch::randn({n, d});
    Y = torch::randn({n, d});
    Xv = torch::randn({n, d});
    Yv = torch::randn({n, d});
    pb.inner_params = {W, b};
    pb.outer_params = {p};
    pb.inner_loss = [this] { return loss({W, b}, X, Y); };
    pb.outer_loss = [this] { return loss({W, b}, Xv, Yv); };
    if (functional) {
      pb.inner_loss_at = [this](const TensorList& th) { return loss(th, X, Y); };
      pb.outer_loss_at = [this](const TensorList& th) { return loss(th, Xv, Yv); };
    }
  }
  at::Tensor loss(const TensorList& th, const at::Tensor& x, const at::Tensor& y) const {
    return (torch::tanh((x + p).matmul(th[0]) + th[1]) - y).pow(2).mean();
  }
};

int64_t peak_of(const std::string& spec, BilevelProblem& pb) {
  HypergradOptions o;
  o.inner_lr = 0.1;
  o.alpha = 0.1;
  o.damping = 100.0;  // the problem is far from convex where it stands; keep CG's system positive definite
  (void)compute_hypergradient(spec, pb, o);  // warm-up (one-time allocations)
  const int64_t base = MemoryTracker::current_bytes();
  MemoryTracker::reset_peak();
  (void)compute_hypergradient(spec, pb, o);
  const int64_t extra = MemoryTracker::peak_bytes() - base;
  std::printf("  %-10s peak above baseline %8.2f MiB\n", spec.c_str(), extra / 1048576.0);
  return extra;
}

}  // namespace

TEST(implicit_memory_is_flat_in_k) {
  MemoryTracker::install();
  Wide w(false);
  const double n1 = double(peak_of("neumann:1", w.pb)), n10 = double(peak_of("neumann:10", w.pb));
  const double c1 = double(peak_of("cg:1", w.pb)), c10 = double(peak_of("cg:10", w.pb));
  REQUIRE_MSG(n10 < 1.5 * n1, "neumann:10 / neumann:1 peak = " << n10 / n1);
  REQUIRE_MSG(c10 < 1.5 * c1, "cg:10 / cg:1 peak = " << c10 / c1);
  const double f = double(peak_of("fd", w.pb));
  REQUIRE(f < 1.5 * n1);
}

TEST(unrolled_memory_grows_with_k) {
  MemoryTracker::install();
  for (bool functional : {true, false}) {
    std::printf("  %s path\n", functional ? "functional (create_graph)" : "reverse (stored iterates)");
    Wide w(functional);
    const double u1 = double(peak_of("unroll:1", w.pb));
    const double u3 = double(peak_of("unroll:3", w.pb));
    const double u10 = double(peak_of("unroll:10", w.pb));
    REQUIRE(u1 < u3 && u3 < u10);
    // Linear growth: each step adds at least one copy of W (4 MiB).
    const double per_step = (u10 - u3) / 7.0;
    std::printf("  per step %.2f MiB, unroll:10 / unroll:1 = %.2f\n", per_step / 1048576.0, u10 / u1);
    REQUIRE(per_step >= 0.95 * 4 * 1048576.0);
    REQUIRE_MSG(u10 >= (functional ? 3.0 : 2.5) * u1, "unroll:10 / unroll:1 peak = " << u10 / u1);
  }
}

int main() { return instill_test::run_all(); }
