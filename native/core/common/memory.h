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
#pragma once
#include <cstdint>

namespace instill {

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
