// Exact top-k by inner product (cosine on L2-normalized rows), computed in chunks of pool rows so that
// no [queries x pool] score matrix larger than [Q x chunk_rows] is ever materialised.
//
// Order and ties: results are sorted by score descending; among equal scores the lower pool index comes
// first, and at the k-th place a tie is won by the lower index. NaN scores rank as -infinity.
// Multithreading: the chunk's scores come from one BLAS call (at::mm, or at::mv for a single query),
// which uses the intra-op threads; the per-query selection runs under at::parallel_for.
#pragma once
#include <ATen/ATen.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>

namespace instill {

struct TopkResult {
  at::Tensor scores;   // [Q, k] float32, best first
  at::Tensor indices;  // [Q, k] int64, row numbers in the pool (blocks counted in order)
};

struct TopkOptions {
  int64_t chunk_rows = 32768;                  // pool rows scored per BLAS call (>= 1)
  std::function<void(double)> progress;         // fraction of pool rows done, after each chunk
  const std::atomic<bool>* cancel = nullptr;    // set to stop: throws instill::RangeError("... cancelled")
};

// queries [Q, d] float32; pool given as row blocks [n_i, d] float32 (all CPU). Pool rows are numbered
// block after block. Throws ArgumentError on dtype/shape problems, RangeError when k < 1 or k > N.
TopkResult exact_topk(const at::Tensor& queries, const std::vector<at::Tensor>& pool_blocks, int64_t k,
                      const TopkOptions& opts = {});
TopkResult exact_topk(const at::Tensor& queries, const at::Tensor& pool, int64_t k, const TopkOptions& opts = {});
// The checks exact_topk starts with (cheap: shapes, dtypes, k, chunk_rows); returns the pool size N.
int64_t check_topk_args(const at::Tensor& queries, const std::vector<at::Tensor>& pool_blocks, int64_t k,
                        int64_t chunk_rows);

// Rows divided by their L2 norm (float32 copy); all-zero rows stay zero.
at::Tensor l2_normalize_rows(const at::Tensor& x);

// A pool kept native side: rows are appended as blocks (no reallocation of earlier rows), searched
// exactly with exact_topk. With normalize = true rows and queries are L2-normalized (cosine).
class TopkIndex {
 public:
  TopkIndex(int64_t dim, bool normalize);

  // Prepares rows for add() (checks, float32, contiguous, normalized when asked): callable on any thread.
  at::Tensor prepare(const at::Tensor& rows) const;
  // Appends prepared (or raw: prepare() is applied) rows; returns the new size.
  int64_t add(const at::Tensor& rows);
  // Generates n rows of N(0,1) noise (normalized when the index normalizes) in blocks, in parallel,
  // deterministically from seed. Returns the blocks without adding them (append them with add_blocks).
  std::vector<at::Tensor> random_blocks(int64_t n, uint64_t seed) const;
  int64_t add_blocks(const std::vector<at::Tensor>& blocks);

  TopkResult search(const at::Tensor& queries, int64_t k, const TopkOptions& opts = {}) const;

  // A snapshot of the blocks (tensors share storage): a search on it is unaffected by later add().
  std::vector<at::Tensor> blocks() const { return blocks_; }
  at::Tensor prepare_queries(const at::Tensor& queries) const;

  int64_t size() const { return size_; }
  int64_t dim() const { return dim_; }
  bool normalize() const { return normalize_; }
  int64_t bytes() const { return size_ * dim_ * static_cast<int64_t>(sizeof(float)); }
  void clear();

 private:
  int64_t dim_;
  bool normalize_;
  int64_t size_ = 0;
  std::vector<at::Tensor> blocks_;
};

}  // namespace instill
