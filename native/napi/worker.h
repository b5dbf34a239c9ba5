// The baton pattern for asynchronous native calls (sharp's pipeline, node-llama-cpp):
// arguments are copied into C++ values on the main thread, Execute() runs the body on a libuv worker
// thread without touching any Napi:: object, results become JS values in OnOK(), and progress events
// reach an optional JS callback through the worker's thread-safe queue.
#pragma once
#include <napi.h>

#include <c10/core/GradMode.h>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/runtime.h"
#include "napi/errors.h"

namespace instill::napi {

// One progress event: named numbers plus an optional message.
struct ProgressEvent {
  std::vector<std::pair<std::string, double>> values;
  std::string message;
};

class Reporter {
 public:
  explicit Reporter(std::function<void(ProgressEvent)> send, std::shared_ptr<std::atomic<bool>> cancel)
      : send_(std::move(send)), cancel_(std::move(cancel)) {}
  void operator()(ProgressEvent e) const { if (send_) send_(std::move(e)); }
  bool cancelled() const { return cancel_ && cancel_->load(); }
  const std::atomic<bool>* cancel_flag() const { return cancel_.get(); }

 private:
  std::function<void(ProgressEvent)> send_;
  std::shared_ptr<std::atomic<bool>> cancel_;
};

class TaskWorker : public Napi::AsyncProgressQueueWorker<ProgressEvent> {
 public:
  using Body = std::function<void(const Reporter&)>;      // worker thread: no Napi:: here
  using Finish = std::function<Napi::Value(Napi::Env)>;   // main thread: build the result

  // Starts the task and returns its promise. `keepAlive` (e.g. the wrapped object) is referenced
  // until the task settles so it cannot be collected mid-call.
  static Napi::Promise Start(Napi::Env env, const char* name, Body body, Finish finish, bool grad_enabled,
                             std::optional<Napi::Function> on_progress = std::nullopt,
                             std::shared_ptr<std::atomic<bool>> cancel = nullptr,
                             std::optional<Napi::Object> keep_alive = std::nullopt,
                             std::function<void()> on_settle = nullptr) {
    auto* w = new TaskWorker(env, name, std::move(body), std::move(finish), grad_enabled, std::move(cancel),
                             std::move(on_settle));
    if (on_progress) w->progress_cb_ = Napi::Persistent(*on_progress);
    if (keep_alive) w->keep_alive_ = Napi::Persistent(*keep_alive);
    auto promise = w->deferred_.Promise();
    w->Queue();
    return promise;
  }

 protected:
  void Execute(const ExecutionProgress& progress) override {
    try {
      instill::apply_threads();
      c10::AutoGradMode grad_mode(grad_enabled_);  // grad mode is per thread
      Reporter report([&progress](ProgressEvent e) { progress.Send(&e, 1); }, cancel_);
      body_(report);
    } catch (...) {
      error_.capture();
    }
  }

  void OnProgress(const ProgressEvent* data, size_t count) override {
    if (progress_cb_.IsEmpty()) return;
    Napi::HandleScope scope(Env());
    for (size_t i = 0; i < count; ++i) {
      auto o = Napi::Object::New(Env());
      for (const auto& kv : data[i].values) o.Set(kv.first, Napi::Number::New(Env(), kv.second));
      if (!data[i].message.empty()) o.Set("message", data[i].message);
      try {
        progress_cb_.Call({o});
      } catch (const Napi::Error&) {
        // A throwing progress callback must not break the native task; the error is dropped.
      }
    }
  }

  // `on_settle` runs after `finish` (which may install new state) and before the promise settles.
  void OnOK() override {
    Napi::HandleScope scope(Env());
    if (error_.kind != CapturedError::None) {
      settle();
      deferred_.Reject(error_.toJs(Env()).Value());
      return;
    }
    Napi::Value result;
    try {
      result = finish_ ? finish_(Env()) : Env().Undefined();
    } catch (...) {
      settle();
      deferred_.Reject(TranslateCurrentException(Env()).Value());
      return;
    }
    settle();
    deferred_.Resolve(result);
  }

  void OnError(const Napi::Error& e) override {
    settle();
    deferred_.Reject(e.Value());
  }

 private:
  TaskWorker(Napi::Env env, const char* name, Body body, Finish finish, bool grad,
             std::shared_ptr<std::atomic<bool>> cancel, std::function<void()> on_settle)
      : Napi::AsyncProgressQueueWorker<ProgressEvent>(env, name),
        deferred_(Napi::Promise::Deferred::New(env)),
        body_(std::move(body)),
        finish_(std::move(finish)),
        grad_enabled_(grad),
        cancel_(std::move(cancel)),
        on_settle_(std::move(on_settle)) {}

  void settle() {
    if (on_settle_) on_settle_();
    on_settle_ = nullptr;
  }

  Napi::Promise::Deferred deferred_;
  Body body_;
  Finish finish_;
  bool grad_enabled_;
  std::shared_ptr<std::atomic<bool>> cancel_;
  std::function<void()> on_settle_;
  CapturedError error_;
  Napi::FunctionReference progress_cb_;
  Napi::ObjectReference keep_alive_;
};

}  // namespace instill::napi
