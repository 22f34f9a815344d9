// Launchers of the CUDA kernels for ONNX operators that need no library: element-wise, numpy
// broadcasting, transpose, pooling, batch norm, softmax, a direct convolution (when cuDNN is
// missing) and padding. All pointers are device memory; each returns the launch's error.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace unifn::accel::cuda::onnx {

inline constexpr int kMaxRank = 8;  // broadcasting and transpose: the most dims handled

enum class Unary : int { Relu, LeakyRelu, Sigmoid, Tanh, Clip, Scale };  // Scale: y = alpha * x
enum class Pair : int { Add, Sub, Mul, Div, Second };  // Second: y = b (a broadcast copy)

// For each of `rank` output dims, its size and the strides of a and b (0 where broadcast).
struct Strided {
  int rank = 0;
  std::int64_t out[kMaxRank] = {}, a[kMaxRank] = {}, b[kMaxRank] = {};
};

// 2-D window geometry (1-D as height 1).
struct Window2d {
  std::int64_t n = 0, c = 0, h = 0, w = 0, oh = 0, ow = 0;
  std::int64_t kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1, pt = 0, pl = 0;
};

cudaError_t unary(Unary op, const float* x, float* y, std::int64_t n, float alpha, float beta,
                  cudaStream_t s);
cudaError_t pair(Pair op, const float* a, const float* b, float* y, const Strided& st,
                 std::int64_t n, cudaStream_t s);
// y[i] = x[offset of i] with st.out the output dims and st.a the input's strides in output order.
cudaError_t transpose(const float* x, float* y, const Strided& st, std::int64_t n, cudaStream_t s);
// Max, or average over all taps (include_pad) or the taps inside the input.
cudaError_t pool(const float* x, float* y, const Window2d& g, bool max, bool include_pad,
                 cudaStream_t s);
cudaError_t batch_norm(const float* x, float* y, const float* scale, const float* shift,
                       const float* mean, const float* var, float epsilon, std::int64_t channels,
                       std::int64_t inner, std::int64_t n, cudaStream_t s);
// Softmax (or log-softmax) of x seen as [outer, len, inner], along len.
cudaError_t softmax(const float* x, float* y, std::int64_t outer, std::int64_t len,
                    std::int64_t inner, bool log, cudaStream_t s);
// y [n, m, oh, ow] = conv(x [n, c, h, w], w [m, c/group, kh, kw]) + bias (may be null).
cudaError_t conv_direct(const float* x, const float* w, const float* bias, float* y,
                        const Window2d& g, std::int64_t m, std::int64_t group, cudaStream_t s);
// y [planes, h + top + bottom, w + left + right]: x with zeros around each plane.
cudaError_t pad(const float* x, float* y, std::int64_t planes, std::int64_t h, std::int64_t w,
                std::int64_t top, std::int64_t bottom, std::int64_t left, std::int64_t right,
                cudaStream_t s);
// y [n, m, spatial] += bias[m].
cudaError_t add_bias(float* y, const float* bias, std::int64_t m, std::int64_t spatial,
                     std::int64_t n, cudaStream_t s);

}  // namespace unifn::accel::cuda::onnx
