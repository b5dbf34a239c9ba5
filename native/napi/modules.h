// One Init function per *_wrap.cc; addon.cc calls each. Adding a wrap = one line here and one in addon.cc.
#pragma once
#include <napi.h>

namespace instill::napi {
void InitRuntime(Napi::Env env, Napi::Object exports);
}  // namespace instill::napi
