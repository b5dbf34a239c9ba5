// The ProcessGroup handle (dist_wrap.cc) for other wraps: a training call that takes `{processGroup}` unwraps it
// here (GradSyncFromJs: instill::dist::make_grad_sync(pg) as train_steps' grad_sync).
#pragma once
#include <napi.h>

#include <memory>
#include <string>

#include "dist/process_group.h"
#include "train/trainer.h"

namespace instill::napi {

// The process group behind a JS ProcessGroup handle; ArgumentError naming `arg` for anything else or a disposed one.
std::shared_ptr<instill::dist::ProcessGroup> ProcessGroupFromJs(const Napi::Value& v, const std::string& arg);
// options.processGroup as gradient averaging over the group; null without one.
std::shared_ptr<train::GradSync> GradSyncFromJs(const Napi::Object& options, const std::string& arg);

}  // namespace instill::napi
