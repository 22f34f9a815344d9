// unifn's CUDA kernels: the image ops with OpenCV's conventions, min-max scaling, and a tiled
// SGEMM.
#include "accel/cuda/kernels.h"

#include <thrust/execution_policy.h>
#include <thrust/extrema.h>
#include <thrust/device_ptr.h>

namespace unifn::accel::cuda {

namespace {

constexpr int kMaxKsize = 31;
struct Weights {
  float w[kMaxKsize];
};

__device__ __forceinline__ int clampi(int v, int lo, int hi) { return min(max(v, lo), hi); }
__device__ __forceinline__ unsigned char sat_u8(float v) {
  return static_cast<unsigned char>(fminf(fmaxf(rintf(v), 0.f), 255.f));
}

dim3 grid_for(int w, int h, dim3 block) {
  return dim3((w + block.x - 1) / block.x, (h + block.y - 1) / block.y);
}

__global__ void grayscale_kernel(const unsigned char* src, unsigned char* dst, int w, int h,
                                 int c) {
  const int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
  if (x >= w || y >= h) return;
  const size_t i = size_t(y) * w + x;
  const unsigned char* p = src + i * c;
  // BT.601 in 15-bit fixed point, rounded: bit-identical to OpenCV's RGB2GRAY for 8-bit images.
  dst[i] =
      static_cast<unsigned char>((p[0] * 9798u + p[1] * 19235u + p[2] * 3735u + (1u << 14)) >> 15);
}

__global__ void blur_rows(const unsigned char* src, float* tmp, int w, int h, int c, Weights k,
                          int r) {
  const int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
  if (x >= w || y >= h) return;
  for (int ch = 0; ch < c; ++ch) {
    float s = 0.f;
    for (int i = -r; i <= r; ++i)
      s += k.w[i + r] * src[(size_t(y) * w + clampi(x + i, 0, w - 1)) * c + ch];
    tmp[(size_t(y) * w + x) * c + ch] = s;
  }
}

__global__ void blur_cols(const float* tmp, unsigned char* dst, int w, int h, int c, Weights k,
                          int r) {
  const int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
  if (x >= w || y >= h) return;
  for (int ch = 0; ch < c; ++ch) {
    float s = 0.f;
    for (int i = -r; i <= r; ++i)
      s += k.w[i + r] * tmp[(size_t(clampi(y + i, 0, h - 1)) * w + x) * c + ch];
    dst[(size_t(y) * w + x) * c + ch] = sat_u8(s);
  }
}

__global__ void sobel_kernel(const unsigned char* src, unsigned char* dst, int w, int h) {
  const int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
  if (x >= w || y >= h) return;
  auto at = [&](int xx, int yy) -> int {
    return src[size_t(clampi(yy, 0, h - 1)) * w + clampi(xx, 0, w - 1)];
  };
  const int gx = (at(x + 1, y - 1) + 2 * at(x + 1, y) + at(x + 1, y + 1)) -
                 (at(x - 1, y - 1) + 2 * at(x - 1, y) + at(x - 1, y + 1));
  const int gy = (at(x - 1, y + 1) + 2 * at(x, y + 1) + at(x + 1, y + 1)) -
                 (at(x - 1, y - 1) + 2 * at(x, y - 1) + at(x + 1, y - 1));
  dst[size_t(y) * w + x] = static_cast<unsigned char>(min(255, abs(gx) + abs(gy)));
}

__device__ void map_linear(int d, float scale, int size, int& s0, float& f) {
  const float fs = (d + 0.5f) * scale - 0.5f;
  int s = static_cast<int>(floorf(fs));
  f = fs - s;
  if (s < 0) {
    s = 0;
    f = 0.f;
  }
  if (s >= size - 1) {
    s = size - 1;
    f = 0.f;
  }
  s0 = s;
}

__global__ void resize_kernel(const unsigned char* src, int w, int h, int c, unsigned char* dst,
                              int ow, int oh, float sx, float sy) {
  const int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
  if (x >= ow || y >= oh) return;
  int x0, y0;
  float fx, fy;
  map_linear(x, sx, w, x0, fx);
  map_linear(y, sy, h, y0, fy);
  const int x1 = min(x0 + 1, w - 1), y1 = min(y0 + 1, h - 1);
  for (int ch = 0; ch < c; ++ch) {
    auto p = [&](int xx, int yy) -> float { return src[(size_t(yy) * w + xx) * c + ch]; };
    const float top = (1.f - fx) * p(x0, y0) + fx * p(x1, y0);
    const float bottom = (1.f - fx) * p(x0, y1) + fx * p(x1, y1);
    dst[(size_t(y) * ow + x) * c + ch] = sat_u8((1.f - fy) * top + fy * bottom);
  }
}

constexpr int kTile = 16;

__global__ void sgemm_kernel(int m, int n, int k, float alpha, const float* a, int lda,
                             const float* b, int ldb, float beta, float* c, int ldc) {
  __shared__ float as[kTile][kTile], bs[kTile][kTile];
  const int row = blockIdx.y * kTile + threadIdx.y, col = blockIdx.x * kTile + threadIdx.x;
  float acc = 0.f;
  for (int t = 0; t < k; t += kTile) {
    as[threadIdx.y][threadIdx.x] =
        (row < m && t + threadIdx.x < k) ? a[size_t(row) * lda + t + threadIdx.x] : 0.f;
    bs[threadIdx.y][threadIdx.x] =
        (col < n && t + threadIdx.y < k) ? b[size_t(t + threadIdx.y) * ldb + col] : 0.f;
    __syncthreads();
    for (int i = 0; i < kTile; ++i) acc += as[threadIdx.y][i] * bs[i][threadIdx.x];
    __syncthreads();
  }
  if (row < m && col < n) {
    float& out = c[size_t(row) * ldc + col];
    out = alpha * acc + (beta != 0.f ? beta * out : 0.f);
  }
}

__global__ void scale_kernel(const double* in, double* out, int n, double scale, double shift) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  // Unfused multiply and add: the same rounding as the host's in * scale + shift.
  if (i < n) out[i] = __dadd_rn(__dmul_rn(in[i], scale), shift);
}

}  // namespace

