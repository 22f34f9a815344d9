// The compute operators of an ONNX graph as an interface: the graph walk (walk.h) checks shapes and
// calls these; oneDNN (CPU) and CUDA implement them, each keeping float data in its own memory.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "accel/onnx/model.h"
#include "accel/onnx/shapes.h"
#include "accel/onnx/tensor.h"
#include "accel/onnx/window.h"

namespace unifn::onnx_model {

// A value during a run: shape and type on the host; int64 data (shapes, axes) always on the host,
// float data wherever the kernels keep it (host memory for oneDNN, device memory for CUDA). Data is
// never written once made, so values share it (Reshape, Identity).
struct Operand {
  DType type = DType::Float;
  std::vector<std::int64_t> dims;
  std::vector<std::int64_t> i;  // the data when type is Int64
  std::shared_ptr<float> data;  // the data when type is Float; null when there are no elements
  std::int64_t elements() const { return element_count(dims); }
};

enum class Eltwise { Relu, LeakyRelu, Sigmoid, Tanh, Clip };
enum class Binary { Add, Sub, Mul, Div };

// Each operator gets operands whose shapes the walk has checked and the result's shape it computed
// (within kMaxTensorElements), and returns the result. Failures throw std::runtime_error with a
// sentence.
class Kernels {
 public:
  virtual ~Kernels() = default;
  // A float tensor made an operand (it may alias t's data, which outlives the run), and back.
  virtual Operand upload(const Tensor& t) = 0;
  virtual std::vector<float> download(const Operand& x) = 0;

  virtual Operand conv(const Operand& x, const Operand& w, const Operand* bias,
                       const ConvGeometry& g) = 0;
  // Max or average pooling (GlobalAveragePool is an average over the whole spatial extent).
  virtual Operand pool(const Operand& x, bool max, bool count_include_pad, const Window& w,
                       const std::vector<std::int64_t>& out) = 0;
  virtual Operand batch_norm(const Operand& x, const Operand& scale, const Operand& shift,
                             const Operand& mean, const Operand& var, float epsilon) = 0;
  virtual Operand eltwise(Eltwise kind, const Operand& x, float alpha, float beta) = 0;
  // Numpy broadcasting of a and b to `out`.
  virtual Operand binary(Binary kind, const Operand& a, const Operand& b,
                         const std::vector<std::int64_t>& out) = 0;
  virtual Operand matmul(const Operand& a, const Operand& b, const MatMulGeometry& g) = 0;
  // alpha * op(A) op(B) + beta * C, C broadcast to [m, n] (null, or beta 0: no C).
  virtual Operand gemm(const Operand& a, const Operand& b, const Operand* c, const GemmAttrs& attrs,
                       const GemmGeometry& g) = 0;
  // Softmax (or LogSoftmax with `log`) along `axis` of x seen with shape `dims`.
  virtual Operand softmax(const Operand& x, const std::vector<std::int64_t>& dims,
                          std::int64_t axis, bool log) = 0;
  virtual Operand concat(const std::vector<const Operand*>& xs, std::int64_t axis,
                         const std::vector<std::int64_t>& out) = 0;
  // `perm` is a full permutation of x's axes; out[i] = x.dims[perm[i]].
  virtual Operand transpose(const Operand& x, const std::vector<std::int64_t>& perm,
                            const std::vector<std::int64_t>& out) = 0;
};

}  // namespace unifn::onnx_model
