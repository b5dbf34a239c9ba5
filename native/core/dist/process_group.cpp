// Process group on c10d: TCPStore rendezvous, Gloo (CPU) or NCCL (CUDA), bucketed gradient averaging.
// See process_group.h.
//
// Torch's c10d headers guard the backends with USE_C10D_GLOO / USE_C10D_NCCL, which Torch's CMake config does not
// export; the backends themselves are compiled into libtorch_cpu (Gloo) and libtorch_cuda (NCCL). Gloo's own
// headers (<gloo/...>, Debian: libgloo-dev, the same source as the libgloo0 that libtorch_cpu links) are needed
// to declare ProcessGroupGloo; when they are missing this file still compiles and the Gloo backend reports how to
// get it.
#if __has_include(<gloo/context.h>)
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#define INSTILL_HAVE_GLOO 1
#else
#define INSTILL_HAVE_GLOO 0
#endif
#if defined(INSTILL_WITH_CUDA) && (defined(INSTILL_WITH_NCCL) || __has_include(<nccl.h>))
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL 1
#endif
#define INSTILL_HAVE_NCCL 1
#else
#define INSTILL_HAVE_NCCL 0
#endif

#include "dist/process_group.h"

#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#if INSTILL_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if INSTILL_HAVE_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "common/errors.h"

namespace instill::dist {
namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return (v && *v) ? std::string(v) : fallback;
}

int env_int(const char* name, int fallback, int lo, int hi) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  errno = 0;
  long x = std::strtol(v, &end, 10);
  if (errno != 0 || end == v || *end != '\0' || x < lo || x > hi) {
    std::ostringstream os;
    os << name << ": expected an integer in [" << lo << ", " << hi << "], got '" << v << "'";
    throw ArgumentError(os.str());
  }
  return static_cast<int>(x);
}

std::chrono::milliseconds to_ms(double s) {
  return std::chrono::milliseconds(static_cast<int64_t>(s * 1000.0));
}

bool is_loopback(const std::string& addr) {
  return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1";
}

void wait_work(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
  try {
    work->wait();
  } catch (const c10::Error& e) {
    throw std::runtime_error(std::string("distributed ") + what + " failed (a peer may have exited): " +
                             e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("distributed ") + what + " failed (a peer may have exited): " + e.what());
  }
}

}  // namespace

void DistConfig::validate() const {
  if (world_size < 1) throw RangeError("world_size: must be >= 1, got " + std::to_string(world_size));
  if (rank < 0 || rank >= world_size)
    throw RangeError("rank: must be in [0, " + std::to_string(world_size - 1) + "], got " + std::to_string(rank));
  if (local_rank < 0) throw RangeError("local_rank: must be >= 0, got " + std::to_string(local_rank));
  if (master_port < 1 || master_port > 65535)
    throw RangeError("master_port: must be in [1, 65535], got " + std::to_string(master_port));
  if (master_addr.empty()) throw ArgumentError("master_addr: empty");
  if (!(timeout_s > 0) || timeout_s > 86400) throw RangeError("timeout_s: must be in (0, 86400]");
  if (backend != "auto" && backend != "gloo" && backend != "nccl")
    throw ArgumentError("backend: expected 'auto', 'gloo' or 'nccl', got '" + backend + "'");
}

DistConfig config_from_env() {
  DistConfig c;
  c.master_addr = env_or("MASTER_ADDR", "127.0.0.1");
  c.master_port = env_int("MASTER_PORT", 29500, 1, 65535);
  c.world_size = env_int("WORLD_SIZE", 1, 1, 1 << 20);
  c.rank = env_int("RANK", 0, 0, (1 << 20) - 1);
  c.local_rank = env_int("LOCAL_RANK", c.rank, 0, (1 << 20) - 1);
  c.backend = env_or("INSTILL_DIST_BACKEND", "auto");
  const std::string t = env_or("INSTILL_DIST_TIMEOUT", "");
  if (!t.empty()) {
    char* end = nullptr;
    double x = std::strtod(t.c_str(), &end);
    if (end == t.c_str() || *end != '\0') throw ArgumentError("INSTILL_DIST_TIMEOUT: expected seconds, got '" + t + "'");
    c.timeout_s = x;
  }
  c.validate();
  return c;
}

bool backend_available(const std::string& name) {
  if (name == "gloo") return INSTILL_HAVE_GLOO != 0;
  if (name == "nccl") return INSTILL_HAVE_NCCL != 0 && torch::cuda::is_available();
  return false;
}

