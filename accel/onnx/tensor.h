// A dense tensor as the ONNX executor holds it: float32 data, or int64 where an operator takes
// shapes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace unifn::onnx_model {

enum class DType { Float, Int64 };
std::string to_string(DType t);

// The most elements one tensor may have (1 GiB of floats): a bound on what a shape may ask for.
inline constexpr std::int64_t kMaxTensorElements = std::int64_t{1} << 28;

struct Tensor {
  DType type = DType::Float;
  std::vector<std::int64_t> dims;  // empty: a scalar
  std::vector<float> f;            // the data when type is Float
  std::vector<std::int64_t> i;     // the data when type is Int64

  std::int64_t elements() const;  // the product of dims
  std::size_t stored() const { return type == DType::Float ? f.size() : i.size(); }
  static Tensor floats(std::vector<std::int64_t> dims, std::vector<float> data);
  static Tensor ints(std::vector<std::int64_t> dims, std::vector<std::int64_t> data);
  bool operator==(const Tensor&) const = default;
};

// The product of dims, or -1 when a dimension is negative or the product passes kMaxTensorElements.
std::int64_t element_count(const std::vector<std::int64_t>& dims);
std::string shape_string(const std::vector<std::int64_t>& dims);  // "[1, 3, 224, 224]"

}  // namespace unifn::onnx_model
