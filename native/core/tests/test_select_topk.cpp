// Chunked exact top-k against brute-force references: a full float32 matmul + torch::topk, and float64.
#include <torch/torch.h>

#include <atomic>
#include <cmath>
#include <set>
#include <vector>

#include "common/errors.h"
#include "select/topk.h"
#include "tests/check.h"

using instill::exact_topk;
using instill::TopkIndex;
using instill::TopkOptions;
using instill::TopkResult;

namespace {

// Checks `r` is an exact top-k of queries x pool: scores match float64 dot products, are sorted, indices
// are distinct and valid, and no unselected row beats the k-th selected one (beyond rounding).
void check_exact(const torch::Tensor& queries, const torch::Tensor& pool, int64_t k, const TopkResult& r,
                 double tol = 1e-5) {
  const int64_t Q = queries.size(0), N = pool.size(0);
  REQUIRE(r.scores.sizes() == torch::IntArrayRef({Q, k}));
  REQUIRE(r.indices.sizes() == torch::IntArrayRef({Q, k}));
  auto s64 = torch::mm(queries.to(torch::kDouble), pool.to(torch::kDouble).t());  // reference
  auto ref32 = torch::mm(queries, pool.t());
  auto [ts, ti] = torch::topk(ref32, k, 1, true, true);  // brute force float32 reference
  for (int64_t q = 0; q < Q; ++q) {
    std::set<int64_t> chosen;
    double kth = 1e300;
    for (int64_t j = 0; j < k; ++j) {
      int64_t i = r.indices[q][j].item<int64_t>();
      REQUIRE_MSG(i >= 0 && i < N, "index out of range: " << i);
      REQUIRE_MSG(chosen.insert(i).second, "duplicate index " << i);
      double s = r.scores[q][j].item<float>();
      REQUIRE_CLOSE(s, s64[q][i].item<double>(), tol);
      REQUIRE_CLOSE(s, ts[q][j].item<float>(), tol);  // same k-th values as torch::topk
      if (j > 0) REQUIRE(r.scores[q][j - 1].item<float>() >= r.scores[q][j].item<float>());
      kth = std::min(kth, s64[q][i].item<double>());
    }
    double best_other = -1e300;
    auto row = s64[q];
    auto acc = row.accessor<double, 1>();
    for (int64_t i = 0; i < N; ++i)
      if (!chosen.count(i)) best_other = std::max(best_other, acc[i]);
    REQUIRE_MSG(best_other <= kth + tol, "query " << q << ": unselected row scores " << best_other << " > k-th "
                                                   << kth);
  }
}

TopkOptions chunked(int64_t rows) {
  TopkOptions o;
  o.chunk_rows = rows;
  return o;
}

}  // namespace

TEST(matches_brute_force_across_chunk_sizes) {
  torch::manual_seed(1);
  auto pool = torch::randn({1000, 24});
  for (int64_t Q : {1, 3, 17}) {
    auto queries = torch::randn({Q, 24});
    for (int64_t chunk : {1, 7, 128, 999, 1000, 5000}) {
      for (int64_t k : {1, 5, 64}) check_exact(queries, pool, k, exact_topk(queries, pool, k, chunked(chunk)));
    }
  }
}

TEST(k_equals_n_is_a_full_sort) {
  torch::manual_seed(2);
  auto pool = torch::randn({50, 8});
  auto queries = torch::randn({2, 8});
  auto r = exact_topk(queries, pool, 50, chunked(16));
  check_exact(queries, pool, 50, r);
  auto sorted = std::get<0>(r.indices.sort(1));
  REQUIRE(torch::equal(sorted[0], torch::arange(50)));
  REQUIRE(torch::equal(sorted[1], torch::arange(50)));
}

TEST(single_row_pool_and_single_query) {
  auto pool = torch::tensor({{0.6f, 0.8f}});
  auto q = torch::tensor({{1.0f, 0.0f}});
  auto r = exact_topk(q, pool, 1);
  REQUIRE(r.indices[0][0].item<int64_t>() == 0);
  REQUIRE_CLOSE(r.scores[0][0].item<float>(), 0.6, 1e-7);
}

TEST(ties_prefer_lower_indices_across_chunks) {
  // Rows 0..9 cycle over 3 distinct vectors; each is repeated, so ties straddle chunk boundaries.
  auto base = torch::tensor({{1.0f, 0.0f}, {0.0f, 1.0f}, {0.70710678f, 0.70710678f}});
  auto pool = torch::empty({10, 2});
  for (int i = 0; i < 10; ++i) pool[i] = base[i % 3];
  auto q = torch::tensor({{1.0f, 0.0f}});
  for (int64_t chunk : {1, 2, 3, 4, 10}) {
    auto r = exact_topk(q, pool, 5, chunked(chunk));
    // Score 1 at rows 0,3,6,9; then 0.707 at rows 2,5,8: expected order 0,3,6,9,2.
    std::vector<int64_t> want = {0, 3, 6, 9, 2};
    for (int j = 0; j < 5; ++j)
      REQUIRE_MSG(r.indices[0][j].item<int64_t>() == want[j],
                  "chunk " << chunk << " position " << j << ": got " << r.indices[0][j].item<int64_t>());
  }
  // An all-equal pool: the k lowest indices in order.
  auto flat = torch::ones({100, 4});
  auto r = exact_topk(torch::ones({2, 4}), flat, 7, chunked(9));
  for (int j = 0; j < 7; ++j) REQUIRE(r.indices[1][j].item<int64_t>() == j);
}