ProcessGroup::ProcessGroup(const DistConfig& config, const std::string& device_type) : config_(config) {
  config_.validate();
  if (device_type != "cpu" && device_type != "cuda")
    throw ArgumentError("device: expected 'cpu' or 'cuda', got '" + device_type + "'");
  backend_ = config_.backend;
  if (backend_ == "auto") backend_ = (device_type == "cuda" && backend_available("nccl")) ? "nccl" : "gloo";
  if (backend_ == "gloo" && !INSTILL_HAVE_GLOO)
    throw std::runtime_error(
        "distributed: this build has no Gloo backend (Gloo's headers were missing at build time: install "
        "libgloo-dev, e.g. sudo apt-get install libgloo-dev, and rebuild)");
  if (backend_ == "nccl" && !backend_available("nccl"))
    throw std::runtime_error("distributed: the NCCL backend needs a CUDA build of instill with NCCL and a GPU");

  const auto timeout = to_ms(config_.timeout_s);
  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(config_.master_port);
  so.isServer = config_.rank == 0;
  so.numWorkers = static_cast<std::size_t>(config_.world_size);
  so.waitWorkers = true;
  so.timeout = timeout;
  c10::intrusive_ptr<c10d::Store> store;
  try {
    store = c10::make_intrusive<c10d::TCPStore>(config_.master_addr, so);
  } catch (const std::exception& e) {
    std::ostringstream os;
    os << "distributed: rendezvous at " << config_.master_addr << ":" << config_.master_port << " failed (rank "
       << config_.rank << " of " << config_.world_size << ", timeout " << config_.timeout_s << " s): "
       << (dynamic_cast<const c10::Error*>(&e) ? dynamic_cast<const c10::Error*>(&e)->what_without_backtrace()
                                                : e.what());
    throw std::runtime_error(os.str());
  }
  // One namespace per group in the store, so a second group in the same job does not read the first's keys.
  auto prefixed = c10::make_intrusive<c10d::PrefixStore>("instill/" + backend_, store);
  store_holder_ = std::shared_ptr<void>(store.get(), [keep = store](void*) mutable { keep.reset(); });

  try {
    if (backend_ == "gloo") {
#if INSTILL_HAVE_GLOO
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      else if (is_loopback(config_.master_addr))
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, config_.rank, config_.world_size, opts);
      pg_ = pg.get();
      pg_holder_ = std::shared_ptr<void>(pg.get(), [keep = pg](void*) mutable { keep.reset(); });
#endif
    } else {
#if INSTILL_HAVE_NCCL
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout;
      auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, config_.rank, config_.world_size, opts);
      pg_ = pg.get();
      pg_holder_ = std::shared_ptr<void>(pg.get(), [keep = pg](void*) mutable { keep.reset(); });
#endif
    }
  } catch (const std::exception& e) {
    // Gloo/NCCL exchange their addresses through the store: a missing rank shows up here as a timeout.
    std::ostringstream os;
    os << "distributed: rendezvous at " << config_.master_addr << ":" << config_.master_port << " failed (rank "
       << config_.rank << " of " << config_.world_size << ", timeout " << config_.timeout_s << " s): creating the "
       << backend_ << " process group failed: "
       << (dynamic_cast<const c10::Error*>(&e) ? dynamic_cast<const c10::Error*>(&e)->what_without_backtrace()
                                                : e.what());
    throw std::runtime_error(os.str());
  }
  if (!pg_) throw std::runtime_error("distributed: backend '" + backend_ + "' is not available in this build");
}

ProcessGroup::~ProcessGroup() {
  pg_ = nullptr;
  pg_holder_.reset();
  store_holder_.reset();
}

void ProcessGroup::barrier() {
  if (config_.world_size == 1) return;
  wait_work(pg_->barrier(), "barrier");
}

void ProcessGroup::broadcast_(const std::vector<at::Tensor>& tensors, int root) {
  if (root < 0 || root >= config_.world_size) throw RangeError("broadcast: root out of range");
  if (config_.world_size == 1) return;
  c10d::BroadcastOptions o;
  o.rootRank = root;
  for (const auto& t : tensors) {
    if (!t.defined()) throw ArgumentError("broadcast: undefined tensor");
    at::NoGradGuard ng;
    // c10d needs dense contiguous tensors; parameters usually are, else go through a contiguous copy.
    std::vector<at::Tensor> v{t.is_contiguous() ? t : t.contiguous()};
    wait_work(pg_->broadcast(v, o), "broadcast");
    if (!v[0].is_same(t)) t.copy_(v[0]);
  }
}

