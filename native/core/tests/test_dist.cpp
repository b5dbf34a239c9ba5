// Distributed data parallelism on c10d (Gloo, loopback): each test forks 2 worker processes that rendezvous on a
// free port; the parent only forks and waits (no LibTorch work before fork). A worker reports a failed check on
// stderr and exits 1.
//
// Reference checks: all-reduce results against the sum computed locally from every rank's (seeded) inputs,
// exactly; "2 workers with batch b == 1 worker with batch 2b" on a float64 model of torch::nn::Linear layers,
// step for step, to 1e-10, with torch::optim::SGD and with instill's AdamW train_steps (grad accumulation, clipping).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <thread>

#include "check.h"
#include "dist/process_group.h"
#include "train/optim.h"
#include "train/trainer.h"

using instill::dist::DistConfig;
using instill::dist::ProcessGroup;

namespace {

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return 0;
  }
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

DistConfig loopback(int world, int rank, int port, double timeout_s = 30) {
  DistConfig c;
  c.master_addr = "127.0.0.1";
  c.master_port = port;
  c.world_size = world;
  c.rank = rank;
  c.local_rank = rank;
  c.backend = "gloo";
  c.timeout_s = timeout_s;
  return c;
}

// Forks `world` workers running body(rank, port); fails unless all exit 0 within timeout_s.
void run_workers(int world, const std::function<void(int rank, int port)>& body, double timeout_s = 60) {
  if (!instill::dist::backend_available("gloo")) throw instill_test::Skip{"this build has no Gloo backend (libgloo-dev)"};
  const int port = free_port();
  REQUIRE(port > 0);
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r) {
    std::fflush(stdout);
    std::fflush(stderr);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      int code = 0;
      try {
        at::set_num_threads(1);
        body(r, port);
      } catch (const instill_test::Failure& f) {
        std::fprintf(stderr, "[rank %d] %s\n", r, f.msg.c_str());
        code = 1;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "[rank %d] exception: %s\n", r, e.what());
        code = 1;
      }
      std::fflush(stderr);
      ::_exit(code);
    }
    pids.push_back(pid);
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<int> status(pids.size(), -1);
  size_t done = 0;
  while (done < pids.size()) {
    for (size_t k = 0; k < pids.size(); ++k) {
      if (status[k] != -1) continue;
      int st = 0;
      if (::waitpid(pids[k], &st, WNOHANG) == pids[k]) {
        status[k] = st;
        ++done;
      }
    }
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > timeout_s) {
      for (size_t k = 0; k < pids.size(); ++k)
        if (status[k] == -1) ::kill(pids[k], SIGKILL), ::waitpid(pids[k], nullptr, 0);
      REQUIRE_MSG(false, "workers did not finish within " << timeout_s << " s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (size_t k = 0; k < pids.size(); ++k)
    REQUIRE_MSG(WIFEXITED(status[k]) && WEXITSTATUS(status[k]) == 0, "rank " << k << " failed (status " << status[k] << ")");
}

at::Tensor seeded(int64_t seed, at::IntArrayRef shape, at::ScalarType dt) {
  auto g = at::detail::createCPUGenerator(static_cast<uint64_t>(seed));
  if (at::isFloatingType(dt)) return at::randn(shape, g, at::TensorOptions().dtype(at::kDouble)).to(dt);
  return at::randint(-1000, 1000, shape, g, at::TensorOptions().dtype(at::kLong)).to(dt);
}

bool same(const at::Tensor& a, const at::Tensor& b) { return a.sizes() == b.sizes() && a.equal(b); }

}  // namespace

