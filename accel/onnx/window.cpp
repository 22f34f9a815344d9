// Window geometry: ONNX's output-size rules (floor, ceil_mode, SAME_UPPER/SAME_LOWER, VALID).
#include "accel/onnx/window.h"

#include <stdexcept>

#include <fmt/format.h>

namespace unifn::onnx_model {

namespace {

std::vector<std::int64_t> or_default(const std::vector<std::int64_t>& v, std::size_t n,
                                     std::int64_t def, const char* what) {
  if (v.empty()) return std::vector<std::int64_t>(n, def);
  if (v.size() != n)
    throw std::runtime_error(
        fmt::format("{} has {} values for {} spatial dims", what, v.size(), n));
  return v;
}

}  // namespace

Window resolve_window(const WindowAttrs& a, const std::vector<std::int64_t>& in,
                      const std::vector<std::int64_t>& kernel) {
  std::size_t n = in.size();
  if (kernel.size() != n)
    throw std::runtime_error(
        fmt::format("the kernel has {} dims for {} spatial dims", kernel.size(), n));
  Window w;
  w.kernel = kernel;
  w.strides = or_default(a.strides, n, 1, "strides");
  w.dilations = or_default(a.dilations, n, 1, "dilations");
  std::vector<std::int64_t> pads = or_default(a.pads, 2 * n, 0, "pads");
  w.pad_begin.assign(pads.begin(), pads.begin() + static_cast<std::ptrdiff_t>(n));
  w.pad_end.assign(pads.begin() + static_cast<std::ptrdiff_t>(n), pads.end());
  w.out.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::int64_t extent = (w.kernel[i] - 1) * w.dilations[i] + 1;  // the span one window covers
    std::int64_t s = w.strides[i];
    if (a.auto_pad == AutoPad::SameUpper || a.auto_pad == AutoPad::SameLower) {
      w.out[i] = (in[i] + s - 1) / s;
      std::int64_t total = std::max<std::int64_t>(0, (w.out[i] - 1) * s + extent - in[i]);
      std::int64_t small = total / 2;
      w.pad_begin[i] = a.auto_pad == AutoPad::SameUpper ? small : total - small;
      w.pad_end[i] = total - w.pad_begin[i];
      continue;
    }
    if (a.auto_pad == AutoPad::Valid) w.pad_begin[i] = w.pad_end[i] = 0;
    std::int64_t room = in[i] + w.pad_begin[i] + w.pad_end[i] - extent;
    if (room < 0)
      throw std::runtime_error(
          fmt::format("the window ({} wide) is larger than spatial dim {} padded ({})", extent, i,
                      in[i] + w.pad_begin[i] + w.pad_end[i]));
    w.out[i] = (a.ceil_mode ? (room + s - 1) / s : room / s) + 1;
    // ceil_mode: a last window that would start inside the end padding is dropped, as ONNX does.
    if (a.ceil_mode && (w.out[i] - 1) * s >= in[i] + w.pad_begin[i]) --w.out[i];
    // oneDNN computes the output size from the pads: give it the extra end padding ceil_mode needs.
    w.pad_end[i] = std::max(w.pad_end[i], (w.out[i] - 1) * s + extent - in[i] - w.pad_begin[i]);
  }
  return w;
}

}  // namespace unifn::onnx_model
