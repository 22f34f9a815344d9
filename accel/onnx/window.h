// The geometry of a Conv or pooling window over 1-D or 2-D spatial dims: ONNX's attributes
// (defaults, auto_pad, ceil_mode) resolved into the explicit strides, dilations and pads oneDNN
// takes.
#pragma once

#include <cstdint>
#include <vector>

#include "accel/onnx/model.h"

namespace unifn::onnx_model {

struct Window {
  std::vector<std::int64_t> kernel, strides, dilations, pad_begin, pad_end,
      out;  // one per spatial dim
};

// `in`: the spatial sizes of the input; `kernel`: the window's sizes. Throws std::runtime_error
// with a sentence when the attributes do not fit the input (wrong lengths, an empty output).
Window resolve_window(const WindowAttrs& a, const std::vector<std::int64_t>& in,
                      const std::vector<std::int64_t>& kernel);

}  // namespace unifn::onnx_model
