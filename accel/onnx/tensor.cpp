// Tensor helpers: element counts bounded against overflow, shapes as text.
#include "accel/onnx/tensor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace unifn::onnx_model {

std::string to_string(DType t) { return t == DType::Float ? "float32" : "int64"; }

std::int64_t element_count(const std::vector<std::int64_t>& dims) {
  std::int64_t n = 1;
  for (auto d : dims) {
    if (d < 0) return -1;
    if (d == 0) return 0;
    // Checked before multiplying, so that a hostile shape cannot overflow the product.
    if (n > kMaxTensorElements / d) return -1;
    n *= d;
  }
  return n;
}

std::int64_t Tensor::elements() const { return element_count(dims); }

Tensor Tensor::floats(std::vector<std::int64_t> dims, std::vector<float> data) {
  Tensor t;
  t.dims = std::move(dims);
  t.f = std::move(data);
  return t;
}

Tensor Tensor::ints(std::vector<std::int64_t> dims, std::vector<std::int64_t> data) {
  Tensor t;
  t.type = DType::Int64;
  t.dims = std::move(dims);
  t.i = std::move(data);
  return t;
}

std::string shape_string(const std::vector<std::int64_t>& dims) {
  return fmt::format("[{}]", fmt::join(dims, ", "));
}

}  // namespace unifn::onnx_model