TEST(config_from_env_reads_torchrun_variables) {
  ::setenv("MASTER_ADDR", "10.1.2.3", 1);
  ::setenv("MASTER_PORT", "29511", 1);
  ::setenv("WORLD_SIZE", "4", 1);
  ::setenv("RANK", "3", 1);
  ::setenv("LOCAL_RANK", "1", 1);
  auto c = instill::dist::config_from_env();
  REQUIRE(c.master_addr == "10.1.2.3" && c.master_port == 29511 && c.world_size == 4 && c.rank == 3 && c.local_rank == 1);
  ::setenv("RANK", "4", 1);
  REQUIRE_THROWS(instill::dist::config_from_env());  // rank >= world size
  ::setenv("RANK", "x", 1);
  bool named = false;
  try {
    instill::dist::config_from_env();
  } catch (const std::exception& e) {
    named = std::string(e.what()).find("RANK") != std::string::npos;
  }
  REQUIRE(named);
  for (const char* v : {"MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK"}) ::unsetenv(v);
  c = instill::dist::config_from_env();
  REQUIRE(c.world_size == 1 && c.rank == 0 && c.local_rank == 0 && c.master_addr == "127.0.0.1");
}

TEST(allreduce_mean_bucketed_is_exact) {
  run_workers(2, [](int rank, int port) {
    ProcessGroup pg(loopback(2, rank, port));
    REQUIRE(pg.rank() == rank && pg.world_size() == 2 && pg.backend() == "gloo");
    // Mixed dtypes and sizes; bucket_bytes = 256 forces several buckets, a tensor larger than one bucket, a
    // non-contiguous tensor and a dtype change in the middle.
    const std::vector<std::pair<std::vector<int64_t>, at::ScalarType>> specs = {
        {{5}, at::kDouble}, {{3, 4}, at::kDouble}, {{100}, at::kDouble}, {{7}, at::kFloat},
        {{2, 3}, at::kFloat}, {{9}, at::kLong},    {{4, 6}, at::kDouble}};
    for (int64_t bucket : {int64_t{256}, ProcessGroup::kDefaultBucketBytes}) {
      std::vector<at::Tensor> mine, expect;
      for (size_t i = 0; i < specs.size(); ++i) {
        at::Tensor a = seeded(1000 + 10 * static_cast<int64_t>(i), specs[i].first, specs[i].second);
        at::Tensor b = seeded(2000 + 10 * static_cast<int64_t>(i), specs[i].first, specs[i].second);
        at::Tensor own = (rank == 0 ? a : b).clone();
        if (i == 4) own = own.t().contiguous().t();  // non-contiguous view of the same values
        mine.push_back(own);
        at::Tensor sum = a + b;
        expect.push_back(at::isFloatingType(specs[i].second) ? sum * 0.5 : sum.div(2, "floor"));
      }
      pg.allreduce_mean_(mine, bucket);
      for (size_t i = 0; i < specs.size(); ++i)
        REQUIRE_MSG(same(mine[i], expect[i]), "tensor " << i << " differs (bucket " << bucket << ")");
      // sum variant on float64
      at::Tensor s = at::full({3}, static_cast<double>(rank + 1), at::kDouble);
      pg.allreduce_sum_({s});
      REQUIRE(same(s, at::full({3}, 3.0, at::kDouble)));
    }
    REQUIRE(pg.stats().buckets > 2 && pg.stats().bytes > 0 && pg.stats().seconds > 0);
  });
}

TEST(broadcast_allgather_barrier) {
  run_workers(2, [](int rank, int port) {
    ProcessGroup pg(loopback(2, rank, port));
    at::Tensor w = at::full({2, 3}, rank == 0 ? 7.25 : -1.0, at::kDouble);
    at::Tensor b = at::arange(4, at::kFloat) * static_cast<float>(rank + 1);
    pg.broadcast_({w, b}, 0);
    REQUIRE(same(w, at::full({2, 3}, 7.25, at::kDouble)));
    REQUIRE(same(b, at::arange(4, at::kFloat)));
    auto g = pg.allgather_scalars({static_cast<double>(rank), 10.5 + rank});
    REQUIRE(g.size() == 4 && g[0] == 0 && g[1] == 10.5 && g[2] == 1 && g[3] == 11.5);
    auto m = pg.allreduce_mean_scalars({static_cast<double>(rank), 3.0});
    REQUIRE(m.size() == 2 && m[0] == 0.5 && m[1] == 3.0);
    pg.barrier();
  });
}

