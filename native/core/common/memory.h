// Counting CPU allocator: LibTorch keeps no peak-memory statistic on CPU, so MemoryTracker wraps the
// CPU allocator in force (c10::GetCPUAllocator()) and counts the bytes of every allocation made through
// it until that allocation's DataPtr is released. Used by tests and benchmarks to compare peaks.
//
//   instill::MemoryTracker::install();     // once, early; idempotent and thread safe
//   instill::MemoryTracker::reset_peak();  // peak := current
//   ... work ...
//   int64_t peak = instill::MemoryTracker::peak_bytes();
//
// Only allocations made after install() are counted (tensors that already existed are invisible, and
// so is their release). Bytes are the sizes requested from the allocator, not malloc's rounding.
//
// Caching CPU allocator: glibc returns large blocks (above its mmap threshold, at most 32 MiB) to the kernel on
// free and maps them again on the next allocation, so a training step that frees and re-allocates the same
// activation and gradient buffers every step pays a page fault per 4 KiB page each time (20-50% of CPU time as
// system time on a 2-core machine). CpuCache keeps freed blocks of at least `min_block` bytes in free lists
// keyed by a size class (4 KiB pages up to 1 MiB, then 8 classes per power of two: at most 12.5% rounding) and
// hands them out again; small blocks go straight to malloc/free. Cached (free) bytes are capped; a block freed
// past the cap goes back to the system, and a failed allocation empties the cache and retries.
//
//   instill::CpuCache::install();     // once, early (apply_threads() and MemoryTracker::install() call it);
//                                     // INSTILL_CPU_ALLOCATOR=system leaves LibTorch's allocator in place,
//                                     // INSTILL_CPU_CACHE_MB=N sets the cap (default 2048; 0 = no caching)
//   instill::CpuCache::stats();       // hits, misses, cached bytes
//   instill::CpuCache::empty();       // frees every cached block
//
// Blocks are 64-byte aligned (as c10's alloc_cpu) and carry a 64-byte header with their size class, so the
// deleter needs no lookup and a DataPtr's context equals its data (raw_allocate / raw_deallocate work).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace instill {

struct CpuCacheStats {
  bool installed = false;
  int64_t hits = 0, misses = 0;   // cached-size-class allocations served from / not from the cache
  int64_t small = 0;              // allocations below min_block (plain malloc)
  int64_t cached_bytes = 0;       // bytes held in free lists now
  int64_t cap_bytes = 0;
  int64_t min_block = 0;
};

class CpuCache {
 public:
  // Installs the caching allocator as LibTorch's CPU allocator unless INSTILL_CPU_ALLOCATOR=system or another
  // allocator was already installed over the default (it never displaces one). Idempotent, thread safe.
  // Returns whether the caching allocator is in force.
  static bool install();
  // Same, ignoring INSTILL_CPU_ALLOCATOR (tests).
  static bool install_forced();
  static bool installed();
  static CpuCacheStats stats();
  static void empty();
  static void set_cap_bytes(int64_t cap);
  // The size class a request of n bytes is served from (n itself below min_block).
  static size_t size_class(size_t n);
  // "instill-cache" when installed, else "system".
  static std::string name();
};

class MemoryTracker {
 public:
  // Installs the counting allocator in front of the current CPU allocator (process wide). Needs the
  // wrapped allocator to expose raw_deleter() (LibTorch's default CPU allocator does); otherwise nothing
  // is installed and installed() stays false.
  static void install();
  static bool installed();
  // Bytes held right now by live allocations made through the counting allocator.
  static int64_t current_bytes();
  // Highest current_bytes() since install() or the last reset_peak().
  static int64_t peak_bytes();
  // Sets the peak to the current value.
  static void reset_peak();
  // Number of allocations made through the counting allocator since install().
  static int64_t allocation_count();
};

}  // namespace instill
