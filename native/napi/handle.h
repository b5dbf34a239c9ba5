// The one lifetime every exported native class shares (node-llama-cpp's and onnxruntime-node's handles): busy /
// disposed state, Run() (one asynchronous call at a time through TaskWorker, the object kept alive until it settles),
// native memory reported to V8 with AdjustExternalMemory, a finalizer as a backstop, and on every class `dispose()`,
// `[Symbol.asyncDispose]()`, `busy`, `disposed`, `bytes` (and `cancel()` where a call can be cancelled).
//
// A class derives from Handle<Self>, holds its own state, and overrides HasState / DropState / StateBytes. Refusals
// are Napi::Errors with one wording everywhere:
//   "<Class>.<call>: another call (<running>) is still running; await it first (one call at a time)"
//   "<Class>.dispose: refused while a call (<running>) is still running (in flight); await it first"
//   "<Class>.<call>: disposed"          "<Class>.<call>: <not-ready message of the class>"
#pragma once
#include <napi.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "napi/errors.h"
#include "napi/worker.h"

namespace instill::napi {

// Exclusive calls run one at a time on a handle; Shared ones (TopkIndex.search on a snapshot) may overlap each other
// and synchronous calls, and only hold off dispose().
enum class Access { Exclusive, Shared };

// The non-template half (handle.cc): state and checks that do not depend on the wrapped class.
class HandleCore {
 public:
  HandleCore(std::string cls, std::string not_ready) : cls_(std::move(cls)), not_ready_(std::move(not_ready)) {}
  virtual ~HandleCore() = default;

  bool busy() const { return inflight_ > 0; }
  bool disposed() const { return disposed_; }
  int64_t accounted() const { return accounted_; }
  const std::shared_ptr<std::atomic<bool>>& cancel_flag() const { return cancel_; }

 protected:
  virtual bool HasState() const { return true; }
  virtual void DropState() {}
  virtual int64_t StateBytes() const { return 0; }

  // Throws unless the handle may start `what` now: not disposed, (Exclusive) no call in flight, (need_state) state held.
  void Check(Napi::Env env, const char* what, bool need_state = true, Access access = Access::Exclusive) const;
  // Reports StateBytes() to V8 (the change since the last report).
  void Account(Napi::Env env);
  // Marks a call running and returns what TaskWorker calls when it settles (on the main thread).
  std::function<void()> Enter(Napi::Env env, const char* what);
  void DisposeNow(Napi::Env env);
  void Finalized(Napi::Env env);
  std::string Name(const char* what) const { return cls_ + "." + what; }

 private:
  std::string cls_, not_ready_, running_;
  int inflight_ = 0;
  bool disposed_ = false;
  int64_t accounted_ = 0;
  std::shared_ptr<std::atomic<bool>> cancel_ = std::make_shared<std::atomic<bool>>(false);
};

template <class T>
class Handle : public Napi::ObjectWrap<T>, public HandleCore {
 public:
  using Props = std::vector<Napi::ClassPropertyDescriptor<T>>;
  Handle(const Napi::CallbackInfo& info, std::string cls, std::string not_ready = "")
      : Napi::ObjectWrap<T>(info), HandleCore(std::move(cls), std::move(not_ready)) {}

  void Finalize(Napi::Env env) override { Finalized(env); }

 protected:
  using W = Napi::ObjectWrap<T>;

  // DefineClass with the members every handle has added to `props`.
  static Napi::Function DefineHandle(Napi::Env env, const char* name, Props props, bool cancellable = false) {
    props.push_back(W::InstanceMethod("dispose", &Handle::JsDispose));
    props.push_back(W::InstanceAccessor("busy", &Handle::JsBusy, nullptr));
    props.push_back(W::InstanceAccessor("disposed", &Handle::JsDisposed, nullptr));
    props.push_back(W::InstanceAccessor("bytes", &Handle::JsBytes, nullptr));
    if (cancellable) props.push_back(W::InstanceMethod("cancel", &Handle::JsCancel));
    Napi::Value sym = env.Global().Get("Symbol").As<Napi::Object>().Get("asyncDispose");
    if (sym.IsSymbol()) props.push_back(W::InstanceMethod(sym.As<Napi::Symbol>(), &Handle::JsAsyncDispose));
    return W::DefineClass(env, name, props);
  }

  // Starts `body` on a worker thread for the call `what` (checked as Check(what, false, access)); `finish` builds the
  // result on the main thread; memory is re-accounted when the call settles, whether it resolved or rejected.
  Napi::Value Run(const Napi::CallbackInfo& info, const char* what, TaskWorker::Body body, TaskWorker::Finish finish,
                  bool grad, std::optional<Napi::Function> on_progress = std::nullopt, Access access = Access::Exclusive) {
    Check(info.Env(), what, false, access);
    cancel_flag()->store(false);
    return TaskWorker::Start(info.Env(), ("instill." + Name(what)).c_str(), std::move(body), std::move(finish), grad,
                             on_progress, cancel_flag(), info.This().As<Napi::Object>(), Enter(info.Env(), what));
  }

 private:
  Napi::Value JsDispose(const Napi::CallbackInfo& info) {
    return Guard(info, [&]() -> Napi::Value {
      DisposeNow(info.Env());
      return info.Env().Undefined();
    });
  }
  Napi::Value JsAsyncDispose(const Napi::CallbackInfo& info) {
    auto deferred = Napi::Promise::Deferred::New(info.Env());
    try {
      DisposeNow(info.Env());
      deferred.Resolve(info.Env().Undefined());
    } catch (...) {
      deferred.Reject(TranslateCurrentException(info.Env()).Value());
    }
    return deferred.Promise();
  }
  Napi::Value JsCancel(const Napi::CallbackInfo& info) {
    cancel_flag()->store(true);
    return info.Env().Undefined();
  }
  Napi::Value JsBusy(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), busy()); }
  Napi::Value JsDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), disposed()); }
  Napi::Value JsBytes(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(accounted())); }
};

// Bytes of a module's parameters and buffers (what the handles report to V8).
template <class M>
int64_t ModuleBytes(const M& module) {
  int64_t n = 0;
  if (!module) return 0;
  for (const auto& p : module->parameters(true)) n += p.numel() * static_cast<int64_t>(p.element_size());
  for (const auto& b : module->buffers(true)) n += b.numel() * static_cast<int64_t>(b.element_size());
  return n;
}

}  // namespace instill::napi
