#include "common/memory.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/errors.h"

namespace instill {

// ---------------------------------------------------------------- CpuCache
namespace {

constexpr size_t kAlign = 64;           // as c10::alloc_cpu (gAlignment)
constexpr size_t kHeader = 64;          // keeps the data 64-byte aligned
constexpr size_t kMinBlock = 64 << 10;  // smaller requests: plain malloc/free (glibc serves them from its arenas)
constexpr uint64_t kMagic = 0x696e7374696c6c31ULL;

struct BlockHeader {
  size_t cls;  // size class of a cached block; 0 = free() directly
  uint64_t magic;
};

std::mutex* g_cache_mutex = new std::mutex();  // never freed: tensors may be released during static destruction
std::unordered_map<size_t, std::vector<void*>>* g_free_lists = new std::unordered_map<size_t, std::vector<void*>>();
std::atomic<int64_t> g_cached{0}, g_hits{0}, g_misses{0}, g_small{0};
std::atomic<int64_t> g_cap{int64_t{2048} << 20};
std::atomic<bool> g_cache_installed{false};
std::mutex g_cache_install_mutex;

void release_all_cached() {
  std::vector<void*> blocks;
  {
    std::lock_guard<std::mutex> lock(*g_cache_mutex);
    for (auto& kv : *g_free_lists) {
      blocks.insert(blocks.end(), kv.second.begin(), kv.second.end());
      kv.second.clear();
    }
    g_free_lists->clear();
    g_cached.store(0);
  }
  for (void* b : blocks) std::free(b);
}

void cache_delete(void* ptr) {
  if (!ptr) return;
  void* base = static_cast<char*>(ptr) - kHeader;
  auto* h = static_cast<BlockHeader*>(base);
  const size_t cls = h->cls;
  if (cls != 0) {
    std::lock_guard<std::mutex> lock(*g_cache_mutex);
    if (g_cached.load(std::memory_order_relaxed) + static_cast<int64_t>(cls) <= g_cap.load(std::memory_order_relaxed)) {
      (*g_free_lists)[cls].push_back(base);
      g_cached.fetch_add(static_cast<int64_t>(cls), std::memory_order_relaxed);
      return;
    }
  }
  std::free(base);
}

void* system_alloc(size_t bytes) {
  void* base = nullptr;
  if (posix_memalign(&base, kAlign, bytes + kHeader) != 0) base = nullptr;
  if (!base) {  // give the cached blocks back and retry once
    release_all_cached();
    if (posix_memalign(&base, kAlign, bytes + kHeader) != 0) base = nullptr;
  }
  TORCH_CHECK(base != nullptr, "instill CPU allocator: not enough memory: you tried to allocate ", bytes, " bytes.");
  return base;
}

struct CachingCpuAllocator final : c10::Allocator {
  c10::DataPtr allocate(size_t n) const override {
    if (n == 0) return {nullptr, nullptr, &cache_delete, c10::Device(c10::DeviceType::CPU)};
    const size_t cls = CpuCache::size_class(n);
    const bool cacheable = n >= kMinBlock && g_cap.load(std::memory_order_relaxed) > 0;
    void* base = nullptr;
    if (cacheable) {
      std::lock_guard<std::mutex> lock(*g_cache_mutex);
      auto it = g_free_lists->find(cls);
      if (it != g_free_lists->end() && !it->second.empty()) {
        base = it->second.back();
        it->second.pop_back();
        g_cached.fetch_sub(static_cast<int64_t>(cls), std::memory_order_relaxed);
      }
    }
    if (base) {
      g_hits.fetch_add(1, std::memory_order_relaxed);
    } else {
      (cacheable ? g_misses : g_small).fetch_add(1, std::memory_order_relaxed);
      base = system_alloc(cacheable ? cls : n);
      auto* h = static_cast<BlockHeader*>(base);
      h->cls = cacheable ? cls : 0;
      h->magic = kMagic;
    }
    void* data = static_cast<char*>(base) + kHeader;
    return {data, data, &cache_delete, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &cache_delete; }
};

CachingCpuAllocator* g_cache_allocator = new CachingCpuAllocator();  // static lifetime, as SetCPUAllocator requires

int64_t cap_from_env() {
  const char* v = std::getenv("INSTILL_CPU_CACHE_MB");
  if (!v || !*v) return int64_t{2048} << 20;
  char* end = nullptr;
  long long mb = std::strtoll(v, &end, 10);
  if (*end != '\0' || mb < 0 || mb > (int64_t{1} << 30))
    throw ArgumentError(std::string("INSTILL_CPU_CACHE_MB: expected a whole number of MiB >= 0, got '") + v + "'");
  return static_cast<int64_t>(mb) << 20;
}

bool install_cache(bool respect_env) {
  std::lock_guard<std::mutex> lock(g_cache_install_mutex);
  if (g_cache_installed.load()) return true;
  if (respect_env) {
    const char* v = std::getenv("INSTILL_CPU_ALLOCATOR");
    const std::string choice = v ? v : "";
    if (choice == "system") return false;
    if (!choice.empty() && choice != "cache")
      throw ArgumentError("INSTILL_CPU_ALLOCATOR: expected 'cache' (default) or 'system', got '" + choice + "'");
    g_cap.store(cap_from_env());
  }
  // Never displace an allocator someone else installed over LibTorch's default (it may be wrapping it).
  if (c10::GetCPUAllocator() != c10::GetDefaultCPUAllocator()) return false;
  c10::SetCPUAllocator(g_cache_allocator, /*priority=*/1);
  g_cache_installed.store(true);
  return true;
}

}  // namespace

bool CpuCache::install() { return install_cache(true); }
bool CpuCache::install_forced() { return install_cache(false); }
bool CpuCache::installed() { return g_cache_installed.load(); }

CpuCacheStats CpuCache::stats() {
  CpuCacheStats s;
  s.installed = installed();
  s.hits = g_hits.load();
  s.misses = g_misses.load();
  s.small = g_small.load();
  s.cached_bytes = g_cached.load();
  s.cap_bytes = g_cap.load();
  s.min_block = static_cast<int64_t>(kMinBlock);
  return s;
}

void CpuCache::empty() { release_all_cached(); }

void CpuCache::set_cap_bytes(int64_t cap) {
  if (cap < 0) throw RangeError("CpuCache: cap must be >= 0 bytes, got " + std::to_string(cap));
  g_cap.store(cap);
  if (g_cached.load() > cap) release_all_cached();
}

size_t CpuCache::size_class(size_t n) {
  if (n < kMinBlock) return n;
  if (n <= (size_t{1} << 20)) return (n + 4095) & ~size_t{4095};
  const int log2 = 63 - __builtin_clzll(static_cast<unsigned long long>(n));
  const size_t step = size_t{1} << (log2 - 3);  // 8 classes per power of two
  return (n + step - 1) / step * step;
}

std::string CpuCache::name() { return installed() ? "instill-cache" : "system"; }

// ---------------------------------------------------------------- MemoryTracker
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
  CpuCache::install();  // first, so that the counting allocator wraps the caching one (never the other way round)
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