TEST(nan_scores_rank_last) {
  auto pool = torch::tensor({{1.0f}, {NAN}, {-2.0f}, {3.0f}});
  auto r = exact_topk(torch::tensor({{1.0f}}), pool, 4, chunked(2));
  std::vector<int64_t> want = {3, 0, 2, 1};
  for (int j = 0; j < 4; ++j) REQUIRE(r.indices[0][j].item<int64_t>() == want[j]);
  REQUIRE(std::isinf(r.scores[0][3].item<float>()));
}

TEST(argument_errors) {
  auto pool = torch::randn({5, 3});
  auto q = torch::randn({1, 3});
  REQUIRE_THROWS(exact_topk(q, pool, 6));   // k > N
  REQUIRE_THROWS(exact_topk(q, pool, 0));   // k < 1
  REQUIRE_THROWS(exact_topk(torch::randn({1, 4}), pool, 1));
  REQUIRE_THROWS(exact_topk(q.to(torch::kDouble), pool, 1));
  REQUIRE_THROWS(exact_topk(torch::randn({3}), pool, 1));
  REQUIRE_THROWS(exact_topk(q, pool, 1, chunked(0)));
  bool range = false;
  try {
    exact_topk(q, pool, 6);
  } catch (const instill::RangeError& e) {
    range = std::string(e.what()).find("exceeds the pool size (5") != std::string::npos;
  }
  REQUIRE(range);
  bool arg = false;
  try {
    exact_topk(torch::randn({1, 4}), pool, 1);
  } catch (const instill::ArgumentError&) {
    arg = true;
  }
  REQUIRE(arg);
}

TEST(blocks_number_rows_in_order) {
  torch::manual_seed(3);
  auto a = torch::randn({300, 16}), b = torch::randn({1, 16}), c = torch::randn({700, 16});
  auto q = torch::randn({5, 16});
  auto all = torch::cat({a, b, c});
  auto r = exact_topk(q, std::vector<torch::Tensor>{a, b, c}, 20, chunked(64));
  check_exact(q, all, 20, r);
}

TEST(index_normalizes_and_searches_cosine) {
  torch::manual_seed(4);
  TopkIndex index(32, /*normalize=*/true);
  auto a = torch::randn({400, 32}) * 5, b = torch::randn({600, 32});
  index.add(a);
  index.add(b);
  REQUIRE(index.size() == 1000);
  auto q = torch::randn({4, 32}) * 3;
  auto r = index.search(q, 10, chunked(100));
  auto pool = torch::cat({a, b});
  auto pn = pool / pool.norm(2, {1}, true), qn = q / q.norm(2, {1}, true);
  check_exact(qn, pn, 10, r);
  REQUIRE(r.scores.max().item<float>() <= 1.0f + 1e-6f);
  REQUIRE_THROWS(index.add(torch::randn({2, 31})));
  REQUIRE_THROWS(index.search(q, 1001));
}

TEST(random_blocks_are_deterministic_and_normalized) {
  TopkIndex index(48, true);
  auto b1 = index.random_blocks(70000, 7);
  auto b2 = index.random_blocks(70000, 7);
  REQUIRE(b1.size() == 2);
  REQUIRE(b1[0].size(0) + b1[1].size(0) == 70000);
  REQUIRE(torch::equal(b1[1], b2[1]));
  REQUIRE_CLOSE(b1[0].norm(2, {1}).min().item<float>(), 1.0, 1e-5);
  index.add_blocks(b1);
  REQUIRE(index.size() == 70000);
  auto q = torch::randn({3, 48});
  auto r = index.search(q, 8);
  check_exact(q / q.norm(2, {1}, true), torch::cat(b1), 8, r, 1e-4);
}

TEST(larger_pool_single_and_batched) {
  torch::manual_seed(5);
  auto pool = torch::randn({60000, 96});
  for (int64_t Q : {1, 64}) {
    auto q = torch::randn({Q, 96});
    check_exact(q, pool, 10, exact_topk(q, pool, 10, chunked(8192)), 1e-4);
  }
}

TEST(cancel_and_progress) {
  auto pool = torch::randn({100, 4});
  std::vector<double> seen;
  TopkOptions o;
  o.chunk_rows = 30;
  o.progress = [&](double f) { seen.push_back(f); };
  exact_topk(torch::randn({1, 4}), pool, 3, o);
  REQUIRE(seen.size() == 4);
  REQUIRE_CLOSE(seen.back(), 1.0, 1e-12);
  std::atomic<bool> stop{true};
  o.cancel = &stop;
  REQUIRE_THROWS(exact_topk(torch::randn({1, 4}), pool, 3, o));
}

int main() { return instill_test::run_all(); }
