// A tiny T5 overfits a handful of examples (plain torch::optim::Adam), with and without dropout at train time.
#include <torch/torch.h>

#include <cstdio>

#include "t5/config.h"
#include "t5/generate.h"
#include "t5/model.h"
#include "tests/check.h"

using namespace instill;

TEST(tiny_model_overfits_a_few_examples) {
  torch::manual_seed(0);
  auto cfg = t5::preset("tiny", 40);
  cfg.dropout_rate = 0.0;
  t5::T5ForConditionalGeneration m(cfg);
  m->init_weights(1);
  m->train();
  auto gen = at::detail::createCPUGenerator(2);
  const int64_t B = 4, S = 10, T = 6;
  at::Tensor ids = at::randint(2, 40, {B, S}, gen, at::kLong);
  at::Tensor mask = at::ones({B, S}, at::kLong);
  mask[3].narrow(0, 7, 3).zero_();
  ids[3].narrow(0, 7, 3).zero_();
  at::Tensor labels = at::randint(2, 40, {B, T}, gen, at::kLong);
  labels.select(1, T - 1).fill_(cfg.eos_token_id);
  labels[2][T - 1] = -100;
  t5::T5Inputs in;
  in.input_ids = ids;
  in.attention_mask = mask;
  in.labels = labels;
  torch::optim::Adam opt(m->parameters(), torch::optim::AdamOptions(3e-3));
  double first = 0, last = 0;
  for (int step = 0; step < 200; ++step) {
    opt.zero_grad();
    at::Tensor loss = m->forward(in).loss;
    loss.backward();
    opt.step();
    if (step == 0) first = loss.item<double>();
    last = loss.item<double>();
    if (last < 1e-3) break;
  }
  std::printf("  loss %.4f -> %.5f\n", first, last);
  REQUIRE(last < 1e-2);
  // Greedy decoding reproduces the memorized targets (up to EOS).
  m->eval();
  t5::T5Inputs g;
  g.input_ids = ids;
  g.attention_mask = mask;
  t5::GenerateOptions go;
  go.max_new_tokens = T;
  at::Tensor out = t5::generate(*m, g, go);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < T - 1; ++j) REQUIRE(out[b][j].item<int64_t>() == labels[b][j].item<int64_t>());
}

int main() { return instill_test::run_all(); }
