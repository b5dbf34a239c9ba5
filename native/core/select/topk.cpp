#include "select/topk.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "common/errors.h"

namespace instill {
namespace {

struct Cand {
  float s;
  int64_t i;
};

// a ranks before b: higher score, then lower index.
inline bool better(const Cand& a, const Cand& b) { return a.s > b.s || (a.s == b.s && a.i < b.i); }

// A bounded heap of the k best candidates seen so far; front() is the worst of them.
struct Best {
  std::vector<Cand> h;
  int64_t k = 0;

  // Scans scores s[0..n) whose pool indices are offset + j, in increasing index order: a candidate whose
  // score equals the current worst never displaces it (its index is larger), so the test is s > worst.
  void scan(const float* s, int64_t n, int64_t offset) {
    int64_t j = 0;
    while (j < n && static_cast<int64_t>(h.size()) < k) {
      float v = s[j];
      if (std::isnan(v)) v = -std::numeric_limits<float>::infinity();
      h.push_back({v, offset + j});
      std::push_heap(h.begin(), h.end(), better);
      ++j;
    }
    if (j >= n) return;
    float worst = h.front().s;
    for (; j < n; ++j) {
      float v = s[j];
      if (!(v > worst)) continue;  // also skips NaN (ranks as -inf, which never beats a full heap's worst... )
      std::pop_heap(h.begin(), h.end(), better);
      h.back() = {v, offset + j};
      std::push_heap(h.begin(), h.end(), better);
      worst = h.front().s;
    }
  }
};

void check_matrix(const at::Tensor& t, const char* what) {
  if (!t.defined()) throw ArgumentError(std::string(what) + ": undefined tensor");
  if (t.dim() != 2)
    throw ArgumentError(std::string(what) + ": expected a 2-D [rows, dim] tensor, got " + std::to_string(t.dim()) +
                        " dimensions");
  if (t.scalar_type() != at::kFloat)
    throw ArgumentError(std::string(what) + ": expected float32, got " + c10::toString(t.scalar_type()));
  if (!t.device().is_cpu()) throw ArgumentError(std::string(what) + ": expected a CPU tensor");
}

}  // namespace

int64_t check_topk_args(const at::Tensor& queries_in, const std::vector<at::Tensor>& pool_blocks, int64_t k,
                        int64_t chunk_rows) {
  check_matrix(queries_in, "queries");
  const int64_t d = queries_in.size(1);
  int64_t N = 0;
  for (size_t b = 0; b < pool_blocks.size(); ++b) {
    const std::string name = pool_blocks.size() == 1 ? "pool" : "pool block " + std::to_string(b);
    check_matrix(pool_blocks[b], name.c_str());
    if (pool_blocks[b].size(1) != d)
      throw ArgumentError(name + ": rows have dimension " + std::to_string(pool_blocks[b].size(1)) +
                          " but queries have dimension " + std::to_string(d));
    N += pool_blocks[b].size(0);
  }
  if (k < 1) throw RangeError("k must be at least 1, got " + std::to_string(k));
  if (k > N)
    throw RangeError("k (" + std::to_string(k) + ") exceeds the pool size (" + std::to_string(N) + " rows)");
  if (chunk_rows < 1) throw RangeError("chunk_rows must be at least 1, got " + std::to_string(chunk_rows));
  return N;
}

TopkResult exact_topk(const at::Tensor& queries_in, const std::vector<at::Tensor>& pool_blocks, int64_t k,
                      const TopkOptions& opts) {
  c10::NoGradGuard no_grad;
  const int64_t N = check_topk_args(queries_in, pool_blocks, k, opts.chunk_rows);
  const int64_t Q = queries_in.size(0);
  at::Tensor queries = queries_in.contiguous();
  std::vector<Best> best(static_cast<size_t>(Q));
  for (auto& b : best) {
    b.k = k;
    b.h.reserve(static_cast<size_t>(k));
  }
  const int64_t chunk = std::min<int64_t>(opts.chunk_rows, std::max<int64_t>(N, 1));
  at::Tensor buf = at::empty({Q, chunk}, at::kFloat);  // the only scores buffer: [Q, chunk]
  at::Tensor q0 = Q == 1 ? queries[0] : at::Tensor();
  int64_t offset = 0;
  for (const auto& block_in : pool_blocks) {
    at::Tensor block = block_in.contiguous();
    const int64_t n = block.size(0);
    for (int64_t r0 = 0; r0 < n; r0 += chunk) {
      if (opts.cancel && opts.cancel->load()) throw RangeError("topk: cancelled");
      const int64_t c = std::min(chunk, n - r0);
      at::Tensor rows = block.narrow(0, r0, c);
      at::Tensor scores = buf.narrow(1, 0, c);  // [Q, c], row stride `chunk`
      if (Q == 1) {
        at::Tensor out = buf[0].narrow(0, 0, c);
        at::mv_out(out, rows, q0);  // gemv: one pass over the rows
      } else if (Q > 1) {
        if (c == chunk) at::mm_out(buf, queries, rows.t());
        else {
          at::Tensor tmp = at::mm(queries, rows.t());
          scores.copy_(tmp);
        }
      }
      const float* base = buf.data_ptr<float>();
      const int64_t ld = chunk;
      const int64_t off = offset + r0;
      at::parallel_for(0, Q, 1, [&](int64_t q_begin, int64_t q_end) {
        for (int64_t q = q_begin; q < q_end; ++q) best[q].scan(base + q * ld, c, off);
      });
      if (opts.progress && N > 0) opts.progress(static_cast<double>(off + c) / static_cast<double>(N));
    }
    offset += n;
  }

  TopkResult res;
  res.scores = at::empty({Q, k}, at::kFloat);
  res.indices = at::empty({Q, k}, at::kLong);
  float* ps = res.scores.data_ptr<float>();
  int64_t* pi = res.indices.data_ptr<int64_t>();
  for (int64_t q = 0; q < Q; ++q) {
    auto& h = best[q].h;
    std::sort(h.begin(), h.end(), better);
    for (int64_t j = 0; j < k; ++j) {
      ps[q * k + j] = h[j].s;
      pi[q * k + j] = h[j].i;
    }
  }
  return res;
}

TopkResult exact_topk(const at::Tensor& queries, const at::Tensor& pool, int64_t k, const TopkOptions& opts) {
  return exact_topk(queries, std::vector<at::Tensor>{pool}, k, opts);
}

at::Tensor l2_normalize_rows(const at::Tensor& x) {
  c10::NoGradGuard no_grad;
  check_matrix(x, "rows");
  at::Tensor y = x.contiguous().clone();
  if (y.numel() == 0) return y;
  at::Tensor norms = y.norm(2, {1}, /*keepdim=*/true);
  norms.masked_fill_(norms.eq(0), 1.0);
  y.div_(norms);
  return y;
}

TopkIndex::TopkIndex(int64_t dim, bool normalize) : dim_(dim), normalize_(normalize) {
  if (dim < 1 || dim > (int64_t{1} << 24)) throw RangeError("dim must be in [1, 16777216], got " + std::to_string(dim));
}

at::Tensor TopkIndex::prepare(const at::Tensor& rows) const {
  check_matrix(rows, "rows");
  if (rows.size(1) != dim_)
    throw ArgumentError("rows: expected dimension " + std::to_string(dim_) + ", got " + std::to_string(rows.size(1)));
  return normalize_ ? l2_normalize_rows(rows) : rows.contiguous();
}

at::Tensor TopkIndex::prepare_queries(const at::Tensor& queries) const {
  check_matrix(queries, "queries");
  if (queries.size(1) != dim_)
    throw ArgumentError("queries: expected dimension " + std::to_string(dim_) + ", got " +
                        std::to_string(queries.size(1)));
  return normalize_ ? l2_normalize_rows(queries) : queries.contiguous();
}

int64_t TopkIndex::add(const at::Tensor& rows) {
  at::Tensor r = prepare(rows);
  if (r.size(0) > 0) {
    blocks_.push_back(r);
    size_ += r.size(0);
  }
  return size_;
}

int64_t TopkIndex::add_blocks(const std::vector<at::Tensor>& blocks) {
  for (const auto& b : blocks) {
    check_matrix(b, "rows");
    if (b.size(1) != dim_) throw ArgumentError("rows: expected dimension " + std::to_string(dim_));
  }
  for (const auto& b : blocks) {
    if (b.size(0) == 0) continue;
    blocks_.push_back(b.contiguous());
    size_ += b.size(0);
  }
  return size_;
}

std::vector<at::Tensor> TopkIndex::random_blocks(int64_t n, uint64_t seed) const {
  c10::NoGradGuard no_grad;
  if (n < 0) throw RangeError("rows must be >= 0, got " + std::to_string(n));
  const int64_t block_rows = 65536;
  const int64_t nb = (n + block_rows - 1) / block_rows;
  std::vector<at::Tensor> out(static_cast<size_t>(nb));
  at::parallel_for(0, nb, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t rows = std::min(block_rows, n - b * block_rows);
      auto gen = at::make_generator<at::CPUGeneratorImpl>(seed * 1000003ULL + static_cast<uint64_t>(b));
      at::Tensor t = at::empty({rows, dim_}, at::kFloat);
      t.normal_(0.0, 1.0, gen);
      if (normalize_) {
        at::Tensor norms = t.norm(2, {1}, true);
        norms.masked_fill_(norms.eq(0), 1.0);
        t.div_(norms);
      }
      out[static_cast<size_t>(b)] = t;
    }
  });
  return out;
}

TopkResult TopkIndex::search(const at::Tensor& queries, int64_t k, const TopkOptions& opts) const {
  return exact_topk(prepare_queries(queries), blocks_, k, opts);
}

void TopkIndex::clear() {
  blocks_.clear();
  size_ = 0;
}

}  // namespace instill
