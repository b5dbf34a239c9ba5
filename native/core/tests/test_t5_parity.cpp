// Parity with Hugging Face's T5ForConditionalGeneration on /work/shared/fixtures/t5-parity.
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "io/checkpoint.h"
#include "io/file_util.h"
#include "io/safetensors.h"
#include "t5/generate.h"
#include "t5/model.h"
#include "t5/pretrained.h"
#include "tests/check.h"

using namespace instill;

namespace {

std::string fixture_dir(const std::string& name) {
  return std::string(INSTILL_SHARED_DIR) + "/fixtures/t5-parity/" + name;
}

void require_fixture(const std::string& dir) {
  if (!io::path_is_regular_file(dir + "/model.safetensors") || !io::path_is_regular_file(dir + "/cases.safetensors"))
    SKIP("fixture " + dir + " is absent (needs /work/shared/fixtures/t5-parity)");
}

at::Tensor get(const io::SafetensorsFile& f, const std::string& name) {
  for (const auto& kv : f.tensors)
    if (kv.first == name) return kv.second;
  throw std::runtime_error("cases.safetensors lacks " + name);
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

void check_case(t5::T5ForConditionalGenerationImpl& model, const io::SafetensorsFile& cases, const std::string& c,
                const std::string& tag) {
  torch::NoGradGuard ng;
  model.eval();
  t5::T5Inputs in;
  in.input_ids = get(cases, c + ".input_ids");
  in.attention_mask = get(cases, c + ".attention_mask");
  in.decoder_input_ids = get(cases, c + ".decoder_input_ids");
  auto out = model.forward(in);
  at::Tensor ref_logits = get(cases, c + ".logits");
  at::Tensor ref_hidden = get(cases, c + ".encoder_last_hidden_state");
  REQUIRE(out.logits.sizes().equals(ref_logits.sizes()));
  double tol_l = 1e-4 * std::max(1.0, ref_logits.abs().max().item<double>());
  double tol_h = 1e-4 * std::max(1.0, ref_hidden.abs().max().item<double>());
  double dl = max_abs_diff(out.logits, ref_logits), dh = max_abs_diff(out.encoder_hidden, ref_hidden);
  std::printf("  %s/%s: max |logits - HF| = %.3g (tol %.3g), max |hidden - HF| = %.3g (tol %.3g)\n", tag.c_str(),
              c.c_str(), dl, tol_l, dh, tol_h);
  REQUIRE_MSG(dl <= tol_l, tag << "/" << c << " logits differ by " << dl);
  REQUIRE_MSG(dh <= tol_h, tag << "/" << c << " encoder hidden differs by " << dh);

  // Loss: logits[:, :-1] against labels.
  at::Tensor labels = get(cases, c + ".labels");
  double ref_loss = get(cases, c + ".loss").item<double>();
  const int64_t T = labels.size(1);
  double loss = t5::T5ForConditionalGenerationImpl::loss_from_logits(out.logits.narrow(1, 0, T).contiguous(), labels)
                    .item<double>();
  std::printf("  %s/%s: loss %.8f vs HF %.8f\n", tag.c_str(), c.c_str(), loss, ref_loss);
  REQUIRE_CLOSE(loss, ref_loss, 1e-5 * std::fabs(ref_loss));

  // The same loss through forward(labels): decoder inputs from shift_right(labels) equal the given ones where
  // labels are not -100 (-100 becomes pad in shift_right, as HF): compare with HF's shift on the fixture.
  at::Tensor dec = in.decoder_input_ids.narrow(1, 0, T);
  at::Tensor shifted = t5::shift_right(labels, model.config().decoder_start_token_id, model.config().pad_token_id);
  at::Tensor lab_for_shift = labels.masked_fill(labels.eq(-100), model.config().pad_token_id);
  REQUIRE(at::equal(shifted.narrow(1, 1, T - 1), lab_for_shift.narrow(1, 0, T - 1)));

  // Greedy ids (HF's include the start id in column 0).
  at::Tensor ref_greedy = get(cases, c + ".greedy_ids");
  t5::T5Inputs gi;
  gi.input_ids = in.input_ids;
  gi.attention_mask = in.attention_mask;
  t5::GenerateOptions opt;
  opt.max_new_tokens = 20;
  at::Tensor ids = t5::generate(model, gi, opt);
  at::Tensor ref = ref_greedy.narrow(1, 1, ref_greedy.size(1) - 1);
  REQUIRE_MSG(ids.sizes().equals(ref.sizes()) && at::equal(ids, ref),
              tag << "/" << c << " greedy ids differ: got " << ids << " expected " << ref);
}

void parity(const std::string& name) {
  const std::string dir = fixture_dir(name);
  require_fixture(dir);
  auto model = t5::from_pretrained(dir, at::kFloat);
  auto cases = io::read_safetensors(dir + "/cases.safetensors");
  check_case(*model, cases, "short", name);
  check_case(*model, cases, "long", name);
}

}  // namespace

TEST(parity_relu_tied) { parity("relu-tied"); }
TEST(parity_gated_gelu_untied) { parity("gated-gelu-untied"); }

TEST(loads_checkpoint_with_duplicated_embedding_keys) {
  for (std::string name : {"relu-tied", "gated-gelu-untied"}) {
    const std::string dir = fixture_dir(name);
    require_fixture(dir);
    auto weights = io::read_checkpoint_weights(dir);
    at::Tensor shared;
    for (auto& kv : weights)
      if (kv.first == "shared.weight") shared = kv.second;
    REQUIRE(shared.defined());
    weights.emplace_back("encoder.embed_tokens.weight", shared.clone());
    weights.emplace_back("decoder.embed_tokens.weight", shared.clone());
    bool tied = name == "relu-tied";
    if (tied) weights.emplace_back("lm_head.weight", shared.clone());
    char tmpl[] = "/tmp/instill-t5-dup-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    std::string tmp = tmpl;
    io::write_checkpoint_weights(tmp, weights);
    io::write_text_file_atomic(tmp + "/config.json", io::read_text_file(dir + "/config.json"));
    auto a = t5::from_pretrained(dir);
    auto b = t5::from_pretrained(tmp);
    auto sa = t5::hf_state(*a), sb = t5::hf_state(*b);
    REQUIRE(sa.size() == sb.size());
    for (size_t i = 0; i < sa.size(); ++i) REQUIRE(sa[i].first == sb[i].first && at::equal(sa[i].second, sb[i].second));
    // A duplicate that differs from shared.weight is refused, naming the tensor.
    weights.back().second = weights.back().second + 1;
    bool threw = false;
    try {
      t5::load_hf_weights(*b, weights, "dup");
    } catch (const std::exception& e) {
      threw = std::string(e.what()).find(weights.back().first) != std::string::npos;
    }
    REQUIRE(threw);
    std::remove((tmp + "/model.safetensors").c_str());
    std::remove((tmp + "/config.json").c_str());
    rmdir(tmp.c_str());
  }
}

TEST(parity_in_bfloat16_is_close) {
  // Lower precision path (norms/softmax in float32): a sanity bound, not HF parity.
  const std::string dir = fixture_dir("gated-gelu-untied");
  require_fixture(dir);
  auto m32 = t5::from_pretrained(dir, at::kFloat);
  auto m16 = t5::from_pretrained(dir, at::kBFloat16);
  REQUIRE(m16->dtype() == at::kBFloat16);
  auto cases = io::read_safetensors(dir + "/cases.safetensors");
  torch::NoGradGuard ng;
  m32->eval();
  m16->eval();
  t5::T5Inputs in;
  in.input_ids = get(cases, "short.input_ids");
  in.attention_mask = get(cases, "short.attention_mask");
  in.decoder_input_ids = get(cases, "short.decoder_input_ids");
  auto a = m32->forward(in).logits, b = m16->forward(in).logits.to(at::kFloat);
  double rel = (a - b).abs().max().item<double>() / a.abs().max().item<double>();
  REQUIRE_MSG(rel < 0.1, "bfloat16 logits too far from float32: " << rel);
}

int main() { return instill_test::run_all(); }
