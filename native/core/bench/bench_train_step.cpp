// Where a T5 training step spends its time: forward, backward, clipping and the optimizer, timed separately,
// against the matmul throughput of this machine measured in the same run.
//   bench_train_step [preset=small] [batch=8] [source=256] [target=64] [steps=3] [profile=0] [optimizer=adafactor]
//                    [precision=float32|bf16]
// With profile=1 one more step runs under the LibTorch autograd profiler (chrome trace written to /tmp).
// The caching CPU allocator is installed as in the addon (INSTILL_CPU_ALLOCATOR=system leaves it out).
#include <torch/torch.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "common/bench.h"
#include "common/memory.h"
#include "common/runtime.h"
#include "t5/model.h"
#include "train/optim.h"
#include "train/t5_task.h"
#include "train/trainer.h"

using namespace instill;

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
}  // namespace

int main(int argc, char** argv) {
  std::string preset = argc > 1 ? argv[1] : "small";
  const int64_t B = argc > 2 ? std::stoll(argv[2]) : 8, S = argc > 3 ? std::stoll(argv[3]) : 256,
                T = argc > 4 ? std::stoll(argv[4]) : 64, steps = argc > 5 ? std::stoll(argv[5]) : 3;
  const bool profile = argc > 6 && std::string(argv[6]) == "1";
  const std::string optimizer = argc > 7 ? argv[7] : "adafactor";
  const train::Precision precision = train::parse_precision(argc > 8 ? argv[8] : "float32", "precision");
  CpuCache::install();
  auto mm = matmul_bench(1024, 1.0);
  std::printf("matmul 1024: %.1f GFLOP/s, threads %d, allocator %s, optimizer %s, precision %s\n", mm.gflops,
              at::get_num_threads(), CpuCache::name().c_str(), optimizer.c_str(), train::precision_name(precision).c_str());
  t5::T5Config cfg = t5::preset(preset, 32128);
  t5::T5ForConditionalGeneration model(cfg);
  model->init_weights(0);
  model->train();
  std::vector<std::pair<std::string, at::Tensor>> params;
  for (auto& kv : model->named_parameters(true)) params.emplace_back(kv.key(), kv.value());
  train::OptimConfig oc;
  oc.name = optimizer;
  oc.schedule = "constant";
  train::Optimizer opt(params, oc);
  torch::manual_seed(0);
  train::Batch b;
  b.input_ids = torch::randint(2, cfg.vocab_size, {B, S}, torch::kLong);
  b.attention_mask = torch::ones({B, S}, torch::kLong);
  b.labels = torch::randint(2, cfg.vocab_size, {B, T}, torch::kLong);
  auto loss_fn = train::t5_loss_fn(*model);
  double tf = 0, tb = 0, tc = 0, to = 0;
  for (int64_t s = 0; s <= steps; ++s) {  // step 0 = warm-up
    double t0 = now();
    at::Tensor loss;
    {
      train::AutocastGuard ac(precision == train::Precision::kBFloat16, at::kCPU);
      loss = loss_fn(b);
    }
    double t1 = now();
    loss.backward();
    double t2 = now();
    train::clip_grad_norm(opt.param_tensors(), 1.0);
    double t3 = now();
    opt.apply();
    opt.zero_grad();
    double t4 = now();
    if (s > 0) {
      tf += t1 - t0;
      tb += t2 - t1;
      tc += t3 - t2;
      to += t4 - t3;
    }
  }
  const double n = static_cast<double>(steps);
  const double total = (tf + tb + tc + to) / n;
  std::printf("%s %lldx%lld->%lld: step %.3f s = forward %.3f + backward %.3f + clip %.3f + optimizer %.3f\n", preset.c_str(),
              (long long)B, (long long)S, (long long)T, total, tf / n, tb / n, tc / n, to / n);
  if (profile) {
    torch::autograd::profiler::RecordProfile guard("/tmp/instill_train_step_trace.json");
    at::Tensor loss = loss_fn(b);
    loss.backward();
    opt.apply();
    opt.zero_grad();
    std::printf("profile trace: /tmp/instill_train_step_trace.json\n");
  }
  return 0;
}
