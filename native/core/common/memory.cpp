#include "common/memory.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <atomic>
#include <mutex>
#include <unordered_map>

namespace instill {
namespace {

std::atomic<int64_t> g_current{0};
std::atomic<int64_t> g_peak{0};
std::atomic<int64_t> g_count{0};

// Sizes of live counted allocations, keyed by data pointer. The DataPtr's context must stay equal to its
// data pointer: some kernels use Allocator::raw_allocate / raw_deallocate, which require exactly that.
std::mutex g_sizes_mutex;
std::unordered_map<void*, int64_t>* g_sizes = new std::unordered_map<void*, int64_t>();  // never freed
c10::DeleterFnPtr g_inner_deleter = nullptr;

void counted_delete(void* ptr) {
  int64_t bytes = 0;
  {
    std::lock_guard<std::mutex> lock(g_sizes_mutex);
    auto it = g_sizes->find(ptr);
    if (it != g_sizes->end()) {
      bytes = it->second;
      g_sizes->erase(it);
    }
  }
  g_current.fetch_sub(bytes, std::memory_order_relaxed);
  g_inner_deleter(ptr);
}

void note_alloc(int64_t bytes) {
  int64_t now = g_current.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  int64_t peak = g_peak.load(std::memory_order_relaxed);
  while (now > peak && !g_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
  g_count.fetch_add(1, std::memory_order_relaxed);
}

struct CountingAllocator final : c10::Allocator {
  explicit CountingAllocator(c10::Allocator* inner) : inner(inner) {}

  c10::DataPtr allocate(size_t n) const override {
    c10::DataPtr p = inner->allocate(n);
    // Count only what we can release exactly: a context equal to the data and the inner raw deleter.
    if (n == 0 || !p.get() || p.get() != p.get_context() || p.get_deleter() != g_inner_deleter) return p;
    void* data = p.release_context();
    {
      std::lock_guard<std::mutex> lock(g_sizes_mutex);
      (*g_sizes)[data] = static_cast<int64_t>(n);
    }
    note_alloc(static_cast<int64_t>(n));
    return c10::DataPtr(data, data, &counted_delete, p.device());
  }

  c10::DeleterFnPtr raw_deleter() const override { return &counted_delete; }

  c10::Allocator* inner;
};

std::mutex g_install_mutex;
CountingAllocator* g_allocator = nullptr;  // static lifetime, as SetCPUAllocator requires

}  // namespace

void MemoryTracker::install() {
  std::lock_guard<std::mutex> lock(g_install_mutex);
  if (g_allocator) return;
  c10::Allocator* inner = c10::GetCPUAllocator();
  g_inner_deleter = inner->raw_deleter();
  if (!g_inner_deleter) return;  // an allocator without a raw deleter cannot be wrapped; installed() stays false
  g_allocator = new CountingAllocator(inner);
  // Priority 1 overrides the default CPU allocator (registered with priority 0).
  c10::SetCPUAllocator(g_allocator, /*priority=*/1);
}

bool MemoryTracker::installed() {
  std::lock_guard<std::mutex> lock(g_install_mutex);
  return g_allocator != nullptr && c10::GetCPUAllocator() == g_allocator;
}

int64_t MemoryTracker::current_bytes() { return g_current.load(std::memory_order_relaxed); }
int64_t MemoryTracker::peak_bytes() { return g_peak.load(std::memory_order_relaxed); }
void MemoryTracker::reset_peak() { g_peak.store(g_current.load(std::memory_order_relaxed), std::memory_order_relaxed); }
int64_t MemoryTracker::allocation_count() { return g_count.load(std::memory_order_relaxed); }

}  // namespace instill
