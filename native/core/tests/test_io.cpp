// Tests for native/core/io: safetensors reader/writer (fixtures, bitwise round trips, a battery of hostile files,
// mutation fuzzing), checkpoint folders (single, sharded, pickle refusal), atomic writes and PEFT adapters.
#include <torch/torch.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "common/errors.h"
#include "io/checkpoint.h"
#include "io/file_util.h"
#include "io/peft.h"
#include "io/safetensors.h"
#include "io/torch_bin.h"
#include "t5/pretrained.h"
#include "tests/check.h"

namespace fs = std::filesystem;
using instill::FileError;
using namespace instill::io;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "instill-test-io-XXXXXX").string();
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
    path = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

std::string fixture_dir() { return std::string(INSTILL_SHARED_DIR) + "/fixtures/t5-parity"; }

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void spit(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// A file from a header given as text and a data section.
std::string raw_file(const std::string& header, const std::string& data) { return le64(header.size()) + header + data; }

bool same_bytes(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  auto ca = a.contiguous(), cb = b.contiguous();
  // memcmp on an empty tensor's null data pointer is undefined behaviour (UBSan), even with 0 bytes
  return ca.nbytes() == cb.nbytes() && (ca.nbytes() == 0 || std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0);
}

std::map<std::string, at::Tensor> as_map(const NamedTensors& t) {
  std::map<std::string, at::Tensor> m;
  for (const auto& [k, v] : t) m[k] = v;
  return m;
}

// Runs fn, requires a FileError whose message names `path` and contains every one of `needles`.
template <class F>
void expect_file_error(F&& fn, const std::string& path, std::vector<std::string> needles, const char* what) {
  try {
    fn();
  } catch (const FileError& e) {
    std::string msg = e.what();
    REQUIRE_MSG(msg.find(path) != std::string::npos, what << ": message does not name the file: " << msg);
    for (const auto& n : needles)
      REQUIRE_MSG(msg.find(n) != std::string::npos, what << ": message lacks '" << n << "': " << msg);
    return;
  } catch (const std::exception& e) {
    REQUIRE_MSG(false, what << ": expected FileError, got other exception: " << e.what());
  }
  REQUIRE_MSG(false, what << ": expected FileError, nothing thrown");
}

// The HF T5 parameter names and shapes a config.json implies (save_pretrained form: no embed_tokens copies).
std::map<std::string, std::vector<int64_t>> expected_t5_params(const nlohmann::json& c) {
  std::map<std::string, std::vector<int64_t>> m;
  int64_t d = c["d_model"], kv = c["d_kv"], ff = c["d_ff"], h = c["num_heads"], V = c["vocab_size"];
  int64_t nb = c["relative_attention_num_buckets"];
  int64_t ne = c["num_layers"], nd = c["num_decoder_layers"];
  bool gated = c["feed_forward_proj"].get<std::string>().rfind("gated-", 0) == 0;
  bool tied = c.value("tie_word_embeddings", true);
  m["shared.weight"] = {V, d};
  auto attn = [&](const std::string& p, bool rel) {
    for (const char* x : {"q", "k", "v"}) m[p + "." + x + ".weight"] = {h * kv, d};
    m[p + ".o.weight"] = {d, h * kv};
    if (rel) m[p + ".relative_attention_bias.weight"] = {nb, h};
  };
  auto ffn = [&](const std::string& p) {
    if (gated) {
      m[p + ".DenseReluDense.wi_0.weight"] = {ff, d};
      m[p + ".DenseReluDense.wi_1.weight"] = {ff, d};
    } else {
      m[p + ".DenseReluDense.wi.weight"] = {ff, d};
    }
    m[p + ".DenseReluDense.wo.weight"] = {d, ff};
    m[p + ".layer_norm.weight"] = {d};
  };
  for (int64_t i = 0; i < ne; ++i) {
    std::string b = "encoder.block." + std::to_string(i);
    attn(b + ".layer.0.SelfAttention", i == 0);
    m[b + ".layer.0.layer_norm.weight"] = {d};
    ffn(b + ".layer.1");
  }
  m["encoder.final_layer_norm.weight"] = {d};
  for (int64_t i = 0; i < nd; ++i) {
    std::string b = "decoder.block." + std::to_string(i);
    attn(b + ".layer.0.SelfAttention", i == 0);
    m[b + ".layer.0.layer_norm.weight"] = {d};
    attn(b + ".layer.1.EncDecAttention", false);
    m[b + ".layer.1.layer_norm.weight"] = {d};
    ffn(b + ".layer.2");
  }
  m["decoder.final_layer_norm.weight"] = {d};
  if (!tied) m["lm_head.weight"] = {V, d};
  return m;
}

// An independent look at a file: plain nlohmann parse of the header, then compare every tensor's bytes to the
// raw bytes at 8 + N + begin.
void cross_check_raw(const std::string& path, const SafetensorsFile& f) {
  std::string bytes = slurp(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  auto h = nlohmann::json::parse(bytes.substr(8, n));
  size_t count = 0;
  for (auto it = h.begin(); it != h.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    ++count;
    uint64_t b = it.value()["data_offsets"][0], e = it.value()["data_offsets"][1];
    auto m = as_map(f.tensors);
    REQUIRE_MSG(m.count(it.key()), "reader lost " << it.key());
    const at::Tensor& t = m[it.key()];
    REQUIRE_MSG(static_cast<uint64_t>(t.nbytes()) == e - b, it.key() << " size");
    REQUIRE_MSG(e == b || std::memcmp(t.contiguous().data_ptr(), bytes.data() + 8 + n + b, e - b) == 0, it.key() << " bytes");
  }
  REQUIRE(count == f.tensors.size());
}

}  // namespace

TEST(fixture_models_match_config) {
  if (!fs::exists(fixture_dir())) SKIP("no fixtures at " + fixture_dir() + " (INSTILL_SHARED_DIR)");
  for (const char* name : {"relu-tied", "gated-gelu-untied"}) {
    std::string dir = fixture_dir() + "/" + name;
    auto cfg = nlohmann::json::parse(read_text_file(dir + "/config.json"));
    auto expected = expected_t5_params(cfg);
    SafetensorsFile f = read_safetensors(dir + "/model.safetensors");
    REQUIRE(f.metadata.count("format") && f.metadata["format"] == "pt");
    REQUIRE_MSG(f.tensors.size() == expected.size(), name << ": " << f.tensors.size() << " tensors, expected " << expected.size());
    for (const auto& [k, t] : f.tensors) {
      REQUIRE_MSG(expected.count(k), name << ": unexpected tensor " << k);
      REQUIRE_MSG(t.sizes().vec() == expected[k], name << ": shape of " << k);
      REQUIRE(t.scalar_type() == at::kFloat && t.device().is_cpu());
      REQUIRE(t.isfinite().all().item<bool>());
    }
    // Header order is preserved (these files list tensors alphabetically).
    for (size_t i = 1; i < f.tensors.size(); ++i) REQUIRE(f.tensors[i - 1].first < f.tensors[i].first);
    // Layer norms are perturbed away from 1 (README): a reader that zero-filled or mis-offset would not show this.
    auto m = as_map(f.tensors);
    REQUIRE((m["encoder.final_layer_norm.weight"] - 1).abs().max().item<float>() > 1e-3);
    // The checkpoint-folder entry point reads the same thing.
    NamedTensors w = read_checkpoint_weights(dir);
    REQUIRE(w.size() == f.tensors.size());
    for (size_t i = 0; i < w.size(); ++i) REQUIRE(w[i].first == f.tensors[i].first && same_bytes(w[i].second, f.tensors[i].second));
    cross_check_raw(dir + "/model.safetensors", f);
  }
  // Values computed independently with numpy.frombuffer over the raw file (float64 sum of shared.weight).
  auto r = as_map(read_safetensors(fixture_dir() + "/relu-tied/model.safetensors").tensors)["shared.weight"];
  REQUIRE_CLOSE(r[0][0].item<float>(), 2.447293758392334, 1e-7);
  REQUIRE_CLOSE(r[0][2].item<float>(), -1.4117907285690308, 1e-7);
  REQUIRE_CLOSE(r.to(at::kDouble).sum().item<double>(), 44.43075261461854, 1e-9);
  auto g = as_map(read_safetensors(fixture_dir() + "/gated-gelu-untied/model.safetensors").tensors)["shared.weight"];
  REQUIRE_CLOSE(g.to(at::kDouble).sum().item<double>(), 4.294484754107543, 1e-9);
}

TEST(fixture_cases_are_consistent) {
  if (!fs::exists(fixture_dir())) SKIP("no fixtures at " + fixture_dir() + " (INSTILL_SHARED_DIR)");
  for (const char* name : {"relu-tied", "gated-gelu-untied"}) {
    std::string path = fixture_dir() + "/" + name + "/cases.safetensors";
    auto cfg = nlohmann::json::parse(read_text_file(fixture_dir() + "/" + name + "/config.json"));
    SafetensorsFile f = read_safetensors(path);
    REQUIRE(f.metadata.count("note"));
    auto m = as_map(f.tensors);
    REQUIRE(m.size() == 16);
    int64_t V = cfg["vocab_size"], d = cfg["d_model"];
    for (const char* c : {"short", "long"}) {
      std::string p = c;
      auto ids = m[p + ".input_ids"], mask = m[p + ".attention_mask"], dec = m[p + ".decoder_input_ids"];
      auto logits = m[p + ".logits"], hid = m[p + ".encoder_last_hidden_state"], labels = m[p + ".labels"];
      REQUIRE(ids.scalar_type() == at::kLong && logits.scalar_type() == at::kFloat);
      int64_t B = ids.size(0), S = ids.size(1), T = dec.size(1);
      REQUIRE(mask.sizes() == ids.sizes());
      REQUIRE(logits.sizes().vec() == (std::vector<int64_t>{B, T, V}));
      REQUIRE(hid.sizes().vec() == (std::vector<int64_t>{B, S, d}));
      REQUIRE(labels.sizes().vec() == (std::vector<int64_t>{B, T - 1}));
      REQUIRE(((mask == 0) | (mask == 1)).all().item<bool>());
      REQUIRE((dec.select(1, 0) == 0).all().item<bool>());  // decoder start id
      REQUIRE((ids >= 0).all().item<bool>() && (ids < V).all().item<bool>());
      REQUIRE((labels == -100).any().item<bool>());
      REQUIRE(m[p + ".loss"].numel() == 1);
    }
    REQUIRE(m["short.input_ids"].size(0) == 3 && m["short.input_ids"].size(1) == 12);
    REQUIRE(m["long.input_ids"].size(0) == 2 && m["long.input_ids"].size(1) == 150);
    cross_check_raw(path, f);
  }
  // numpy: short.loss of relu-tied is 5.71362 (float32).
  auto m = as_map(read_safetensors(fixture_dir() + "/relu-tied/cases.safetensors").tensors);
  REQUIRE_CLOSE(m["short.loss"].item<float>(), 5.71362, 1e-5);
}

TEST(round_trip_is_bitwise_for_every_dtype) {
  TempDir tmp;
  torch::manual_seed(7);
  NamedTensors in;
  auto special = torch::tensor({0.0, -0.0, std::numeric_limits<double>::infinity(),
                                -std::numeric_limits<double>::infinity(), std::nan(""), 1e-310, 65504.0, 1e38},
                               torch::kDouble);
  for (auto dt : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16}) {
    std::string n = std::string("float.") + c10::toString(dt);
    in.emplace_back(n, torch::randn({3, 5}, torch::kDouble).to(dt));
    in.emplace_back(n + ".special", special.to(dt));
  }
  in.emplace_back("i64", torch::tensor({std::numeric_limits<int64_t>::min(), int64_t(-1), int64_t(0),
                                        std::numeric_limits<int64_t>::max()}));
  in.emplace_back("i32", torch::randint(-2000000000, 2000000000, {4, 2}, torch::kInt));
  in.emplace_back("i16", torch::randint(-32768, 32767, {7}, torch::kShort));
  in.emplace_back("i8", torch::randint(-128, 127, {3, 3}, torch::kChar));
  in.emplace_back("u8", torch::randint(0, 255, {9}, torch::kByte));
  in.emplace_back("bool", torch::rand({2, 3}) > 0.5);
  in.emplace_back("scalar", torch::tensor(3.5f).reshape({}));
  in.emplace_back("empty", torch::zeros({0, 4}));
  in.emplace_back("noncontiguous", torch::randn({4, 6}).t());
  in.emplace_back("unicode.名前", torch::ones({1}, torch::kHalf));
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "quote \" and newline \n"}};
  std::string path = tmp / "all.safetensors";
  write_safetensors(path, in, meta);

  SafetensorsFile out = read_safetensors(path);
  REQUIRE(out.metadata == meta);
  REQUIRE(out.tensors.size() == in.size());
  auto m = as_map(out.tensors);
  for (const auto& [k, t] : in) {
    REQUIRE_MSG(m.count(k), "missing " << k);
    REQUIRE_MSG(same_bytes(m[k], t), "not bitwise equal: " << k);
    REQUIRE(m[k].scalar_type() == t.scalar_type());
  }
  cross_check_raw(path, out);

  // Layout: header padded with spaces to a multiple of 8, tensors aligned to their element size, deterministic
  // (independent of the caller's order), and the file equals serialize_safetensors.
  SafetensorsHeader h = read_safetensors_header(path);
  REQUIRE(h.header_bytes % 8 == 0);
  for (const auto& e : h.entries) REQUIRE_MSG(e.begin % c10::elementSize(e.dtype) == 0, "misaligned " << e.name);
  std::string bytes = slurp(path);
  REQUIRE(bytes == serialize_safetensors(in, meta));
  NamedTensors reversed(in.rbegin(), in.rend());
  REQUIRE(bytes == serialize_safetensors(reversed, meta));
  REQUIRE(bytes.substr(8, 16) == "{\"__metadata__\":");

  // Writing a read tensor again gives the same file (a fixed point).
  write_safetensors(tmp / "again.safetensors", out.tensors, out.metadata);
  REQUIRE(slurp(tmp / "again.safetensors") == bytes);

  // Invalid inputs to the writer.
  REQUIRE_THROWS(write_safetensors(tmp / "x.safetensors", {{"a", torch::ones({1})}, {"a", torch::ones({1})}}));
  REQUIRE_THROWS(write_safetensors(tmp / "x.safetensors", {{"__metadata__", torch::ones({1})}}));
  REQUIRE_THROWS(write_safetensors(tmp / "x.safetensors", {{"", torch::ones({1})}}));
  REQUIRE_THROWS(write_safetensors(tmp / "x.safetensors", {{"c", torch::ones({1}, torch::kComplexFloat)}}));
  REQUIRE_THROWS(write_safetensors(tmp / "x.safetensors", {{"u", at::Tensor()}}));
  REQUIRE(!fs::exists(tmp / "x.safetensors"));
}

