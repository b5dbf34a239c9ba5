// A minimal test harness for native/core tests run by ctest: no dependency beyond the standard library.
// TEST(name) { REQUIRE(cond); REQUIRE_CLOSE(a, b, tol); } ... int main() { return instill_test::run_all(); }
#pragma once
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace instill_test {
struct Case { const char* name; std::function<void()> fn; };
inline std::vector<Case>& registry() { static std::vector<Case> r; return r; }
struct Failure { std::string msg; };
struct Skip { std::string why; };
struct Registrar { Registrar(const char* n, std::function<void()> f) { registry().push_back({n, std::move(f)}); } };

inline int run_all() {
  int failed = 0, skipped = 0, passed = 0;
  for (auto& c : registry()) {
    try {
      c.fn();
      ++passed;
      std::printf("[ OK ] %s\n", c.name);
    } catch (const Skip& s) {
      ++skipped;
      std::printf("[SKIP] %s: %s\n", c.name, s.why.c_str());
    } catch (const Failure& f) {
      ++failed;
      std::printf("[FAIL] %s: %s\n", c.name, f.msg.c_str());
    } catch (const std::exception& e) {
      ++failed;
      std::printf("[FAIL] %s: exception: %s\n", c.name, e.what());
    }
  }
  std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  if (failed) return 1;
  if (passed == 0 && skipped > 0) return 77;  // ctest SKIP_RETURN_CODE
  return 0;
}
}  // namespace instill_test

#define INSTILL_CAT2(a, b) a##b
#define INSTILL_CAT(a, b) INSTILL_CAT2(a, b)
#define TEST(name)                                                                 \
  static void name();                                                              \
  static instill_test::Registrar INSTILL_CAT(reg_, name)(#name, name);             \
  static void name()
#define REQUIRE(cond)                                                                \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      std::ostringstream os_;                                                      \
      os_ << __FILE__ << ":" << __LINE__ << ": REQUIRE(" #cond ") failed";          \
      throw instill_test::Failure{os_.str()};                                      \
    }                                                                              \
  } while (0)
#define REQUIRE_MSG(cond, msg)                                                       \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      std::ostringstream os_;                                                      \
      os_ << __FILE__ << ":" << __LINE__ << ": " << msg;                           \
      throw instill_test::Failure{os_.str()};                                      \
    }                                                                              \
  } while (0)
#define REQUIRE_CLOSE(a, b, tol)                                                     \
  do {                                                                             \
    double a_ = (a), b_ = (b);                                                     \
    if (!(std::fabs(a_ - b_) <= (tol))) {                                          \
      std::ostringstream os_;                                                      \
      os_ << __FILE__ << ":" << __LINE__ << ": " #a " = " << a_ << " vs " #b " = " \
          << b_ << " (tol " << (tol) << ")";                                       \
      throw instill_test::Failure{os_.str()};                                      \
    }                                                                              \
  } while (0)
#define REQUIRE_THROWS(expr)                                                         \
  do {                                                                             \
    bool threw_ = false;                                                           \
    try { (void)(expr); } catch (...) { threw_ = true; }                           \
    REQUIRE_MSG(threw_, "expected an exception from " #expr);                        \
  } while (0)
#define SKIP(why) throw instill_test::Skip{why}
