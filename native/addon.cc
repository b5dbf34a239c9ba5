// Module init for the instill addon: glue only, all math lives in native/core.
#include <napi.h>

#include "napi/modules.h"

namespace {
Napi::Object Init(Napi::Env env, Napi::Object exports) {
  instill::napi::InitRuntime(env, exports);
  instill::napi::InitSelect(env, exports);
  instill::napi::InitIo(env, exports);
  instill::napi::InitDist(env, exports);
  instill::napi::InitT5(env, exports);
  instill::napi::InitDio(env, exports);
  instill::napi::InitTagi(env, exports);
  instill::napi::InitEmbed(env, exports);
  return exports;
}
}  // namespace

NODE_API_MODULE(instill, Init)