TEST(reference_writer_file_layout_is_read) {
  // A file laid out by hand exactly as the reference (Rust) writer lays it out, metadata first, F64 before F32.
  TempDir tmp;
  double d[2] = {1.5, -2.25};
  float f[3] = {0.5f, 1.0f, -3.0f};
  std::string data(reinterpret_cast<const char*>(d), 16);
  data.append(reinterpret_cast<const char*>(f), 12);
  std::string header =
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"F64","shape":[2],"data_offsets":[0,16]},)"
      R"("a":{"dtype":"F32","shape":[3,1],"data_offsets":[16,28]}})";
  while (header.size() % 8) header += ' ';
  spit(tmp / "ref.safetensors", raw_file(header, data));
  auto f2 = read_safetensors(tmp / "ref.safetensors");
  REQUIRE(f2.tensors.size() == 2 && f2.tensors[0].first == "b" && f2.tensors[1].first == "a");  // header order
  REQUIRE(f2.tensors[0].second.scalar_type() == at::kDouble);
  REQUIRE(f2.tensors[0].second[1].item<double>() == -2.25);
  REQUIRE(f2.tensors[1].second.sizes().vec() == (std::vector<int64_t>{3, 1}));
  REQUIRE(f2.tensors[1].second[2][0].item<float>() == -3.0f);
  // Unaligned data (odd header length, no padding) is still read correctly (copied).
  std::string odd = R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}} )";
  if (odd.size() % 2 == 0) odd += ' ';
  spit(tmp / "odd.safetensors", raw_file(odd, data.substr(16)));
  auto fo = read_safetensors(tmp / "odd.safetensors");
  REQUIRE(fo.tensors[0].second[1].item<float>() == 1.0f);
  // An empty file of tensors.
  spit(tmp / "none.safetensors", raw_file("{}      ", ""));
  REQUIRE(read_safetensors(tmp / "none.safetensors").tensors.empty());
}

