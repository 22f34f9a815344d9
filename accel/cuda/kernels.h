// Launchers of unifn's own CUDA kernels (image ops, min-max, an SGEMM for when cuBLAS is missing).
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace unifn::accel::cuda {

// All pointers are device memory; each returns the launch's error (cudaSuccess when queued).
cudaError_t grayscale(const std::uint8_t* src, std::uint8_t* dst, int w, int h, int channels,
                      cudaStream_t s);
// weights: ksize floats (host memory; passed by value to the kernels). tmp: w*h*channels floats.
cudaError_t gaussian_blur(const std::uint8_t* src, float* tmp, std::uint8_t* dst, int w, int h,
                          int channels, const float* weights, int ksize, cudaStream_t s);
cudaError_t sobel(const std::uint8_t* src, std::uint8_t* dst, int w, int h, cudaStream_t s);
cudaError_t resize_bilinear(const std::uint8_t* src, int w, int h, int channels, std::uint8_t* dst,
                            int ow, int oh, cudaStream_t s);
// Row-major C = alpha * A x B + beta * C.
cudaError_t sgemm(int m, int n, int k, float alpha, const float* a, int lda, const float* b,
                  int ldb, float beta, float* c, int ldc, cudaStream_t s);
// Min and max of in[0..n) into *min, *max (host), then out[i] = in[i] * scale + shift. Synchronous.
cudaError_t minmax(const double* in, double* out, int n, int low, int high, double* min,
                   double* max, cudaStream_t s);

}  // namespace unifn::accel::cuda
