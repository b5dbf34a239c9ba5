#include "napi/handle.h"

namespace instill::napi {

void HandleCore::Check(Napi::Env env, const char* what, bool need_state, Access access) const {
  if (disposed_) throw Napi::Error::New(env, Name(what) + ": disposed");
  if (access == Access::Exclusive && inflight_ > 0)
    throw Napi::Error::New(env, Name(what) + ": another call (" + running_ +
                                    ") is still running; await it first (one call at a time)");
  if (need_state && !HasState()) throw Napi::Error::New(env, Name(what) + ": " + not_ready_);
}

void HandleCore::Account(Napi::Env env) {
  const int64_t now = disposed_ ? 0 : StateBytes();
  if (now != accounted_) Napi::MemoryManagement::AdjustExternalMemory(env, now - accounted_);
  accounted_ = now;
}

std::function<void()> HandleCore::Enter(Napi::Env env, const char* what) {
  ++inflight_;
  running_ = what;
  // TaskWorker calls this on the main thread once the call settles, while the object is still referenced.
  return [this, env] {
    --inflight_;
    Account(env);
  };
}

void HandleCore::DisposeNow(Napi::Env env) {
  if (disposed_) return;
  if (inflight_ > 0)
    throw Napi::Error::New(env, Name("dispose") + ": refused while a call (" + running_ +
                                    ") is still running (in flight); await it first");
  DropState();
  disposed_ = true;
  Account(env);
}

void HandleCore::Finalized(Napi::Env env) {
  // Backstop when dispose() was never called: the state is freed with the object; V8 forgets its bytes.
  if (accounted_) Napi::MemoryManagement::AdjustExternalMemory(env, -accounted_);
  accounted_ = 0;
}

}  // namespace instill::napi