TEST(sync_gradients_treats_missing_gradients_as_zero) {
  run_workers(2, [](int rank, int port) {
    ProcessGroup pg(loopback(2, rank, port));
    at::Tensor p0 = at::zeros({3}, at::kDouble).requires_grad_(true);
    at::Tensor p1 = at::zeros({2}, at::kDouble).requires_grad_(true);
    at::Tensor p2 = at::zeros({2}, at::kDouble).requires_grad_(true);
    p0.mutable_grad() = at::full({3}, rank == 0 ? 1.0 : 3.0, at::kDouble);
    if (rank == 0) p1.mutable_grad() = at::full({2}, 4.0, at::kDouble);  // rank 1 has none for p1
    // p2 has no gradient anywhere
    pg.sync_gradients({p0, p1, p2});
    REQUIRE(same(p0.grad(), at::full({3}, 2.0, at::kDouble)));
    REQUIRE(p1.grad().defined() && same(p1.grad(), at::full({2}, 2.0, at::kDouble)));
    REQUIRE(!p2.grad().defined());
  });
}

namespace {

struct NetImpl : torch::nn::Module {
  NetImpl() {
    fc1 = register_module("fc1", torch::nn::Linear(4, 8));
    fc2 = register_module("fc2", torch::nn::Linear(8, 3));
  }
  at::Tensor forward(const at::Tensor& x) { return fc2->forward(torch::tanh(fc1->forward(x))); }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Net);

Net make_net() {
  torch::manual_seed(42);
  Net n;
  n->to(at::kDouble);
  return n;
}

// Global batch i: 2b examples (x [2b, 4], y [2b, 3]) from a fixed seed.
std::pair<at::Tensor, at::Tensor> global_batch(int64_t i, int64_t b2) {
  auto g = at::detail::createCPUGenerator(static_cast<uint64_t>(77 + i));
  auto opt = at::TensorOptions().dtype(at::kDouble);
  return {at::randn({b2, 4}, g, opt), at::randn({b2, 3}, g, opt)};
}

void require_params_close(Net& a, Net& b, double tol, int64_t step) {
  auto pa = a->named_parameters();
  auto pb = b->named_parameters();
  for (const auto& kv : pa) {
    double d = (kv.value() - pb[kv.key()]).abs().max().item<double>();
    REQUIRE_MSG(d <= tol, "step " << step << ": parameter " << kv.key() << " differs by " << d);
  }
}

}  // namespace

