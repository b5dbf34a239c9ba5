// CPU facts the speed work reports next to runtime.h's RuntimeInfo (kept out of runtime.h, which the precompiled
// header includes): bf16 instructions and OpenBLAS's own thread count.
//
// runtime.cpp also: set_threads(n) gives OpenBLAS's thread pool the same n (so `--threads 1` is one thread), and
// apply_threads() installs the caching CPU allocator (common/memory.h CpuCache) once per process.
#pragma once

namespace instill {

// Whether this CPU executes bfloat16 dot products natively (CPUID: AVX512_BF16 or AMX_BF16). Without them
// LibTorch's bfloat16 matmuls are emulated and much slower than float32.
bool cpu_has_bf16();
// openblas_get_num_threads() when OpenBLAS is loaded, else 0.
int blas_threads();

}  // namespace instill