TEST(corrupted_files_are_rejected_with_named_errors) {
  TempDir tmp;
  std::string p = tmp / "bad.safetensors";
  auto check = [&](const std::string& bytes, std::vector<std::string> needles, const char* what) {
    spit(p, bytes);
    expect_file_error([&] { read_safetensors(p); }, p, needles, what);
    // The header-only reader rejects the same header problems.
    bool data_only = std::string(what) == "bool byte";
    if (!data_only) expect_file_error([&] { read_safetensors_header(p); }, p, needles, what);
  };
  const std::string eight(8, '\0');
  std::string f16(16, '\0');
  auto entry = [](const std::string& name, const std::string& dtype, const std::string& shape, uint64_t b, uint64_t e) {
    return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
           std::to_string(b) + "," + std::to_string(e) + "]}";
  };
  std::string good = serialize_safetensors({{"w", torch::randn({4, 4})}, {"b", torch::randn({4})}});

  check("", {"too short"}, "empty");
  check("abc", {"too short"}, "3 bytes");
  check(good.substr(0, 20), {"header length", "exceeds the file size"}, "truncated in header");
  check(good.substr(0, good.size() - 4), {"tensor '", "beyond the data section"}, "truncated in data");
  check(le64(uint64_t(1) << 40) + "{}", {"exceeds the limit"}, "header length huge");
  check(le64(uint64_t(-1)) + "{}", {"exceeds the limit"}, "header length 2^64-1");
  check(le64(1000) + "{}", {"exceeds the file size"}, "header length beyond file");
  check(raw_file("{not json}", ""), {"not valid JSON"}, "not JSON");
  check(raw_file("[1,2,3]", ""), {"not a JSON object"}, "array header");
  check(raw_file("\"str\"", ""), {"not a JSON object"}, "string header");
  check(raw_file("{} trailing", ""), {"not valid JSON"}, "trailing garbage");
  check(raw_file("{" + entry("w", "F32", "[2]", 0, 8) + ",\"x\":3}", eight), {"'x'", "not an object"}, "entry not object");
  check(raw_file("{" + entry("w", "F32", "[2]", 0, 800) + "}", eight), {"'w'", "beyond the data section"}, "offsets out of range");
  check(raw_file("{" + entry("w", "F32", "[2]", 8, 0) + "}", eight), {"'w'", "end < begin"}, "reversed offsets");
  check(raw_file("{" + entry("a", "F32", "[4]", 0, 16) + "," + entry("b", "F32", "[2]", 8, 16) + "}", f16),
        {"tensor '", "overlaps"}, "overlapping");
  check(raw_file("{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[2]", 0, 8) + "}", eight),
        {"overlaps"}, "same offsets");
  check(raw_file("{" + entry("a", "F32", "[2]", 8, 16) + "}", f16), {"'a'", "hole"}, "hole");
  check(raw_file("{" + entry("a", "F32", "[2]", 0, 8) + "}", f16), {"trailing bytes"}, "trailing bytes");
  check(raw_file("{" + entry("w", "F32", "[2,2]", 0, 8) + "}", eight), {"'w'", "need 16"}, "wrong byte count");
  check(raw_file("{" + entry("w", "F16", "[2]", 0, 8) + "}", eight), {"'w'", "need 4"}, "wrong byte count f16");
  check(raw_file("{" + entry("w", "F8_E4M3", "[8]", 0, 8) + "}", eight), {"'w'", "unsupported dtype"}, "unknown dtype");
  check(raw_file("{" + entry("w", "float32", "[2]", 0, 8) + "}", eight), {"'w'", "unsupported dtype"}, "torch dtype name");
  check(raw_file("{\"w\":{\"dtype\":7,\"shape\":[2],\"data_offsets\":[0,8]}}", eight), {"'w'", "dtype"}, "dtype not string");
  check(raw_file("{" + entry("w", "F32", "[2]", 0, 8) + "," + entry("w", "F32", "[2]", 0, 8) + "}", eight),
        {"duplicate tensor name 'w'"}, "duplicate key");
  check(raw_file("{\"w\":{\"dtype\":\"F32\",\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}", eight),
        {"duplicate key 'dtype'", "'w'"}, "duplicate field");
  check(raw_file("{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}", ""), {"duplicate key 'a'"}, "duplicate metadata");
  check(raw_file("{" + entry("w", "F32", "[-1,2]", 0, 8) + "}", eight), {"'w'", "negative dimension"}, "negative shape");
  check(raw_file("{" + entry("w", "F32", "[2.0]", 0, 8) + "}", eight), {"'w'", "non-negative integers"}, "float shape");
  check(raw_file("{" + entry("w", "F32", "\"2\"", 0, 8) + "}", eight), {"'w'", "shape"}, "string shape");
  check(raw_file("{" + entry("w", "F32", "[4294967296,4294967296,4294967296]", 0, 8) + "}", eight), {"'w'", "overflow"},
        "numel overflow");
  check(raw_file("{" + entry("w", "F64", "[2305843009213693952]", 0, 8) + "}", eight), {"'w'", "overflow"},
        "byte size overflow");
  check(raw_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}", eight), {"'w'", "data_offsets"},
        "three offsets");
  check(raw_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", eight), {"'w'", "data_offsets"},
        "negative offsets");
  check(raw_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", eight), {"'w'", "data_offsets"}, "missing offsets");
  check(raw_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", eight), {"'w'", "unknown field"},
        "unknown field");
  check(raw_file("{\"__metadata__\":{\"a\":1}}", ""), {"__metadata__", "'a'"}, "metadata not string");
  check(raw_file("{\"__metadata__\":[\"a\"]}", ""), {"__metadata__"}, "metadata not object");
  check(raw_file("{" + entry("", "F32", "[2]", 0, 8) + "}", eight), {"empty tensor name"}, "empty name");
  check(raw_file("{" + std::string(100, '[') + std::string(100, ']') + "}", ""), {}, "deep nesting");
  check(raw_file("{\"a\":" + std::string(5000, '[') + std::string(5000, ']') + "}", ""), {"nested too deeply"}, "deeper");
  check(raw_file("{" + entry("m", "BOOL", "[2]", 0, 2) + "}", std::string("\x01\x02", 2)), {"'m'", "BOOL"}, "bool byte");
  check(raw_file("{\"\xff\xfe\":{}}", ""), {"not valid JSON"}, "invalid UTF-8");

  // Not found / not a regular file.
  expect_file_error([&] { read_safetensors(tmp / "missing.safetensors"); }, tmp / "missing.safetensors", {"not found"}, "missing");
  expect_file_error([&] { read_safetensors(tmp.path.string()); }, tmp.path.string(), {}, "directory");
}