cudaError_t grayscale(const std::uint8_t* src, std::uint8_t* dst, int w, int h, int channels,
                      cudaStream_t s) {
  const dim3 block(32, 8);
  grayscale_kernel<<<grid_for(w, h, block), block, 0, s>>>(src, dst, w, h, channels);
  return cudaGetLastError();
}

cudaError_t gaussian_blur(const std::uint8_t* src, float* tmp, std::uint8_t* dst, int w, int h,
                          int channels, const float* weights, int ksize, cudaStream_t s) {
  if (ksize < 1 || ksize > kMaxKsize) return cudaErrorInvalidValue;
  Weights k{};
  for (int i = 0; i < ksize; ++i) k.w[i] = weights[i];
  const dim3 block(32, 8);
  blur_rows<<<grid_for(w, h, block), block, 0, s>>>(src, tmp, w, h, channels, k, ksize / 2);
  blur_cols<<<grid_for(w, h, block), block, 0, s>>>(tmp, dst, w, h, channels, k, ksize / 2);
  return cudaGetLastError();
}

cudaError_t sobel(const std::uint8_t* src, std::uint8_t* dst, int w, int h, cudaStream_t s) {
  const dim3 block(32, 8);
  sobel_kernel<<<grid_for(w, h, block), block, 0, s>>>(src, dst, w, h);
  return cudaGetLastError();
}

cudaError_t resize_bilinear(const std::uint8_t* src, int w, int h, int channels, std::uint8_t* dst,
                            int ow, int oh, cudaStream_t s) {
  const dim3 block(32, 8);
  resize_kernel<<<grid_for(ow, oh, block), block, 0, s>>>(src, w, h, channels, dst, ow, oh,
                                                          float(w) / ow, float(h) / oh);
  return cudaGetLastError();
}

cudaError_t sgemm(int m, int n, int k, float alpha, const float* a, int lda, const float* b,
                  int ldb, float beta, float* c, int ldc, cudaStream_t s) {
  const dim3 block(kTile, kTile);
  sgemm_kernel<<<grid_for(n, m, block), block, 0, s>>>(m, n, k, alpha, a, lda, b, ldb, beta, c,
                                                       ldc);
  return cudaGetLastError();
}

cudaError_t minmax(const double* in, double* out, int n, int low, int high, double* min,
                   double* max, cudaStream_t s) {
  const thrust::device_ptr<const double> p(in);
  const auto mm = thrust::minmax_element(thrust::cuda::par.on(s), p, p + n);
  double mn = 0, mx = 0;
  // Read the two values back on our own stream (it does not synchronise with the legacy default
  // stream).
  if (auto e = cudaMemcpyAsync(&mn, in + (mm.first - p), sizeof mn, cudaMemcpyDeviceToHost, s);
      e != cudaSuccess)
    return e;
  if (auto e = cudaMemcpyAsync(&mx, in + (mm.second - p), sizeof mx, cudaMemcpyDeviceToHost, s);
      e != cudaSuccess)
    return e;
  if (auto e = cudaStreamSynchronize(s); e != cudaSuccess) return e;
  const double scale = mx > mn ? (double(high) - low) / (mx - mn) : 0.0;
  scale_kernel<<<(n + 255) / 256, 256, 0, s>>>(in, out, n, scale, low - mn * scale);
  *min = mn;
  *max = mx;
  if (auto e = cudaGetLastError(); e != cudaSuccess) return e;
  return cudaStreamSynchronize(s);
}

}  // namespace unifn::accel::cuda