TEST(two_workers_batch_b_equal_one_worker_batch_2b_sgd) {
  run_workers(2, [](int rank, int port) {
    const int64_t b = 3, steps = 6;
    ProcessGroup pg(loopback(2, rank, port));
    Net ddp = make_net();
    Net ref = make_net();
    // Start from rank 0's weights everywhere (the launcher contract), then check the broadcast worked.
    if (rank == 1)
      for (auto& p : ddp->parameters()) p.data().add_(1.0);
    std::vector<at::Tensor> ps = ddp->parameters();
    pg.broadcast_(ps, 0);
    require_params_close(ddp, ref, 0.0, 0);
    torch::optim::SGD o_ddp(ddp->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
    torch::optim::SGD o_ref(ref->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
    for (int64_t s = 0; s < steps; ++s) {
      auto [x, y] = global_batch(s, 2 * b);
      o_ref.zero_grad();
      torch::mse_loss(ref->forward(x), y).backward();
      o_ref.step();
      o_ddp.zero_grad();
      auto xs = x.narrow(0, rank * b, b), ys = y.narrow(0, rank * b, b);
      torch::mse_loss(ddp->forward(xs), ys).backward();
      pg.sync_gradients(ddp->parameters());
      o_ddp.step();
      require_params_close(ddp, ref, 1e-10, s + 1);
    }
  });
}

TEST(two_workers_batch_b_equal_one_worker_batch_2b_train_steps_adamw) {
  run_workers(2, [](int rank, int port) {
    using namespace instill::train;
    const int64_t b = 2, accum = 2, steps = 4;
    ProcessGroup pg(loopback(2, rank, port));
    Net ddp = make_net();
    Net ref = make_net();
    auto named = [](Net& n) {
      std::vector<std::pair<std::string, at::Tensor>> v;
      for (auto& kv : n->named_parameters()) v.emplace_back(kv.key(), kv.value());
      return v;
    };
    OptimConfig cfg;
    cfg.name = "adamw";
    cfg.lr = 0.05;
    cfg.weight_decay = 0.01;
    cfg.schedule = "linear";
    cfg.warmup_steps = 1;
    cfg.total_steps = steps;
    cfg.clip_norm = 0.5;  // clipping acts on the averaged gradient: same norm as the full batch
    cfg.grad_accumulation = accum;
    Optimizer o_ddp(named(ddp), cfg), o_ref(named(ref), cfg);
    // Batches: inputs in input_ids, targets in labels (the loss function is ours).
    std::vector<Batch> full, shard;
    for (int64_t i = 0; i < steps * accum; ++i) {
      auto [x, y] = global_batch(100 + i, 2 * b);
      full.push_back({x, at::Tensor(), y});
      shard.push_back({x.narrow(0, rank * b, b).clone(), at::Tensor(), y.narrow(0, rank * b, b).clone()});
    }
    auto loss_ref = [&](const Batch& x) { return torch::mse_loss(ref->forward(x.input_ids), x.labels); };
    auto loss_ddp = [&](const Batch& x) { return torch::mse_loss(ddp->forward(x.input_ids), x.labels); };
    GradSync sync = [&](const std::vector<at::Tensor>& params) { pg.sync_gradients(params); };
    for (int64_t s = 0; s < steps; ++s) {
      std::vector<Batch> f(full.begin() + s * accum, full.begin() + (s + 1) * accum);
      std::vector<Batch> h(shard.begin() + s * accum, shard.begin() + (s + 1) * accum);
      auto rr = train_steps(loss_ref, o_ref, f, nullptr, nullptr, false);
      auto rd = train_steps(loss_ddp, o_ddp, h, nullptr, nullptr, false, &sync);
      REQUIRE_CLOSE(rd.grad_norms[0], rr.grad_norms[0], 1e-10);
      // The mean over ranks of the shard losses is the full-batch loss.
      auto mean_loss = pg.allreduce_mean_scalars(rd.losses);
      REQUIRE_CLOSE(mean_loss[0], rr.losses[0], 1e-12);
      require_params_close(ddp, ref, 1e-10, s + 1);
    }
    REQUIRE(o_ddp.step() == steps);
  });
}

TEST(rendezvous_times_out_with_a_clear_message) {
  if (!instill::dist::backend_available("gloo")) throw instill_test::Skip{"no Gloo"};
  const int port = free_port();
  std::string msg;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    ProcessGroup pg(loopback(2, 0, port, 1.0));  // rank 1 never comes
  } catch (const std::exception& e) {
    msg = e.what();
  }
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE_MSG(msg.find("rendezvous") != std::string::npos && msg.find(std::to_string(port)) != std::string::npos,
              "message: " << msg);
  REQUIRE_MSG(dt < 10, "took " << dt << " s");
}

TEST(single_process_group_is_a_no_op) {
  if (!instill::dist::backend_available("gloo")) throw instill_test::Skip{"no Gloo"};
  ProcessGroup pg(loopback(1, 0, free_port()));
  at::Tensor t = at::full({4}, 3.0, at::kDouble);
  pg.allreduce_mean_({t});
  pg.broadcast_({t});
  pg.barrier();
  REQUIRE(same(t, at::full({4}, 3.0, at::kDouble)));
  REQUIRE(pg.allgather_scalars({1.5}) == std::vector<double>{1.5});
}

int main() { return instill_test::run_all(); }