TEST(mutation_fuzz_never_crashes) {
  // Random byte edits of valid files: every outcome is a successful read or a FileError, never anything else.
  TempDir tmp;
  std::mt19937 rng(1234);
  std::string base = serialize_safetensors({{"w", torch::randn({3, 4})},
                                            {"b", torch::randn({4}).to(at::kHalf)},
                                            {"ids", torch::arange(5)},
                                            {"m", torch::ones({3}, torch::kBool)}},
                                           {{"format", "pt"}});
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(base[i]);
  std::string p = tmp / "fuzz.safetensors";
  int ok = 0, rejected = 0;
  const char* alphabet = "{}[],:\"0123456789-.eE aFIUBOL_x";
  for (int it = 0; it < 1500; ++it) {
    std::string s = base;
    int edits = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < edits; ++k) {
      int kind = rng() % 4;
      if (kind == 0) {  // header character replaced by a JSON-ish one
        size_t pos = 8 + rng() % n;
        s[pos] = alphabet[rng() % std::strlen(alphabet)];
      } else if (kind == 1) {  // any byte
        s[rng() % s.size()] = static_cast<char>(rng() & 0xff);
      } else if (kind == 2) {  // truncate or extend
        if (rng() % 2) s.resize(rng() % s.size());
        else s.append(1 + rng() % 9, '\0');
      } else {  // delete a header byte
        size_t pos = 8 + rng() % n;
        if (pos < s.size()) s.erase(pos, 1);
      }
    }
    spit(p, s);
    try {
      auto f = read_safetensors(p);
      for (auto& [k, t] : f.tensors) (void)t.sum();  // touch every byte
      ++ok;
    } catch (const FileError& e) {
      REQUIRE_MSG(std::string(e.what()).find(p) == 0, "message must start with the path: " << e.what());
      ++rejected;
    }
  }
  std::printf("  fuzz: %d read, %d rejected\n", ok, rejected);
  REQUIRE(rejected > 100 && ok > 10);  // both paths exercised
}

TEST(sharded_checkpoint_round_trip) {
  TempDir tmp;
  torch::manual_seed(3);
  NamedTensors w = {{"shared.weight", torch::randn({10, 4})},
                    {"encoder.final_layer_norm.weight", torch::randn({4})},
                    {"decoder.final_layer_norm.weight", torch::randn({4}).to(at::kBFloat16)},
                    {"lm_head.weight", torch::randn({10, 4})}};
  // Hand-made: two shards + index, as transformers writes them.
  std::string dir = tmp / "hand";
  fs::create_directories(dir);
  write_safetensors(dir + "/model-00001-of-00002.safetensors", {w[0], w[1]}, {{"format", "pt"}});
  write_safetensors(dir + "/model-00002-of-00002.safetensors", {w[2], w[3]}, {{"format", "pt"}});
  nlohmann::json idx = {{"metadata", {{"total_size", 200}}},
                        {"weight_map",
                         {{"shared.weight", "model-00001-of-00002.safetensors"},
                          {"encoder.final_layer_norm.weight", "model-00001-of-00002.safetensors"},
                          {"decoder.final_layer_norm.weight", "model-00002-of-00002.safetensors"},
                          {"lm_head.weight", "model-00002-of-00002.safetensors"}}}};
  write_text_file_atomic(dir + "/model.safetensors.index.json", idx.dump(2));
  auto got = as_map(read_checkpoint_weights(dir));
  REQUIRE(got.size() == 4);
  for (const auto& [k, t] : w) REQUIRE_MSG(same_bytes(got[k], t), k);
  REQUIRE(checkpoint_weight_files(dir).size() == 2);

  // Written by write_checkpoint_weights with a small shard limit.
  std::string dir2 = tmp / "auto/nested";
  write_checkpoint_weights(dir2, w, 100);
  REQUIRE(fs::exists(dir2 + "/model.safetensors.index.json") && !fs::exists(dir2 + "/model.safetensors"));
  auto files = checkpoint_weight_files(dir2);
  REQUIRE(files.size() >= 2);
  REQUIRE(files[0].find("model-00001-of-0000") != std::string::npos);
  auto got2 = as_map(read_checkpoint_weights(dir2));
  REQUIRE(got2.size() == 4);
  for (const auto& [k, t] : w) REQUIRE(same_bytes(got2[k], t));
  auto idx2 = nlohmann::json::parse(read_text_file(dir2 + "/model.safetensors.index.json"));
  REQUIRE(idx2["metadata"]["total_size"].get<uint64_t>() == 10 * 4 * 4 * 2 + 4 * 4 + 4 * 2);
  // Rewriting unsharded replaces the index.
  write_checkpoint_weights(dir2, w);
  REQUIRE(fs::exists(dir2 + "/model.safetensors") && !fs::exists(dir2 + "/model.safetensors.index.json"));
  REQUIRE(as_map(read_checkpoint_weights(dir2)).size() == 4);
  // A .safetensors path works directly.
  REQUIRE(read_checkpoint_weights(dir2 + "/model.safetensors").size() == 4);

  // Inconsistent indexes.
  auto bad_index = [&](nlohmann::json j, std::vector<std::string> needles, const char* what) {
    write_text_file_atomic(dir + "/model.safetensors.index.json", j.dump());
    try {
      read_checkpoint_weights(dir);
    } catch (const FileError& e) {
      std::string msg = e.what();
      REQUIRE_MSG(msg.find(dir) != std::string::npos, what << ": " << msg);
      for (const auto& n : needles) REQUIRE_MSG(msg.find(n) != std::string::npos, what << ": lacks " << n << ": " << msg);
      return;
    }
    REQUIRE_MSG(false, what << ": not rejected");
  };
  auto j = idx;
  j["weight_map"]["lm_head.weight"] = "../../etc/passwd";
  bad_index(j, {"not a plain file name"}, "path traversal");
  j = idx;
  j["weight_map"]["extra.weight"] = "model-00002-of-00002.safetensors";
  bad_index(j, {"'extra.weight'", "missing from the shard"}, "missing tensor");
  j = idx;
  j["weight_map"].erase("lm_head.weight");
  bad_index(j, {"'lm_head.weight'", "not in the index"}, "unlisted tensor");
  j = idx;
  j["weight_map"]["lm_head.weight"] = "model-00003-of-00002.safetensors";
  bad_index(j, {"model-00003-of-00002.safetensors", "missing"}, "missing shard");
  bad_index(nlohmann::json::array(), {"not a JSON object"}, "array index");
  bad_index({{"weight_map", {{"a", 1}}}}, {"'a'"}, "non-string shard");
  write_text_file_atomic(dir + "/model.safetensors.index.json", "{oops");
  expect_file_error([&] { read_checkpoint_weights(dir); }, dir + "/model.safetensors.index.json", {"not valid JSON"}, "bad json");
}

