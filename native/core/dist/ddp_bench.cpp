// See ddp_bench.h.
#include "dist/ddp_bench.h"

#include <torch/torch.h>

#include <chrono>
#include <functional>

#include "common/errors.h"
#include "train/optim.h"
#include "train/trainer.h"

namespace instill::dist {

DdpBenchResult ddp_bench(ProcessGroup* pg, const DdpBenchOptions& o) {
  const int world = pg ? pg->world_size() : 1;
  const int rank = pg ? pg->rank() : 0;
  if (o.width < 1 || o.width > 16384) throw RangeError("width: must be in [1, 16384]");
  if (o.layers < 1 || o.layers > 64) throw RangeError("layers: must be in [1, 64]");
  if (o.steps < 1 || o.steps > 100000) throw RangeError("steps: must be in [1, 100000]");
  if (o.global_batch < world || o.global_batch % world != 0)
    throw RangeError("global_batch: must be a positive multiple of the world size (" + std::to_string(world) + ")");
  torch::manual_seed(1234);  // same initial weights on every rank
  torch::nn::Sequential net;
  for (int64_t l = 0; l < o.layers; ++l) {
    net->push_back(torch::nn::Linear(o.width, o.width));
    if (l + 1 < o.layers) net->push_back(torch::nn::Tanh());
  }
  std::vector<std::pair<std::string, at::Tensor>> named;
  int64_t nparams = 0;
  for (auto& kv : net->named_parameters()) {
    named.emplace_back(kv.key(), kv.value());
    nparams += kv.value().numel();
  }
  train::OptimConfig cfg;
  cfg.name = "adamw";
  cfg.lr = 1e-4;
  cfg.schedule = "constant";
  cfg.total_steps = o.steps + 2;
  train::Optimizer opt(named, cfg);
  const int64_t local = o.global_batch / world;
  std::vector<train::Batch> batches;
  for (int64_t s = 0; s < o.steps + 2; ++s) {
    auto g = at::detail::createCPUGenerator(static_cast<uint64_t>(100 + s));
    at::Tensor x = at::randn({o.global_batch, o.width}, g, at::TensorOptions().dtype(at::kFloat));
    at::Tensor y = at::randn({o.global_batch, o.width}, g, at::TensorOptions().dtype(at::kFloat));
    batches.push_back({x.narrow(0, rank * local, local).contiguous(), at::Tensor(),
                       y.narrow(0, rank * local, local).contiguous()});
  }
  auto loss_fn = [&](const train::Batch& b) { return torch::mse_loss(net->forward(b.input_ids), b.labels); };
  train::GradSync sync;
  if (pg) sync = [pg, &o](const std::vector<at::Tensor>& ps) { pg->sync_gradients(ps, o.bucket_bytes); };
  const train::GradSync* sp = pg ? &sync : nullptr;
  train::train_steps(loss_fn, opt, {batches[0], batches[1]}, nullptr, nullptr, false, sp);  // warm-up
  if (pg) {
    pg->barrier();
    pg->reset_stats();
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<train::Batch> timed(batches.begin() + 2, batches.end());
  auto r = train::train_steps(loss_fn, opt, timed, nullptr, nullptr, false, sp);
  if (pg) pg->barrier();
  DdpBenchResult out;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.steps = static_cast<int64_t>(r.losses.size());
  out.params = nparams;
  out.local_batch = local;
  out.allreduce_seconds = pg ? pg->stats().seconds : 0.0;
  out.final_loss = pg ? pg->allreduce_mean_scalars({r.losses.back()})[0] : r.losses.back();
  return out;
}

}  // namespace instill::dist
