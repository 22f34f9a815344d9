// The operators oneDNN computes, on float32 tensors in plain row-major layout. Each throws
// std::runtime_error (or dnnl::error) with a sentence when the shapes do not fit the operator.
#pragma once

#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "accel/onnx/model.h"
#include "accel/onnx/tensor.h"

namespace unifn::onnx_model {

// The CPU engine and a stream on it: made once per thread that runs models.
struct Dnnl {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
};

Tensor conv(Dnnl& d, const Tensor& x, const Tensor& w, const Tensor* bias, const WindowAttrs& a);
Tensor pool(Dnnl& d, Op op, const Tensor& x, const WindowAttrs& a);
Tensor global_average_pool(Dnnl& d, const Tensor& x);
Tensor batch_norm(Dnnl& d, const Tensor& x, const Tensor& scale, const Tensor& shift,
                  const Tensor& mean, const Tensor& var, float epsilon);
Tensor eltwise(Dnnl& d, dnnl::algorithm alg, const Tensor& x, float alpha = 0, float beta = 0);
Tensor binary(Dnnl& d, dnnl::algorithm alg, const Tensor& a,
              const Tensor& b);                            // numpy broadcasting
Tensor matmul(Dnnl& d, const Tensor& a, const Tensor& b);  // numpy matmul
Tensor gemm(Dnnl& d, const Tensor& a, const Tensor& b, const Tensor* c, const GemmAttrs& g);
// Softmax or, with `log`, LogSoftmax; `coerce_2d`: over all dims from axis on, as before opset 13.
Tensor softmax(Dnnl& d, const Tensor& x, std::int64_t axis, bool coerce_2d, bool log);
Tensor concat(Dnnl& d, const std::vector<const Tensor*>& xs, std::int64_t axis);
Tensor transpose(Dnnl& d, const Tensor& x, std::vector<std::int64_t> perm);

// Numpy broadcasting of two shapes; throws when they do not broadcast.
std::vector<std::int64_t> broadcast_shape(const std::vector<std::int64_t>& a,
                                          const std::vector<std::int64_t>& b);
// An axis in [-rank, rank) (or [-rank, rank] when `inclusive`) made non-negative; throws outside.
std::int64_t normalize_axis(std::int64_t axis, std::size_t rank, bool inclusive = false);

}  // namespace unifn::onnx_model