TEST(pickle_and_missing_checkpoints_are_refused) {
  TempDir tmp;
  std::string dir = tmp / "pickle";
  fs::create_directories(dir);
  spit(dir + "/config.json", "{}");
  spit(dir + "/pytorch_model.bin", "PK\x03\x04 not really");
  expect_file_error([&] { read_checkpoint_weights(dir); }, dir + "/pytorch_model.bin", {"zip archive"}, "pytorch_model.bin");
  spit(tmp / "weights.pt", "x");
  expect_file_error([&] { read_checkpoint_weights(tmp / "weights.pt"); }, tmp / "weights.pt", {"not a torch.save zip archive"}, ".pt");
  spit(tmp / "weights.pkl", "x");
  expect_file_error([&] { read_checkpoint_weights(tmp / "weights.pkl"); }, tmp / "weights.pkl", {"plain pickle files are not loaded"}, ".pkl");
  std::string empty = tmp / "empty";
  fs::create_directories(empty);
  expect_file_error([&] { read_checkpoint_weights(empty); }, empty, {"no model.safetensors", "pytorch_model.bin"}, "empty dir");
  expect_file_error([&] { read_checkpoint_weights(tmp / "nope"); }, tmp / "nope", {"not found"}, "missing dir");
}

// ---- torch.save (.bin) files: the restricted unpickler ----------------------------------------------------------

std::string bin_fixtures() {
  return (fs::path(__FILE__).parent_path().parent_path().parent_path().parent_path() / "test" / "fixtures" / "torch-bin").string();
}

std::string le16s(uint64_t v) { return std::string{static_cast<char>(v & 0xff), static_cast<char>((v >> 8) & 0xff)}; }
std::string le32s(uint64_t v) { return le16s(v & 0xffff) + le16s(v >> 16); }

// A zip archive of stored entries, as torch.save writes (CRCs left 0: the reader does not need them).
std::string make_zip(const std::vector<std::pair<std::string, std::string>>& entries, uint16_t method = 0) {
  std::string out, cd;
  for (const auto& [name, data] : entries) {
    const uint64_t off = out.size();
    out += le32s(0x04034b50) + le16s(20) + le16s(0) + le16s(method) + le16s(0) + le16s(0) + le32s(0) + le32s(data.size()) +
           le32s(data.size()) + le16s(name.size()) + le16s(0) + name + data;
    cd += le32s(0x02014b50) + le16s(20) + le16s(20) + le16s(0) + le16s(method) + le16s(0) + le16s(0) + le32s(0) +
          le32s(data.size()) + le32s(data.size()) + le16s(name.size()) + le16s(0) + le16s(0) + le16s(0) + le16s(0) + le32s(0) +
          le32s(off) + name;
  }
  const uint64_t cd_off = out.size();
  out += cd + le32s(0x06054b50) + le16s(0) + le16s(0) + le16s(entries.size()) + le16s(entries.size()) + le32s(cd.size()) +
         le32s(cd_off) + le16s(0);
  return out;
}

// Pickle pieces (protocol 2 opcodes).
std::string pu(const std::string& s) { return "X" + le32s(s.size()) + s; }
std::string pglobal(const std::string& m, const std::string& n) { return "c" + m + "\n" + n + "\n"; }
std::string pint(int v) { return "K" + std::string(1, static_cast<char>(v)); }
// {"w": tensor of `numel_claim` floats from storage "0" with size (n,), stride (1,)}
std::string state_pickle(int numel_claim, int n, const std::string& extra_before_stop = "") {
  return std::string("\x80\x02}(") + pu("w") + pglobal("torch._utils", "_rebuild_tensor_v2") + "(" + "(" + pu("storage") +
         pglobal("torch", "FloatStorage") + pu("0") + pu("cpu") + pint(numel_claim) + "tQ" + pint(0) + pint(n) + "\x85" +
         pint(1) + "\x85" + "\x89" + pglobal("collections", "OrderedDict") + ")R" + "tR" + "u" + extra_before_stop + ".";
}
std::string floats(std::vector<float> v) { return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4); }
std::string archive(const std::string& pickle, const std::string& data0 = floats({1.5f, -2.0f})) {
  return make_zip({{"archive/data.pkl", pickle}, {"archive/data/0", data0}, {"archive/version", "3\n"}});
}

TEST(torch_bin_hand_made_archives) {
  // The minimal valid archive.
  auto ok = parse_torch_bin("ok.bin", archive(state_pickle(2, 2)).data(), archive(state_pickle(2, 2)).size());
  REQUIRE(ok.size() == 1 && ok[0].first == "w");
  REQUIRE(ok[0].second.scalar_type() == at::kFloat && ok[0].second.numel() == 2);
  REQUIRE(ok[0].second[0].item<float>() == 1.5f && ok[0].second[1].item<float>() == -2.0f);
  auto hdr = parse_torch_bin_header("ok.bin", archive(state_pickle(2, 2)).data(), archive(state_pickle(2, 2)).size());
  REQUIRE(hdr.size() == 1 && hdr[0].dtype_name == "F32" && hdr[0].shape == std::vector<int64_t>{2});

  auto expect = [](const std::string& bytes, std::vector<std::string> needles, const char* what) {
    expect_file_error([&] { parse_torch_bin("hand.bin", bytes.data(), bytes.size()); }, "hand.bin", needles, what);
  };
  // Globals beyond tensor rebuilding: refused when named, before anything could be called.
  expect(archive("\x80\x02" + pglobal("builtins", "eval") + "(" + pu("1+1") + "tR."), {"builtins.eval", "nothing from the file was executed"}, "eval");
  expect(archive("\x80\x04" + pu("os") + pu("system") + "\x93(" + pu("true") + "tR."), {"os.system"}, "STACK_GLOBAL os.system");
  expect(archive("\x80\x02" + pglobal("torch", "load") + "."), {"torch.load"}, "torch.load");
  // Calls of admitted globals with other arguments, BUILD on other objects, unknown opcodes.
  expect(archive("\x80\x02" + pglobal("collections", "OrderedDict") + "(" + pint(1) + "tR."), {"only admitted without arguments"}, "OrderedDict(1)");
  expect(archive("\x80\x02" + pglobal("torch", "FloatStorage") + ")R."), {"torch.FloatStorage cannot be called"}, "storage call");
  expect(archive("\x80\x02" + pu("x") + "}b."), {"BUILD on a str"}, "BUILD");
  expect(archive("\x80\x02" + std::string("\x81") + "."), {"opcode 0x81"}, "NEWOBJ");
  expect(archive("\x80\x02(I1\n."), {"opcode 0x49"}, "text INT");
  // Bounds: storage smaller than its claim, a tensor reaching past its storage, truncation, nesting, mutation.
  expect(archive(state_pickle(4, 4)), {"claims 4 elements", "8 bytes"}, "storage overrun");
  expect(archive(state_pickle(2, 3)), {"reaches past its storage of 2 elements"}, "extent");
  expect(archive(state_pickle(2, 2).substr(0, 40)), {"truncated"}, "truncated pickle");
  expect(archive(std::string("\x80\x02") + ")" + std::string(200, '\x85') + "."), {"nested deeper than 64"}, "deep nesting");
  // L0 = [] (memo 0), L1 = [] (memo 1), L1.append(L0), then L0.append(1): L0 is inside L1 by then.
  const std::string mutate = std::string("]q") + '\0' + "]q" + '\1' + "h" + '\0' + "a" + "h" + '\0';
  expect(archive(std::string("\x80\x02") + mutate + pint(1) + "a."), {"changed after being put inside"}, "mutation");
  expect(archive(std::string("\x80\x02") + "h\x05."), {"memo index 5 was never stored"}, "memo");
  expect(archive(std::string("\x80\x02") + "0."), {"stack underflow"}, "underflow");
  expect(archive(std::string("\x80\x02") + pu("w") + "."), {"not a state dict"}, "not a dict");
  // Archive-level problems.
  expect(make_zip({{"archive/data.pkl", state_pickle(2, 2)}, {"archive/data/0", floats({1, 2})}}, 8), {"compressed"}, "deflate");
  expect(make_zip({{"archive/other", "x"}}), {"without <name>/data.pkl"}, "no data.pkl");
  expect(make_zip({{"archive/data.pkl", state_pickle(2, 2)}}), {"no data/0 entry"}, "missing storage");
  expect(make_zip({{"archive/data.pkl", state_pickle(2, 2)}, {"archive/data/0", floats({1, 2})}, {"archive/byteorder", "big"}}),
         {"byteorder 'big'"}, "big endian");
  expect(make_zip({{"archive/data.pkl", state_pickle(2, 2)}, {"archive/data/0", floats({1, 2})}, {"archive/constants.pkl", "x"}}),
         {"TorchScript"}, "torchscript");
  std::string z = archive(state_pickle(2, 2));
  expect(z.substr(0, z.size() - 5), {"end-of-central-directory"}, "cut zip");
  expect(std::string("\x80\x02}."), {"legacy torch.save format"}, "legacy bytes");
  expect("hello", {"does not start with 'PK'"}, "not zip");
  // Every prefix of a valid archive is refused with a FileError (never a crash or another exception).
  for (size_t n = 0; n < z.size(); ++n)
    expect_file_error([&] { parse_torch_bin("cut.bin", z.data(), n); }, "cut.bin", {}, "prefix");
}