void ProcessGroup::allreduce_bucketed(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes, bool mean) {
  if (bucket_bytes < 1) throw RangeError("bucket_bytes: must be >= 1");
  const auto t0 = std::chrono::steady_clock::now();
  at::NoGradGuard ng;
  stats_.calls += 1;
  size_t i = 0;
  const double scale = 1.0 / static_cast<double>(config_.world_size);
  while (i < tensors.size()) {
    if (!tensors[i].defined()) throw ArgumentError("allreduce: tensor " + std::to_string(i) + " is undefined");
    // A bucket: consecutive tensors with the same dtype and device, up to bucket_bytes (at least one tensor).
    const auto dtype = tensors[i].scalar_type();
    const auto device = tensors[i].device();
    size_t j = i;
    int64_t bytes = 0;
    while (j < tensors.size() && tensors[j].defined() && tensors[j].scalar_type() == dtype &&
           tensors[j].device() == device) {
      const int64_t b = tensors[j].numel() * static_cast<int64_t>(tensors[j].element_size());
      if (j > i && bytes + b > bucket_bytes) break;
      bytes += b;
      ++j;
    }
    at::Tensor flat;
    if (j - i == 1 && tensors[i].is_contiguous()) {
      flat = tensors[i].view({-1});  // a single tensor is reduced in place
    } else {
      std::vector<at::Tensor> parts;
      parts.reserve(j - i);
      for (size_t k = i; k < j; ++k) parts.push_back(tensors[k].reshape({-1}));
      flat = at::cat(parts);
    }
    if (config_.world_size > 1) {
      std::vector<at::Tensor> v{flat};
      c10d::AllreduceOptions o;
      o.reduceOp = c10d::ReduceOp::SUM;
      wait_work(pg_->allreduce(v, o), "allreduce");
    }
    if (mean && config_.world_size > 1) {
      if (at::isFloatingType(dtype) || at::isComplexType(dtype))
        flat.mul_(scale);
      else
        flat.div_(config_.world_size, "floor");
    }
    if (!(j - i == 1 && tensors[i].is_contiguous())) {
      int64_t off = 0;
      for (size_t k = i; k < j; ++k) {
        const int64_t n = tensors[k].numel();
        tensors[k].copy_(flat.narrow(0, off, n).view(tensors[k].sizes()));
        off += n;
      }
    }
    stats_.buckets += 1;
    stats_.bytes += bytes;
    i = j;
  }
  stats_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void ProcessGroup::allreduce_mean_(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes) {
  allreduce_bucketed(tensors, bucket_bytes, true);
}

void ProcessGroup::allreduce_sum_(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes) {
  allreduce_bucketed(tensors, bucket_bytes, false);
}

double ProcessGroup::sync_gradients(const std::vector<at::Tensor>& params, int64_t bucket_bytes) {
  const auto t0 = std::chrono::steady_clock::now();
  at::NoGradGuard ng;
  // Which parameters have a gradient on at least one rank: one small all-reduce of presence flags.
  at::Tensor present = at::empty({static_cast<int64_t>(params.size())}, at::kFloat);
  {
    auto acc = present.accessor<float, 1>();
    for (size_t k = 0; k < params.size(); ++k) acc[static_cast<int64_t>(k)] = params[k].grad().defined() ? 1.f : 0.f;
  }
  if (config_.world_size > 1 && !params.empty()) {
    at::Tensor flags = present;
    if (backend_ == "nccl") flags = present.to(params.front().device());
    std::vector<at::Tensor> v{flags};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    wait_work(pg_->allreduce(v, o), "allreduce (gradient presence)");
    present = flags.cpu();
  }
  std::vector<at::Tensor> grads;
  grads.reserve(params.size());
  auto acc = present.accessor<float, 1>();
  for (size_t k = 0; k < params.size(); ++k) {
    if (acc[static_cast<int64_t>(k)] == 0.f) continue;
    const at::Tensor& p = params[k];
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p, at::MemoryFormat::Contiguous);
    grads.push_back(p.grad());
  }
  const double before = stats_.seconds;
  allreduce_bucketed(grads, bucket_bytes, true);
  // Count the presence round in the time too (it is part of the per-step communication).
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  stats_.seconds = before + total;
  return total;
}

std::vector<double> ProcessGroup::allgather_scalars(const std::vector<double>& values) {
  const int64_t n = static_cast<int64_t>(values.size());
  at::Tensor in = at::empty({n}, at::kDouble);
  for (int64_t k = 0; k < n; ++k) in[k] = values[static_cast<size_t>(k)];
  if (config_.world_size == 1) return values;
  const bool cuda = backend_ == "nccl";
  if (cuda) in = in.cuda();
  std::vector<at::Tensor> inputs{in};
  std::vector<std::vector<at::Tensor>> outputs(1);
  for (int r = 0; r < config_.world_size; ++r) outputs[0].push_back(at::empty_like(in));
  wait_work(pg_->allgather(outputs, inputs), "allgather");
  std::vector<double> out;
  out.reserve(static_cast<size_t>(n * config_.world_size));
  for (int r = 0; r < config_.world_size; ++r) {
    at::Tensor t = outputs[0][static_cast<size_t>(r)].cpu().contiguous();
    const double* d = t.data_ptr<double>();
    out.insert(out.end(), d, d + n);
  }
  return out;
}

std::vector<double> ProcessGroup::allreduce_mean_scalars(const std::vector<double>& values) {
  if (config_.world_size == 1 || values.empty()) return values;
  at::Tensor t = at::tensor(values, at::kDouble);
  if (backend_ == "nccl") t = t.cuda();
  std::vector<at::Tensor> v{t};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::SUM;
  wait_work(pg_->allreduce(v, o), "allreduce");
  t = t.cpu().div_(config_.world_size).contiguous();
  return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
}

std::function<void(const std::vector<at::Tensor>&)> make_grad_sync(std::shared_ptr<ProcessGroup> pg,
                                                                   int64_t bucket_bytes) {
  if (!pg) throw ArgumentError("make_grad_sync: null process group");
  return [pg, bucket_bytes](const std::vector<at::Tensor>& params) { pg->sync_gradients(params, bucket_bytes); };
}

}  // namespace instill::dist
