// A seeded mutation driver for instill's fuzz harnesses (used when clang's libFuzzer is not available; with
// INSTILL_LIBFUZZER the harness's LLVMFuzzerTestOneInput is driven by libFuzzer instead and main() is not built).
//
// A harness defines, in namespace instill_fuzz:
//   const char* kName;                                   the harness's name (messages, saved inputs)
//   std::vector<std::string> seeds();                    valid inputs to start from (built in code, no files)
//   std::vector<std::string> dictionary();               tokens worth inserting (JSON keys, dtypes, numbers)
//   void fixup(std::string& input, Rng& rng);            optional repair after mutation (e.g. a length field)
//   Outcome one(const uint8_t* data, size_t size);       runs the code under test on one input
// and then includes this header's INSTILL_FUZZ_MAIN() once.
//
// Contract checked on every input: `one` returns (accepted) or throws a rejection it classifies itself; anything
// else (a crash, a sanitizer report, an exception the harness does not expect, a rejection whose message does not
// name the file, an input running longer than --timeout-ms) stops the run, writes the input to
// <save-dir>/<kind>-<name>-seed<S>-<i>.bin and exits non-zero. The last line printed is one JSON object with the
// figures (inputs, accepted, rejected, crashes, hangs, violations, slowest input, RSS before and after).
//
// Usage: fuzz_<name> [--runs N=100000] [--seed S=1] [--max-len L=65536] [--timeout-ms T=10000] [--save-dir D=.]
//                    [--reproduce FILE...]
#pragma once
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace instill_fuzz {

using Rng = std::mt19937_64;

// What one input did. `rejection` names the kind of error (for the figures), empty when accepted.
struct Outcome {
  bool accepted = true;
  std::string rejection;
};

// Thrown by a harness when an input breaks the contract (wrong error type, a message without the path, a
// round trip that differs...). The driver saves the input and stops.
struct Violation : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline Outcome rejected(const std::string& kind) { return Outcome{false, kind}; }

// The 8-byte little-endian integer at `p`.
inline uint64_t read_le64(const std::string& s, size_t p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(s[p + i]);
  return v;
}
inline void write_le64(std::string& s, size_t p, uint64_t v) {
  for (int i = 0; i < 8; ++i) s[p + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

// Where the JSON object starting at `begin` ends (one past its closing brace), or npos; strings are skipped.
inline size_t json_object_end(const std::string& s, size_t begin) {
  if (begin >= s.size() || s[begin] != '{') return std::string::npos;
  int depth = 0;
  bool in_str = false;
  for (size_t i = begin; i < s.size(); ++i) {
    char c = s[i];
    if (in_str) {
      if (c == '\\') ++i;
      else if (c == '"') in_str = false;
      continue;
    }
    if (c == '"') in_str = true;
    else if (c == '{' || c == '[') ++depth;
    else if (c == '}' || c == ']') {
      if (--depth == 0) return i + 1;
    }
  }
  return std::string::npos;
}

// safetensors-specific repair shared by the harnesses that read safetensors: make the 8-byte header length
// match the JSON object that follows, so mutations inside the header reach the validation of its fields.
inline void fix_safetensors_length(std::string& s) {
  if (s.size() < 9) return;
  size_t end = json_object_end(s, 8);
  if (end != std::string::npos) write_le64(s, 0, end - 8);
}

// ---------------------------------------------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------------------------------------------
inline std::string mutate(const std::string& parent, const std::string& other, const std::vector<std::string>& dict,
                          Rng& rng, size_t max_len) {
  std::string s = parent;
  auto pick = [&](uint64_t n) { return n == 0 ? uint64_t(0) : std::uniform_int_distribution<uint64_t>(0, n - 1)(rng); };
  static const uint64_t kInteresting[] = {0,          1,          2,          7,          8,          0x7f,
                                          0x80,       0xff,       0x100,      0x7fff,     0x8000,     0xffff,
                                          0x7fffffff, 0x80000000, 0xffffffff, 0x100000000ull, 100000000,
                                          100000001,  0x7fffffffffffffffull,  0x8000000000000000ull,
                                          0xffffffffffffffffull,  0xfffffffffffffff8ull};
  static const char* kNumbers[] = {"0",  "-1", "1",  "-0", "2147483647", "2147483648", "4294967296", "9007199254740993",
                                   "18446744073709551615", "18446744073709551616", "1e308", "1e309", "-1e309", "3.5",
                                   "NaN", "1e-400", "99999999999999999999999", "007", "8", "100000001", "-9223372036854775808"};
  const int n_mut = 1 + static_cast<int>(pick(4)) + (pick(4) == 0 ? static_cast<int>(pick(8)) : 0);
  for (int m = 0; m < n_mut; ++m) {
    switch (pick(12)) {
      case 0:  // flip a bit
        if (!s.empty()) s[pick(s.size())] ^= static_cast<char>(1u << pick(8));
        break;
      case 1:  // a random byte
        if (!s.empty()) s[pick(s.size())] = static_cast<char>(pick(256));
        break;
      case 2: {  // an interesting integer, 1/2/4/8 bytes little-endian
        const size_t w = size_t(1) << pick(4);
        if (s.size() >= w) {
          uint64_t v = kInteresting[pick(sizeof(kInteresting) / sizeof(kInteresting[0]))];
          if (pick(2)) v += pick(3) - 1;
          const size_t at = pick(8) == 0 ? 0 : pick(s.size() - w + 1);
          for (size_t i = 0; i < w; ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
        }
        break;
      }
      case 3: {  // delete a range
        if (s.empty()) break;
        const size_t at = pick(s.size());
        s.erase(at, 1 + pick(std::min<size_t>(s.size() - at, pick(2) ? 4 : 64)));
        break;
      }
      case 4: {  // duplicate a range
        if (s.empty()) break;
        const size_t at = pick(s.size());
        const size_t len = 1 + pick(std::min<size_t>(s.size() - at, 64));
        s.insert(pick(s.size() + 1), s.substr(at, len));
        break;
      }
      case 5: {  // insert random bytes
        std::string r(1 + pick(8), '\0');
        for (auto& c : r) c = static_cast<char>(pick(256));
        s.insert(pick(s.size() + 1), r);
        break;
      }
      case 6:
      case 7: {  // a dictionary token, inserted or overwriting
        if (dict.empty()) break;
        const std::string& t = dict[pick(dict.size())];
        const size_t at = pick(s.size() + 1);
        if (pick(2) || at + t.size() > s.size()) s.insert(at, t);
        else s.replace(at, t.size(), t);
        break;
      }
      case 8: {  // splice with another input
        if (other.empty()) break;
        const size_t a = pick(s.size() + 1), b = pick(other.size() + 1);
        s = s.substr(0, a) + other.substr(b);
        break;
      }
      case 9:
      case 10: {  // replace a run of ASCII digits (JSON numbers: shapes, offsets, r, d_model...)
        std::vector<size_t> starts;
        for (size_t i = 0; i < s.size(); ++i)
          if (s[i] >= '0' && s[i] <= '9' && (i == 0 || !(s[i - 1] >= '0' && s[i - 1] <= '9'))) starts.push_back(i);
        if (starts.empty()) break;
        const size_t at = starts[pick(starts.size())];
        size_t end = at;
        while (end < s.size() && s[end] >= '0' && s[end] <= '9') ++end;
        std::string rep;
        if (pick(2)) rep = kNumbers[pick(sizeof(kNumbers) / sizeof(kNumbers[0]))];
        else {
          // strtoull saturates at 2^64-1; the +-2 wraps in unsigned arithmetic (no signed overflow)
          const unsigned long long v = std::strtoull(s.substr(at, end - at).c_str(), nullptr, 10);
          rep = std::to_string(v + pick(5) - 2);
        }
        s.replace(at, end - at, rep);
        break;
      }
      case 11:  // truncate
        if (!s.empty()) s.resize(pick(s.size()));
        break;
    }
  }
  if (s.size() > max_len) s.resize(max_len);
  return s;
}

// ---------------------------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------------------------
struct DriverState {
  const char* name = "";
  uint64_t seed = 1;
  uint64_t index = 0;
  std::string save_dir = ".";
  const std::string* current = nullptr;
  std::atomic<int64_t> started_ns{0};  // 0: not inside an input
};
inline DriverState& state() {
  static DriverState s;
  return s;
}

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

inline double rss_mb() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1048576.0);
}

// Writes the current input to <save-dir>/<kind>-<name>-seed<S>-<i>.bin with async-signal-safe calls only.
inline void save_current(const char* kind) {
  DriverState& st = state();
  if (!st.current) return;
  char path[4096];
  std::snprintf(path, sizeof path, "%s/%s-%s-seed%llu-%llu.bin", st.save_dir.c_str(), kind, st.name,
                static_cast<unsigned long long>(st.seed), static_cast<unsigned long long>(st.index));
  int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    const char* p = st.current->data();
    size_t left = st.current->size();
    while (left > 0) {
      ssize_t w = ::write(fd, p, left);
      if (w <= 0) break;
      p += w;
      left -= static_cast<size_t>(w);
    }
    ::close(fd);
  }
  const char msg[] = "instill fuzz: input saved to ";
  (void)!::write(2, msg, sizeof msg - 1);
  (void)!::write(2, path, std::strlen(path));
  (void)!::write(2, "\n", 1);
}

inline void on_fatal_signal(int sig) {
  save_current("crash");
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

}  // namespace instill_fuzz

extern "C" void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

namespace instill_fuzz {

template <class Seeds, class Dict, class Fixup, class One>
int drive(int argc, char** argv, const char* name, Seeds seeds_fn, Dict dict_fn, Fixup fixup, One one) {
  DriverState& st = state();
  st.name = name;
  uint64_t runs = 100000;
  size_t max_len = 65536;
  int64_t timeout_ms = 10000;
  std::vector<std::string> reproduce;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s: %s needs a value\n", name, a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--runs") runs = std::stoull(next());
    else if (a == "--seed") st.seed = std::stoull(next());
    else if (a == "--max-len") max_len = std::stoull(next());
    else if (a == "--timeout-ms") timeout_ms = std::stoll(next());
    else if (a == "--save-dir") st.save_dir = next();
    else if (a == "--reproduce") {
      while (i + 1 < argc) reproduce.push_back(argv[++i]);
    } else {
      std::fprintf(stderr, "%s: unknown argument '%s' (--runs N --seed S --max-len L --timeout-ms T --save-dir D --reproduce FILE...)\n",
                   name, a.c_str());
      return 2;
    }
  }

  if (__sanitizer_set_death_callback) __sanitizer_set_death_callback([] { save_current("crash"); });
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL}) std::signal(sig, on_fatal_signal);

  // Watchdog: an input running longer than the timeout is a hang.
  std::atomic<bool> done{false};
  std::thread watchdog([&] {
    while (!done.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      int64_t t0 = st.started_ns.load();
      if (t0 != 0 && now_ns() - t0 > timeout_ms * 1000000) {
        std::fprintf(stderr, "%s: input %llu ran longer than %lld ms (hang)\n", name,
                     static_cast<unsigned long long>(st.index), static_cast<long long>(timeout_ms));
        save_current("hang");
        std::fprintf(stdout, "{\"harness\": \"%s\", \"seed\": %llu, \"hangs\": 1, \"ok\": false}\n", name,
                     static_cast<unsigned long long>(st.seed));
        std::fflush(stdout);
        std::_Exit(3);
      }
    }
  });

  std::map<std::string, uint64_t> rejected_by;
  uint64_t accepted = 0, inputs = 0;
  double slowest_ms = 0;
  int rc = 0;
  std::string violation;
  auto run_one = [&](const std::string& in) -> bool {
    st.current = &in;
    const int64_t t0 = now_ns();
    st.started_ns.store(t0);
    try {
      Outcome o = one(reinterpret_cast<const uint8_t*>(in.data()), in.size());
      if (o.accepted) ++accepted;
      else ++rejected_by[o.rejection];
    } catch (const Violation& v) {
      violation = v.what();
    } catch (const std::exception& e) {
      violation = std::string("unexpected exception: ") + e.what();
    } catch (...) {
      violation = "unexpected exception not derived from std::exception";
    }
    st.started_ns.store(0);
    slowest_ms = std::max(slowest_ms, (now_ns() - t0) / 1e6);
    ++inputs;
    if (!violation.empty()) {
      std::fprintf(stderr, "%s: input %llu breaks the contract: %s\n", name, static_cast<unsigned long long>(st.index),
                   violation.c_str());
      save_current("violation");
      return false;
    }
    return true;
  };

  const double rss0 = rss_mb();
  const int64_t start = now_ns();
  double rss_warm = rss0;
  if (!reproduce.empty()) {
    for (const auto& f : reproduce) {
      std::ifstream in(f, std::ios::binary);
      std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (!run_one(data)) rc = 1;
      ++st.index;
    }
  } else {
    Rng rng(st.seed);
    std::vector<std::string> corpus = seeds_fn();
    const std::vector<std::string> dict = dict_fn();
    const size_t n_seeds = corpus.size();
    for (uint64_t i = 0; i < runs; ++i) {
      st.index = i;
      std::string input;
      if (i < n_seeds) input = corpus[i];
      else {
        const std::string& parent = corpus[std::uniform_int_distribution<size_t>(0, corpus.size() - 1)(rng)];
        const std::string& other = corpus[std::uniform_int_distribution<size_t>(0, corpus.size() - 1)(rng)];
        input = mutate(parent, other, dict, rng, max_len);
        if (rng() % 2) fixup(input, rng);
      }
      const uint64_t acc_before = accepted;
      if (!run_one(input)) {
        rc = 1;
        break;
      }
      // Accepted mutants join the corpus (bounded), so later mutations start from deeper valid inputs.
      if (accepted > acc_before && i >= n_seeds && corpus.size() < 512 && rng() % 4 == 0) corpus.push_back(input);
      if (i == std::min<uint64_t>(runs - 1, 1000)) rss_warm = rss_mb();
    }
  }
  done = true;
  watchdog.join();
  const double secs = (now_ns() - start) / 1e9;
  std::ostringstream rj;
  bool first = true;
  uint64_t rejected_total = 0;
  for (auto& [k, v] : rejected_by) {
    rj << (first ? "" : ", ") << "\"" << k << "\": " << v;
    rejected_total += v;
    first = false;
  }
  std::printf(
      "{\"harness\": \"%s\", \"seed\": %llu, \"inputs\": %llu, \"accepted\": %llu, \"rejected\": %llu, "
      "\"rejected_by\": {%s}, \"crashes\": 0, \"hangs\": 0, \"violations\": %d, \"slowest_ms\": %.2f, "
      "\"seconds\": %.1f, \"rss_start_mb\": %.1f, \"rss_after_1000_mb\": %.1f, \"rss_end_mb\": %.1f, \"ok\": %s}\n",
      name, static_cast<unsigned long long>(st.seed), static_cast<unsigned long long>(inputs),
      static_cast<unsigned long long>(accepted), static_cast<unsigned long long>(rejected_total), rj.str().c_str(),
      rc == 0 ? 0 : 1, slowest_ms, secs, rss0, rss_warm, rss_mb(), rc == 0 ? "true" : "false");
  std::fflush(stdout);
  return rc;
}

}  // namespace instill_fuzz

// Defines LLVMFuzzerTestOneInput (for libFuzzer) and, without INSTILL_LIBFUZZER, main() with the mutation driver.
#ifdef INSTILL_LIBFUZZER
#define INSTILL_FUZZ_MAIN()                                                                    \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {                    \
    instill_fuzz::one(data, size); /* a Violation escapes: libFuzzer reports it as a crash */ \
    return 0;                                                                                  \
  }
#else
#define INSTILL_FUZZ_MAIN()                                                                                 \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {                                 \
    instill_fuzz::one(data, size);                                                                          \
    return 0;                                                                                               \
  }                                                                                                         \
  int main(int argc, char** argv) {                                                                         \
    return instill_fuzz::drive(argc, argv, instill_fuzz::kName, instill_fuzz::seeds, instill_fuzz::dictionary, \
                               instill_fuzz::fixup, instill_fuzz::one);                                     \
  }
#endif