TEST(torch_bin_fixtures_written_by_torch_save) {
  const std::string d = bin_fixtures();
  if (!fs::exists(d + "/values.json")) throw instill_test::Skip{"test/fixtures/torch-bin is missing"};
  auto values = nlohmann::json::parse(slurp(d + "/values.json"));
  auto w = read_torch_bin(d + "/tiny-t5/pytorch_model.bin");
  auto m = as_map(w);
  size_t checked = 0;
  for (auto it = values.begin(); it != values.end(); ++it) {
    if (it.key() == "views" || it.key() == "adapter") continue;
    REQUIRE_MSG(m.count(it.key()), "missing " << it.key());
    const at::Tensor& t = m[it.key()];
    std::vector<int64_t> shape = it.value()["shape"];
    REQUIRE_MSG(t.sizes().vec() == shape && t.scalar_type() == at::kFloat, it.key() << " shape/dtype");
    std::vector<float> want = it.value()["values"];
    at::Tensor c = t.contiguous();
    REQUIRE_MSG(std::memcmp(c.data_ptr(), want.data(), want.size() * 4) == 0, it.key() << " values");
    ++checked;
  }
  REQUIRE(checked == 29);
  // Tied embeddings share shared.weight's storage, as in the file.
  REQUIRE(m["encoder.embed_tokens.weight"].is_alias_of(m["shared.weight"]));
  REQUIRE(w.size() == 31 && w[0].first == "shared.weight" && w[1].first == "encoder.embed_tokens.weight");
  // bfloat16 and float16 files: stored dtype kept, values = the float32 ones rounded (bitwise).
  for (auto [file, dt] : {std::pair{"tiny-t5-bf16.bin", at::kBFloat16}, std::pair{"tiny-t5-fp16.bin", at::kHalf}}) {
    auto h = as_map(read_torch_bin(d + "/" + file));
    REQUIRE(h.size() == m.size());
    for (auto& [name, t] : h) {
      REQUIRE_MSG(t.scalar_type() == dt, file << " " << name << " dtype");
      REQUIRE_MSG(same_bytes(t, m[name].to(dt)), file << " " << name << " values");
    }
    auto hdr = read_torch_bin_header(d + "/" + file);
    REQUIRE(hdr.size() == 31 && hdr[0].dtype == dt && hdr[0].shape == (std::vector<int64_t>{12, 4}));
  }
  // Strides, offsets and other dtypes.
  auto v = as_map(read_torch_bin(d + "/views.bin"));
  std::vector<float> tr = values["views"]["transposed"], sl = values["views"]["slice"];
  REQUIRE(v["transposed"].sizes().vec() == (std::vector<int64_t>{6, 4}) && !v["transposed"].is_contiguous());
  REQUIRE(std::memcmp(v["transposed"].contiguous().data_ptr(), tr.data(), tr.size() * 4) == 0);
  REQUIRE(std::memcmp(v["slice"].contiguous().data_ptr(), sl.data(), sl.size() * 4) == 0);
  REQUIRE(v["ids"].scalar_type() == at::kLong && v["ids"][0].item<int64_t>() == -(int64_t{1} << 62) && v["ids"][1].item<int64_t>() == 7);
  REQUIRE(v["mask"].scalar_type() == at::kBool && v["mask"][0].item<bool>() && !v["mask"][1].item<bool>());
  REQUIRE(v["param"][1].item<float>() == -1.5f);
  // {"state_dict": {...}, "epoch": 3}
  auto wr = read_torch_bin(d + "/wrapped.bin");
  REQUIRE(wr.size() == 1 && wr[0].first == "w" && wr[0].second[1].item<float>() == 2.0f);
  expect_file_error([&] { read_torch_bin(d + "/legacy.bin"); }, d + "/legacy.bin", {"legacy torch.save format"}, "legacy");
  // A __reduce__ calling os.system: refused, nothing run.
  const char* marker = "/tmp/instill-torch-bin-pwned";
  ::unlink(marker);
  expect_file_error([&] { read_torch_bin(d + "/evil-os-system.bin"); }, d + "/evil-os-system.bin",
                    {"posix.system", "weights-only", "nothing from the file was executed"}, "evil");
  expect_file_error([&] { read_checkpoint_weights(d + "/evil-os-system.bin"); }, d + "/evil-os-system.bin", {"posix.system"}, "evil via checkpoint");
  REQUIRE_MSG(!fs::exists(marker), "the malicious pickle ran");
}

TEST(torch_bin_mutation_fuzz_never_crashes) {
  const std::string d = bin_fixtures();
  if (!fs::exists(d + "/views.bin")) throw instill_test::Skip{"test/fixtures/torch-bin is missing"};
  const std::string base = slurp(d + "/views.bin");
  std::mt19937 rng(99);
  int ok = 0, rejected = 0;
  for (int it = 0; it < 1500; ++it) {
    std::string s = base;
    for (int k = 0, edits = 1 + static_cast<int>(rng() % 3); k < edits; ++k) {
      if (rng() % 5 == 0) s.resize(rng() % s.size());
      else if (!s.empty()) s[rng() % s.size()] = static_cast<char>(rng() & 0xff);
    }
    try {
      for (auto& [k, t] : parse_torch_bin("fuzz.bin", s.data(), s.size())) (void)t.sum();
      ++ok;
    } catch (const FileError& e) {
      REQUIRE_MSG(std::string(e.what()).rfind("fuzz.bin", 0) == 0, "message must start with the path: " << e.what());
      ++rejected;
    }
  }
  std::printf("  torch.bin fuzz: %d read, %d rejected\n", ok, rejected);
  REQUIRE(rejected > 100 && ok > 10);
}

