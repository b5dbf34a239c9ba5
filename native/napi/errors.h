// Two-layer error handling for every addon entry point (README "Errors"):
// argument problems become TypeError/RangeError, anything thrown by LibTorch or the core becomes
// an Error with its message. No exception ever escapes to N-API, so no input can abort the process.
#pragma once
#include <napi.h>

#include <c10/util/Exception.h>

#include <exception>
#include <stdexcept>
#include <string>

#include "common/errors.h"

namespace instill::napi {

inline Napi::Error TranslateCurrentException(Napi::Env env) {
  try {
    throw;
  } catch (const Napi::Error& e) {
    return e;
  } catch (const instill::ArgumentError& e) {
    return Napi::TypeError::New(env, e.what());
  } catch (const instill::RangeError& e) {
    return Napi::RangeError::New(env, e.what());
  } catch (const c10::Error& e) {
    return Napi::Error::New(env, e.what_without_backtrace());
  } catch (const std::exception& e) {
    return Napi::Error::New(env, e.what());
  } catch (...) {
    return Napi::Error::New(env, "instill: unknown native error");
  }
}

// Wraps a callback body: Napi::Value Fn(const Napi::CallbackInfo&) { return Guard(info, [&]{...}); }
template <class F>
Napi::Value Guard(const Napi::CallbackInfo& info, F&& body) {
  try {
    return body();
  } catch (...) {
    TranslateCurrentException(info.Env()).ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
}

// Copies a worker-thread exception into a string message with its kind, to rethrow on the main thread.
struct CapturedError {
  enum Kind { None, Type, Range, Generic } kind = None;
  std::string message;
  void capture() {
    try {
      throw;
    } catch (const instill::ArgumentError& e) {
      kind = Type; message = e.what();
    } catch (const instill::RangeError& e) {
      kind = Range; message = e.what();
    } catch (const c10::Error& e) {
      kind = Generic; message = e.what_without_backtrace();
    } catch (const std::exception& e) {
      kind = Generic; message = e.what();
    } catch (...) {
      kind = Generic; message = "instill: unknown native error";
    }
  }
  Napi::Error toJs(Napi::Env env) const {
    if (kind == Type) return Napi::TypeError::New(env, message);
    if (kind == Range) return Napi::RangeError::New(env, message);
    return Napi::Error::New(env, message);
  }
};

}  // namespace instill::napi
