// A data-parallel training workload for `npm run bench -- ddp`: an MLP of torch::nn::Linear layers trained with
// instill's train_steps (AdamW) whose gradients are averaged through a ProcessGroup. Each worker runs
// global_batch / world_size examples per step, so 1 vs N workers compare at a fixed global batch.
#pragma once
#include <cstdint>

#include "dist/process_group.h"

namespace instill::dist {

struct DdpBenchOptions {
  int64_t width = 1024;        // hidden width
  int64_t layers = 4;          // Linear layers (width x width)
  int64_t global_batch = 256;  // examples per optimizer step, over all workers
  int64_t steps = 20;          // timed steps (after 2 warm-up steps)
  int64_t bucket_bytes = ProcessGroup::kDefaultBucketBytes;
};

struct DdpBenchResult {
  int64_t steps = 0;
  int64_t params = 0;            // trainable parameters
  int64_t local_batch = 0;
  double seconds = 0;            // wall time of the timed steps
  double allreduce_seconds = 0;  // of which inside gradient averaging
  double final_loss = 0;         // mean over workers of the last step's loss
};

// pg may be null (one process). Collective: every rank calls it with the same options.
DdpBenchResult ddp_bench(ProcessGroup* pg, const DdpBenchOptions& o);

}  // namespace instill::dist
