// Shape rules of the compute operators, checked once for every executor: broadcasting, axes, and
// the geometry of Conv, MatMul, Gemm, Concat and Transpose. Each throws std::runtime_error with a
// sentence when the shapes do not fit the operator.
#pragma once

#include <cstdint>
#include <vector>

#include "accel/onnx/model.h"
#include "accel/onnx/window.h"

namespace unifn::onnx_model {

using Shape = std::vector<std::int64_t>;

// Numpy broadcasting of two shapes.
Shape broadcast_shape(const Shape& a, const Shape& b);
// An axis in [-rank, rank) (or [-rank, rank] when `inclusive`) made non-negative.
std::int64_t normalize_axis(std::int64_t axis, std::size_t rank, bool inclusive = false);
// `v` with ones in front up to `rank` dims.
Shape with_leading_ones(const Shape& v, std::size_t rank);
// Refuses a result shape whose element count passes kMaxTensorElements; returns the count.
std::int64_t result_elements(const Shape& dims);
// Refuses inputs other than rank 3 or 4 (1-D and 2-D spatial data) for `op`.
void spatial_rank(const Shape& x, const char* op);

struct ConvGeometry {
  Window window;
  std::int64_t group = 1;
  Shape out;  // [n, m, spatial...]
};
ConvGeometry conv_geometry(const Shape& x, const Shape& w, const Shape* bias, const WindowAttrs& a);

struct PoolGeometry {
  Window window;
  Shape out;
};
PoolGeometry pool_geometry(const Shape& x, const Shape& kernel, const WindowAttrs& a,
                           const char* op);

struct MatMulGeometry {
  Shape a, b, y;  // the operands and the product at the same rank (vectors promoted, batch ones)
  Shape result;   // the product's shape as ONNX gives it (promoted dims removed)
};
MatMulGeometry matmul_geometry(const Shape& a, const Shape& b);

struct GemmGeometry {
  std::int64_t m = 0, n = 0, k = 0;
};
GemmGeometry gemm_geometry(const Shape& a, const Shape& b, const Shape* c, const GemmAttrs& g);

// The result of concatenating shapes along axis (already normalized).
Shape concat_shape(const std::vector<const Shape*>& xs, std::int64_t axis);
// perm checked (empty: reversed axes), returned in full.
std::vector<std::int64_t> full_perm(std::vector<std::int64_t> perm, std::size_t rank);

}  // namespace unifn::onnx_model