TEST(torch_bin_checkpoint_folders_and_conversion) {
  const std::string d = bin_fixtures();
  if (!fs::exists(d + "/tiny-t5/pytorch_model.bin")) throw instill_test::Skip{"test/fixtures/torch-bin is missing"};
  TempDir tmp;
  auto src = as_map(read_checkpoint_weights(d + "/tiny-t5"));
  REQUIRE(checkpoint_weight_files(d + "/tiny-t5") == std::vector<std::string>{d + "/tiny-t5/pytorch_model.bin"});
  auto r = convert_checkpoint(d + "/tiny-t5", tmp / "st");
  REQUIRE(r.tensors == 29 && r.dropped == (std::vector<std::string>{"encoder.embed_tokens.weight", "decoder.embed_tokens.weight"}));
  auto back = as_map(read_checkpoint_weights(tmp / "st"));
  REQUIRE(back.size() == 29);
  for (auto& [k, t] : back) REQUIRE_MSG(same_bytes(t, src[k]), k);
  auto r16 = convert_checkpoint(d + "/tiny-t5", tmp / "bf16", at::kBFloat16);
  REQUIRE(as_map(read_checkpoint_weights(tmp / "bf16"))["shared.weight"].scalar_type() == at::kBFloat16);
  REQUIRE(r16.bytes * 2 == r.bytes);
  // A sharded .bin index, as transformers writes pytorch_model.bin.index.json.
  std::string sh = tmp / "sharded";
  fs::create_directories(sh);
  fs::copy_file(d + "/tiny-t5/pytorch_model.bin", sh + "/pytorch_model-00001-of-00001.bin");
  nlohmann::json idx = {{"metadata", {{"total_size", 1}}}, {"weight_map", nlohmann::json::object()}};
  for (auto& [k, t] : src) idx["weight_map"][k] = "pytorch_model-00001-of-00001.bin";
  spit(sh + "/pytorch_model.bin.index.json", idx.dump());
  REQUIRE(read_checkpoint_weights(sh).size() == 31);
  idx["weight_map"]["shared.weight"] = "model-00001.safetensors";
  spit(sh + "/pytorch_model.bin.index.json", idx.dump());
  expect_file_error([&] { read_checkpoint_weights(sh); }, sh + "/pytorch_model.bin.index.json", {"not a torch .bin file"}, "mixed index");
}

TEST(config_sizes_are_checked_against_the_weights_before_allocating) {
  const std::string d = bin_fixtures();
  if (!fs::exists(d + "/tiny-t5/pytorch_model.bin")) throw instill_test::Skip{"test/fixtures/torch-bin is missing"};
  TempDir tmp;
  auto cfg = nlohmann::json::parse(slurp(d + "/tiny-t5/config.json"));
  auto model = instill::t5::from_pretrained(d + "/tiny-t5");
  REQUIRE(model->config().vocab_size == 12);
  int64_t numel = 0;
  for (auto& p : model->parameters()) numel += p.numel();
  REQUIRE(model->config().parameter_count() == static_cast<double>(numel));  // 476, as torch counts the fixture
  auto bad = [&](const std::string& key, nlohmann::json value, std::vector<std::string> needles) {
    std::string dir = tmp / ("bad-" + key);
    fs::create_directories(dir);
    fs::copy_file(d + "/tiny-t5/pytorch_model.bin", dir + "/pytorch_model.bin", fs::copy_options::overwrite_existing);
    auto c = cfg;
    c[key] = value;
    spit(dir + "/config.json", c.dump());
    try {
      instill::t5::from_pretrained(dir);
    } catch (const instill::ArgumentError& e) {
      std::string msg = e.what();
      REQUIRE_MSG(msg.find(dir + "/config.json") == 0, key << ": message must start with the config path: " << msg);
      for (const auto& n : needles) REQUIRE_MSG(msg.find(n) != std::string::npos, key << ": message lacks '" << n << "': " << msg);
      return;
    }
    REQUIRE_MSG(false, key << ": expected an ArgumentError");
  };
  bad("vocab_size", 1000000000000LL, {"\"vocab_size\" is 1000000000000", "shared.weight", "pytorch_model.bin", "[12, 4]"});
  bad("num_layers", 1000000000, {"\"num_layers\" is 1000000000", "1 encoder blocks"});
  bad("num_decoder_layers", 3, {"\"num_decoder_layers\" is 3", "1 decoder blocks"});
  bad("d_ff", 4096, {"\"d_ff\"", "wi_0"});
  bad("d_kv", 64, {"num_heads * d_kv"});
  // Without weights (model init): the total is bounded, naming the field.
  instill::t5::T5Config c = instill::t5::preset("tiny");
  c.vocab_size = 1000000000000LL;
  try {
    c.validate("config.json");
    REQUIRE_MSG(false, "expected an ArgumentError");
  } catch (const instill::ArgumentError& e) {
    std::string msg = e.what();
    REQUIRE_MSG(msg.find("config.json: field \"vocab_size\"") == 0 && msg.find("parameters") != std::string::npos, msg);
  }
  c = instill::t5::preset("tiny");
  c.num_layers = 1000000000;
  try {
    c.validate("config.json");
    REQUIRE_MSG(false, "expected an ArgumentError");
  } catch (const instill::ArgumentError& e) {
    REQUIRE_MSG(std::string(e.what()).find("config.json: field \"num_layers\"") == 0, e.what());
  }
  instill::t5::preset("base").validate("ok");  // real sizes pass
}

TEST(atomic_writes_leave_no_temp_files) {
  TempDir tmp;
  std::string p = tmp / "w.safetensors";
  write_safetensors(p, {{"a", torch::ones({2})}});
  write_safetensors(p, {{"a", torch::zeros({3})}});  // overwrite
  REQUIRE(as_map(read_safetensors(p).tensors)["a"].size(0) == 3);
  write_text_file_atomic(tmp / "t.json", "{\"x\": 1}\n");
  REQUIRE(read_text_file(tmp / "t.json") == "{\"x\": 1}\n");
  write_text_file_atomic(tmp / "t.json", "");
  REQUIRE(read_text_file(tmp / "t.json").empty());
  // A failing writer leaves the previous file intact and removes its temporary file.
  bool threw = false;
  try {
    write_file_atomic(p, [&](int fd) {
      write_all(fd, "partial", 7, p);
      throw std::runtime_error("simulated failure");
    });
  } catch (const std::runtime_error&) {
    threw = true;
  }
  REQUIRE(threw);
  REQUIRE(as_map(read_safetensors(p).tensors)["a"].size(0) == 3);
  // Writing into a folder that does not exist fails with a FileError naming the path.
  expect_file_error([&] { write_safetensors(tmp / "no/such/dir/x.safetensors", {{"a", torch::ones({1})}}); },
                    tmp / "no/such/dir/x.safetensors", {}, "missing folder");
  expect_file_error([&] { read_text_file(tmp / "absent.txt"); }, tmp / "absent.txt", {"not found"}, "missing text");
  for (const auto& e : fs::directory_iterator(tmp.path))
    REQUIRE_MSG(e.path().filename().string().find(".tmp-") == std::string::npos, "temp file left: " << e.path());
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(tmp.path)) names.insert(e.path().filename().string());
  REQUIRE(names == (std::set<std::string>{"w.safetensors", "t.json"}));
}

