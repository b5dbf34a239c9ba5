// Module init for the instill addon: glue only, all math lives in native/core.
#include <napi.h>

#include "napi/modules.h"

namespace {
Napi::Object Init(Napi::Env env, Napi::Object exports) {
  instill::napi::InitRuntime(env, exports);
  return exports;
}
}  // namespace

NODE_API_MODULE(instill, Init)
