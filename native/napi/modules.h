// One Init function per *_wrap.cc; addon.cc calls each. Adding a wrap = one line here and one in addon.cc.
#pragma once
#include <napi.h>

namespace instill::napi {
void InitRuntime(Napi::Env env, Napi::Object exports);
void InitSelect(Napi::Env env, Napi::Object exports);
void InitIo(Napi::Env env, Napi::Object exports);
void InitDist(Napi::Env env, Napi::Object exports);
void InitT5(Napi::Env env, Napi::Object exports);
void InitDio(Napi::Env env, Napi::Object exports);
void InitTagi(Napi::Env env, Napi::Object exports);
void InitEmbed(Napi::Env env, Napi::Object exports);
}  // namespace instill::napi
