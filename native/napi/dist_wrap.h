// The ProcessGroup handle (dist_wrap.cc) for other wraps: a training call that takes `{processGroup}` unwraps it
// here and passes instill::dist::make_grad_sync(pg) as train_steps' grad_sync.
#pragma once
#include <napi.h>

#include <memory>
#include <string>

#include "dist/process_group.h"

namespace instill::napi {

// The process group behind a JS ProcessGroup handle; ArgumentError naming `arg` for anything else or a disposed one.
std::shared_ptr<instill::dist::ProcessGroup> ProcessGroupFromJs(const Napi::Value& v, const std::string& arg);

}  // namespace instill::napi
