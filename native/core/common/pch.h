// Precompiled header for native/core: torch/torch.h costs ~20 s per translation unit on 2 cores.
#pragma once
#include <torch/torch.h>