TEST(peft_adapter_round_trip) {
  TempDir tmp;
  torch::manual_seed(5);
  const int64_t r = 4, d = 32;
  NamedTensors lw = {
      {"encoder.block.0.layer.0.SelfAttention.q.lora_A.weight", torch::randn({r, d})},
      {"encoder.block.0.layer.0.SelfAttention.q.lora_B.weight", torch::randn({d, r})},
      {"base_model.model.decoder.block.1.layer.1.EncDecAttention.v.lora_A.weight", torch::randn({r, d})},
      {"base_model.model.decoder.block.1.layer.1.EncDecAttention.v.lora_B.weight", torch::randn({d, r})},
  };
  std::string dir = tmp / "adapter";
  write_peft_adapter(dir, lw, {{"r", r}, {"lora_alpha", 16}, {"base_model_name_or_path", "google/flan-t5-small"}});

  // The file holds exactly PEFT's keys.
  auto raw = read_safetensors(dir + "/adapter_model.safetensors");
  std::set<std::string> keys;
  for (const auto& [k, t] : raw.tensors) keys.insert(k);
  REQUIRE(keys == (std::set<std::string>{
                      "base_model.model.decoder.block.1.layer.1.EncDecAttention.v.lora_A.weight",
                      "base_model.model.decoder.block.1.layer.1.EncDecAttention.v.lora_B.weight",
                      "base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight",
                      "base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_B.weight"}));
  auto cfg = nlohmann::json::parse(read_text_file(dir + "/adapter_config.json"));
  REQUIRE(cfg["peft_type"] == "LORA" && cfg["task_type"] == "SEQ_2_SEQ_LM" && cfg["r"] == r && cfg["lora_alpha"] == 16);
  REQUIRE(cfg["bias"] == "none" && cfg["fan_in_fan_out"] == false && cfg["inference_mode"] == true);
  REQUIRE(cfg["target_modules"] == nlohmann::json({"q", "v"}));
  REQUIRE(cfg["base_model_name_or_path"] == "google/flan-t5-small");
  REQUIRE(cfg["lora_dropout"] == 0.0);

  PeftAdapter a = read_peft_adapter(dir);
  REQUIRE(a.r == r && a.alpha == 16 && a.scaling == 4.0);
  REQUIRE(a.modules.size() == 2);
  REQUIRE(a.modules[0].module == "decoder.block.1.layer.1.EncDecAttention.v");
  REQUIRE(a.modules[1].module == "encoder.block.0.layer.0.SelfAttention.q");
  REQUIRE(same_bytes(a.modules[1].A, lw[0].second) && same_bytes(a.modules[1].B, lw[1].second));
  REQUIRE(same_bytes(a.modules[0].A, lw[2].second) && same_bytes(a.modules[0].B, lw[3].second));
  REQUIRE(a.base_model_name_or_path == "google/flan-t5-small");
  REQUIRE(a.target_modules == (std::vector<std::string>{"q", "v"}));

  // rsLoRA scaling; a file saved with an adapter name in the key is accepted.
  cfg["use_rslora"] = true;
  write_text_file_atomic(dir + "/adapter_config.json", cfg.dump());
  REQUIRE_CLOSE(read_peft_adapter(dir).scaling, 16.0 / 2.0, 1e-12);
  std::string dir2 = tmp / "named";
  fs::create_directories(dir2);
  write_text_file_atomic(dir2 + "/adapter_config.json", make_peft_lora_config(r, 8, {"q"}).dump());
  write_safetensors(dir2 + "/adapter_model.safetensors",
                    {{"base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.default.weight", lw[0].second},
                     {"base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_B.default.weight", lw[1].second}});
  auto a2 = read_peft_adapter(dir2);
  REQUIRE(a2.modules.size() == 1 && a2.scaling == 2.0 && a2.modules[0].module == "encoder.block.0.layer.0.SelfAttention.q");

  // Writer rejects inconsistent input.
  REQUIRE_THROWS(write_peft_adapter(tmp / "x", NamedTensors{lw[0]}, {{"r", r}, {"lora_alpha", 8}}));  // A without B
  REQUIRE_THROWS(write_peft_adapter(tmp / "x", lw, {{"r", r + 1}, {"lora_alpha", 8}}));               // wrong r
  REQUIRE_THROWS(write_peft_adapter(tmp / "x", lw, {{"lora_alpha", 8}}));                             // no r
  REQUIRE_THROWS(write_peft_adapter(tmp / "x", NamedTensors{{"encoder.q.weight", lw[0].second}}, {{"r", r}, {"lora_alpha", 8}}));

  // Reader rejects inconsistent folders.
  std::string bad = tmp / "bad";
  fs::create_directories(bad);
  spit(bad + "/adapter_model.bin", "x");
  write_text_file_atomic(bad + "/adapter_config.json", make_peft_lora_config(r, 8, {"q"}).dump());
  expect_file_error([&] { read_peft_adapter(bad); }, bad + "/adapter_model.bin", {"not a torch.save zip archive"}, "adapter_model.bin");
  // A real adapter_model.bin (torch.save; test/fixtures/torch-bin/adapter) reads through the restricted unpickler.
  if (fs::exists(bin_fixtures() + "/adapter/adapter_model.bin")) {
    auto ab = read_peft_adapter(bin_fixtures() + "/adapter");
    auto vals = nlohmann::json::parse(slurp(bin_fixtures() + "/values.json"))["adapter"];
    REQUIRE(ab.r == 2 && ab.scaling == 2.0 && ab.modules.size() == 1 && ab.modules[0].module == "encoder.block.0.layer.0.SelfAttention.q");
    std::vector<float> wa = vals["base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight"];
    std::vector<float> wb = vals["base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_B.weight"];
    REQUIRE(std::memcmp(ab.modules[0].A.contiguous().data_ptr(), wa.data(), wa.size() * 4) == 0);
    REQUIRE(std::memcmp(ab.modules[0].B.contiguous().data_ptr(), wb.data(), wb.size() * 4) == 0);
  }
  write_safetensors(bad + "/adapter_model.safetensors",
                    {{"base_model.model.encoder.q.lora_A.weight", torch::randn({r, d})}});
  expect_file_error([&] { read_peft_adapter(bad); }, bad + "/adapter_model.safetensors", {"'encoder.q'", "no lora_B"}, "only A");
  write_safetensors(bad + "/adapter_model.safetensors", {{"base_model.model.encoder.q.lora_A.weight", torch::randn({r + 1, d})},
                                                         {"base_model.model.encoder.q.lora_B.weight", torch::randn({d, r + 1})}});
  expect_file_error([&] { read_peft_adapter(bad); }, bad + "/adapter_model.safetensors", {"disagree with r"}, "wrong r");
  write_safetensors(bad + "/adapter_model.safetensors", {{"encoder.q.lora_A.weight", torch::randn({r, d})}});
  expect_file_error([&] { read_peft_adapter(bad); }, bad + "/adapter_model.safetensors", {"base_model.model."}, "no prefix");
  auto c2 = make_peft_lora_config(r, 8, {"q"});
  c2["rank_pattern"] = {{"q", 8}};
  write_text_file_atomic(bad + "/adapter_config.json", c2.dump());
  expect_file_error([&] { read_peft_adapter(bad); }, bad + "/adapter_config.json", {"rank_pattern"}, "rank_pattern");
  c2 = make_peft_lora_config(r, 8, {"q"});
  c2["peft_type"] = "IA3";
  write_text_file_atomic(bad + "/adapter_config.json", c2.dump());
  expect_file_error([&] { read_peft_adapter(bad); }, bad + "/adapter_config.json", {"IA3"}, "IA3");
}

int main() { return instill_test::run_all(); }
