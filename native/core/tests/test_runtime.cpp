#include "common/bench.h"
#include "common/runtime.h"
#include "common/errors.h"
#include "tests/check.h"

TEST(runtime_info_reports_version_and_threads) {
  auto info = instill::runtime_info();
  REQUIRE(!info.torch_version.empty());
  REQUIRE(info.intra_op_threads >= 1);
}

TEST(blas_is_detected) {
  auto b = instill::detect_blas();
  REQUIRE_MSG(b.name != "unknown" || !b.path.empty(), "no BLAS found in process");
}

TEST(set_threads_rejects_zero) {
  REQUIRE_THROWS(instill::set_threads(0));
  int before = instill::get_threads();
  instill::set_threads(1);
  REQUIRE(instill::get_threads() == 1);
  instill::set_threads(before);
}

TEST(matmul_bench_matches_reference) {
  // Correct first: the benchmarked kernel agrees with a float64 reference.
  auto a = torch::randn({64, 64});
  auto b = torch::randn({64, 64});
  auto c = torch::mm(a, b).to(torch::kFloat64);
  auto ref = torch::mm(a.to(torch::kFloat64), b.to(torch::kFloat64));
  REQUIRE((c - ref).abs().max().item<double>() < 1e-3);
  auto r = instill::matmul_bench(64, 0.0);
  REQUIRE(r.iterations >= 1);
  REQUIRE(r.gflops > 0);
  REQUIRE_THROWS(instill::matmul_bench(0, 0.1));
}

int main() { return instill_test::run_all(); }
