// The caching CPU allocator (common/memory.h CpuCache): reuse, size classes, cap, raw allocation, and the
// counting allocator (MemoryTracker) stacked on top of it.
#include <c10/core/CPUAllocator.h>
#include <torch/torch.h>

#include "common/cpu.h"
#include "common/memory.h"
#include "common/runtime.h"
#include "tests/check.h"

using namespace instill;

TEST(size_classes_round_up_by_at_most_an_eighth) {
  REQUIRE(CpuCache::size_class(100) == 100);          // below min_block: exact
  REQUIRE(CpuCache::size_class(64 << 10) == 64 << 10);
  REQUIRE(CpuCache::size_class((64 << 10) + 1) == (64 << 10) + 4096);
  REQUIRE(CpuCache::size_class(1 << 20) == 1 << 20);
  REQUIRE(CpuCache::size_class((1 << 20) + 1) == (1 << 20) + (1 << 17));
  for (size_t n : {size_t{70000}, size_t{1234567}, size_t{33554433}, size_t{65 << 20}, size_t{1} << 30}) {
    size_t c = CpuCache::size_class(n);
    REQUIRE_MSG(c >= n && c <= n + n / 8 + 4096, "class " << c << " for " << n);
    REQUIRE(CpuCache::size_class(c) == c);  // a class is its own class
  }
}

TEST(installs_and_reuses_freed_blocks) {
  REQUIRE(CpuCache::install_forced());
  REQUIRE(CpuCache::installed());
  REQUIRE(CpuCache::name() == "instill-cache");
  REQUIRE(c10::GetCPUAllocator() != c10::GetDefaultCPUAllocator());
  CpuCache::empty();
  const auto s0 = CpuCache::stats();
  void* first = nullptr;
  {
    at::Tensor t = at::empty({1 << 20}, at::kFloat);  // 4 MiB
    first = t.data_ptr();
    REQUIRE(reinterpret_cast<uintptr_t>(first) % 64 == 0);
  }
  const auto s1 = CpuCache::stats();
  REQUIRE(s1.misses == s0.misses + 1);
  REQUIRE(s1.cached_bytes >= 4 << 20);
  {
    at::Tensor t = at::empty({1 << 20}, at::kFloat);  // the same class: the same block again
    REQUIRE(t.data_ptr() == first);
    at::Tensor u = at::empty({(1 << 20) - 1000}, at::kFloat);  // same class, but that block is taken: a new one
    REQUIRE(u.data_ptr() != first);
  }
  const auto s2 = CpuCache::stats();
  REQUIRE(s2.hits == s1.hits + 1);
  REQUIRE(s2.misses == s1.misses + 1);
  // Small tensors bypass the cache.
  { at::Tensor small = at::empty({10}, at::kFloat); }
  REQUIRE(CpuCache::stats().small >= s2.small + 1);
  CpuCache::empty();
  REQUIRE(CpuCache::stats().cached_bytes == 0);
}

TEST(results_through_the_cache_match_float64) {
  REQUIRE(CpuCache::install_forced());
  torch::manual_seed(0);
  for (int round = 0; round < 3; ++round) {  // later rounds run on recycled (dirty) blocks
    at::Tensor a = torch::randn({300, 257}), b = torch::randn({257, 190});
    at::Tensor c = torch::mm(a, b).relu().sum(0);
    at::Tensor ref = torch::mm(a.to(at::kDouble), b.to(at::kDouble)).relu().sum(0);
    REQUIRE((c.to(at::kDouble) - ref).abs().max().item<double>() < 1e-3);
    at::Tensor z = at::zeros({200, 300});  // zeros must be zero on a recycled block
    REQUIRE(z.abs().sum().item<double>() == 0.0);
  }
}

TEST(cap_bounds_the_cached_bytes) {
  REQUIRE(CpuCache::install_forced());
  CpuCache::empty();
  CpuCache::set_cap_bytes(6 << 20);
  {
    at::Tensor a = at::empty({1 << 20}, at::kFloat), b = at::empty({1 << 20}, at::kFloat);  // 2 x 4 MiB
  }
  REQUIRE(CpuCache::stats().cached_bytes <= 6 << 20);
  REQUIRE(CpuCache::stats().cached_bytes >= 4 << 20);
  CpuCache::set_cap_bytes(0);  // 0: no caching at all
  REQUIRE(CpuCache::stats().cached_bytes == 0);
  { at::Tensor a = at::empty({1 << 20}, at::kFloat); }
  REQUIRE(CpuCache::stats().cached_bytes == 0);
  CpuCache::set_cap_bytes(int64_t{2048} << 20);
  REQUIRE_THROWS(CpuCache::set_cap_bytes(-1));
}

TEST(raw_allocate_and_deallocate_work) {
  REQUIRE(CpuCache::install_forced());
  c10::Allocator* a = c10::GetCPUAllocator();
  void* p = a->raw_allocate(1 << 20);
  REQUIRE(p != nullptr);
  static_cast<char*>(p)[0] = 1;
  static_cast<char*>(p)[(1 << 20) - 1] = 2;
  a->raw_deallocate(p);
  void* q = a->raw_allocate(100);
  REQUIRE(q != nullptr);
  a->raw_deallocate(q);
}

TEST(memory_tracker_counts_on_top_of_the_cache) {
  REQUIRE(CpuCache::install_forced());
  MemoryTracker::install();
  REQUIRE(MemoryTracker::installed());
  MemoryTracker::reset_peak();
  const int64_t before = MemoryTracker::current_bytes();
  {
    at::Tensor t = at::empty({1 << 20}, at::kFloat);
    REQUIRE(MemoryTracker::current_bytes() == before + (4 << 20));
  }
  REQUIRE(MemoryTracker::current_bytes() == before);
  REQUIRE(MemoryTracker::peak_bytes() >= before + (4 << 20));
  const auto hits = CpuCache::stats().hits;
  { at::Tensor t = at::empty({1 << 20}, at::kFloat); }
  REQUIRE(CpuCache::stats().hits == hits + 1);  // the tracker passes allocations through to the cache
}

TEST(set_threads_sets_openblas_threads_too) {
  const int before = get_threads();
  set_threads(1);
  if (blas_threads() > 0) REQUIRE(blas_threads() == 1);
  set_threads(before);
  if (blas_threads() > 0) REQUIRE(blas_threads() == before);
  (void)cpu_has_bf16();  // CPUID only: must not crash
}

int main() { return instill_test::run_all(); }
