// CUDA kernels for ONNX operators (see onnx_kernels.h): one thread per output element, grid-stride.
#include "accel/cuda/onnx/onnx_kernels.h"

#include "accel/cuda/onnx/elements.h"

namespace unifn::accel::cuda::onnx {

namespace {

constexpr int kThreads = 256;

unsigned blocks(std::int64_t n) {
  std::int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 65535 ? (b > 0 ? b : 1) : 65535);
}

#define UNIFN_FOR_EACH(i, n)                                                          \
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < (n); \
       i += std::int64_t{blockDim.x} * gridDim.x)

__global__ void unary_kernel(Unary op, const float* x, float* y, std::int64_t n, float alpha,
                             float beta) {
  UNIFN_FOR_EACH(i, n) y[i] = unary_at(op, x[i], alpha, beta);
}

__global__ void pair_kernel(Pair op, const float* a, const float* b, float* y, Strided st,
                            std::int64_t n) {
  UNIFN_FOR_EACH(i, n) y[i] = pair_at(op, a, b, st, i);
}

__global__ void transpose_kernel(const float* x, float* y, Strided st, std::int64_t n) {
  UNIFN_FOR_EACH(i, n) y[i] = transpose_at(x, st, i);
}

__global__ void pool_kernel(const float* x, float* y, Window2d g, bool max, bool include_pad) {
  UNIFN_FOR_EACH(i, g.n * g.c * g.oh * g.ow) y[i] = pool_at(x, g, max, include_pad, i);
}

__global__ void batch_norm_kernel(const float* x, float* y, const float* scale, const float* shift,
                                  const float* mean, const float* var, float epsilon,
                                  std::int64_t channels, std::int64_t inner, std::int64_t n) {
  UNIFN_FOR_EACH(i, n)
  y[i] = batch_norm_at(x, scale, shift, mean, var, epsilon, channels, inner, i);
}

__global__ void softmax_kernel(const float* x, float* y, std::int64_t outer, std::int64_t len,
                               std::int64_t inner, bool log) {
  UNIFN_FOR_EACH(r, outer * inner) softmax_row(x, y, len, inner, log, r);
}

__global__ void conv_kernel(const float* x, const float* w, const float* bias, float* y, Window2d g,
                            std::int64_t m, std::int64_t group) {
  UNIFN_FOR_EACH(i, g.n * m * g.oh * g.ow) y[i] = conv_at(x, w, bias, g, m, group, i);
}

__global__ void pad_kernel(const float* x, float* y, std::int64_t planes, std::int64_t h,
                           std::int64_t w, std::int64_t top, std::int64_t left, std::int64_t ph,
                           std::int64_t pw) {
  UNIFN_FOR_EACH(i, planes * ph * pw) y[i] = pad_at(x, h, w, top, left, ph, pw, i);
}

__global__ void add_bias_kernel(float* y, const float* bias, std::int64_t m, std::int64_t spatial,
                                std::int64_t n) {
  UNIFN_FOR_EACH(i, n) y[i] += bias[(i / spatial) % m];
}

}  // namespace

cudaError_t unary(Unary op, const float* x, float* y, std::int64_t n, float alpha, float beta,
                  cudaStream_t s) {
  unary_kernel<<<blocks(n), kThreads, 0, s>>>(op, x, y, n, alpha, beta);
  return cudaGetLastError();
}

cudaError_t pair(Pair op, const float* a, const float* b, float* y, const Strided& st,
                 std::int64_t n, cudaStream_t s) {
  pair_kernel<<<blocks(n), kThreads, 0, s>>>(op, a, b, y, st, n);
  return cudaGetLastError();
}

cudaError_t transpose(const float* x, float* y, const Strided& st, std::int64_t n, cudaStream_t s) {
  transpose_kernel<<<blocks(n), kThreads, 0, s>>>(x, y, st, n);
  return cudaGetLastError();
}

cudaError_t pool(const float* x, float* y, const Window2d& g, bool max, bool include_pad,
                 cudaStream_t s) {
  pool_kernel<<<blocks(g.n * g.c * g.oh * g.ow), kThreads, 0, s>>>(x, y, g, max, include_pad);
  return cudaGetLastError();
}

cudaError_t batch_norm(const float* x, float* y, const float* scale, const float* shift,
                       const float* mean, const float* var, float epsilon, std::int64_t channels,
                       std::int64_t inner, std::int64_t n, cudaStream_t s) {
  batch_norm_kernel<<<blocks(n), kThreads, 0, s>>>(x, y, scale, shift, mean, var, epsilon, channels,
                                                   inner, n);
  return cudaGetLastError();
}

cudaError_t softmax(const float* x, float* y, std::int64_t outer, std::int64_t len,
                    std::int64_t inner, bool log, cudaStream_t s) {
  softmax_kernel<<<blocks(outer * inner), kThreads, 0, s>>>(x, y, outer, len, inner, log);
  return cudaGetLastError();
}

cudaError_t conv_direct(const float* x, const float* w, const float* bias, float* y,
                        const Window2d& g, std::int64_t m, std::int64_t group, cudaStream_t s) {
  conv_kernel<<<blocks(g.n * m * g.oh * g.ow), kThreads, 0, s>>>(x, w, bias, y, g, m, group);
  return cudaGetLastError();
}

cudaError_t pad(const float* x, float* y, std::int64_t planes, std::int64_t h, std::int64_t w,
                std::int64_t top, std::int64_t bottom, std::int64_t left, std::int64_t right,
                cudaStream_t s) {
  std::int64_t ph = h + top + bottom, pw = w + left + right;
  pad_kernel<<<blocks(planes * ph * pw), kThreads, 0, s>>>(x, y, planes, h, w, top, left, ph, pw);
  return cudaGetLastError();
}

cudaError_t add_bias(float* y, const float* bias, std::int64_t m, std::int64_t spatial,
                     std::int64_t n, cudaStream_t s) {
  add_bias_kernel<<<blocks(n), kThreads, 0, s>>>(y, bias, m, spatial, n);
  return cudaGetLastError();
}

}  // namespace unifn::accel::cuda::onnx
