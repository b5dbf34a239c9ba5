// Data-parallel communication on PyTorch's own engine, c10d (native/core, pure LibTorch).
//
// Rendezvous: a c10d::TCPStore at MASTER_ADDR:MASTER_PORT, hosted by rank 0 (isServer), which waits up to
// `timeout_s` for all WORLD_SIZE ranks to connect; then a c10d::ProcessGroupGloo (CPU tensors) or, in CUDA
// builds whose Torch has NCCL, a c10d::ProcessGroupNCCL (CUDA tensors) over that store. The variables are the
// ones torchrun sets (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK), so workers can be started by
// `instill launch`, torchrun-style launchers, Slurm or Kubernetes.
//
// Gradient averaging (allreduce_mean_): tensors are grouped by (dtype, device) in order, packed into flat
// buckets of at most `bucket_bytes` (a tensor larger than a bucket gets its own), each bucket is SUM-all-reduced
// and divided by the world size, then copied back into the tensors. With the mean loss over equal-size shards
// the averaged gradient equals the gradient of the mean loss over the global batch (DDP's contract).
//
// sync_gradients(params): like torch DDP with find_unused_parameters: a parameter whose gradient is undefined on
// some ranks but defined on others is treated as a zero gradient there; a parameter without gradient on every
// rank keeps an undefined gradient (so the optimizer leaves it alone, as in one process).
//
// Every collective must be called by all ranks in the same order (c10d's rule).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace c10d {
class ProcessGroup;
class Store;
}  // namespace c10d

namespace instill::dist {

struct DistConfig {
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int world_size = 1;
  int rank = 0;
  int local_rank = 0;
  std::string backend = "auto";  // "auto" (NCCL for CUDA when available, else Gloo) | "gloo" | "nccl"
  double timeout_s = 300;        // rendezvous and collective timeout

  // Throws ArgumentError / RangeError naming the field.
  void validate() const;
};

// Reads MASTER_ADDR (default 127.0.0.1), MASTER_PORT (default 29500), WORLD_SIZE (default 1), RANK (default 0),
// LOCAL_RANK (default RANK), INSTILL_DIST_BACKEND (default auto), INSTILL_DIST_TIMEOUT (seconds, default 300).
// Malformed values throw ArgumentError naming the variable.
DistConfig config_from_env();

// Whether this build can create each backend ("gloo" needs Gloo's headers at build time; "nccl" a CUDA build
// with NCCL).
bool backend_available(const std::string& name);

struct CommStats {
  int64_t calls = 0;        // allreduce_mean_ calls
  int64_t buckets = 0;      // buckets all-reduced
  int64_t bytes = 0;        // payload bytes all-reduced
  double seconds = 0;       // wall time inside allreduce_mean_ (pack + communicate + unpack)
};

class ProcessGroup {
 public:
  // Rendezvous and create the backend. Throws std::runtime_error with the address and the timeout when the
  // ranks do not meet in time.
  explicit ProcessGroup(const DistConfig& config, const std::string& device_type = "cpu");
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const { return config_.rank; }
  int world_size() const { return config_.world_size; }
  int local_rank() const { return config_.local_rank; }
  const std::string& backend() const { return backend_; }
  const DistConfig& config() const { return config_; }

  void barrier();
  // In place: every rank ends with root's values (same shapes and dtypes required on every rank).
  void broadcast_(const std::vector<at::Tensor>& tensors, int root = 0);
  // In place: each tensor becomes the element-wise mean over ranks. Bucketed (see the header comment).
  void allreduce_mean_(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes = kDefaultBucketBytes);
  // In place: the element-wise sum over ranks, bucketed as allreduce_mean_.
  void allreduce_sum_(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes = kDefaultBucketBytes);
  // Averages the gradients of `params` (see the header comment). Returns the seconds spent.
  double sync_gradients(const std::vector<at::Tensor>& params, int64_t bucket_bytes = kDefaultBucketBytes);
  // values[i] of every rank: result[r * n + i] (n = values.size(), equal on every rank).
  std::vector<double> allgather_scalars(const std::vector<double>& values);
  // Element-wise mean over ranks of a vector of scalars (equal length on every rank), in float64.
  std::vector<double> allreduce_mean_scalars(const std::vector<double>& values);

  const CommStats& stats() const { return stats_; }
  void reset_stats() { stats_ = CommStats{}; }

  static constexpr int64_t kDefaultBucketBytes = 25LL * 1024 * 1024;

 private:
  void allreduce_bucketed(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes, bool mean);

  DistConfig config_;
  std::string backend_;
  std::shared_ptr<void> store_holder_;  // keeps the TCPStore (c10::intrusive_ptr) alive
  std::shared_ptr<void> pg_holder_;     // the c10d process group
  c10d::ProcessGroup* pg_ = nullptr;
  CommStats stats_;
};

// A train::GradSync (train/trainer.h) averaging gradients over `pg`: what a training call given a process group uses.
std::function<void(const std::vector<at::Tensor>&)> make_grad_sync(std::shared_ptr<ProcessGroup> pg,
                                                                   int64_t bucket_bytes = ProcessGroup::kDefaultBucketBytes);

}  // namespace instill::dist
