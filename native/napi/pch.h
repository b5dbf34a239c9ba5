// Precompiled header for the addon glue.
#pragma once
#include <napi.h>
#include <ATen/ATen.h>
