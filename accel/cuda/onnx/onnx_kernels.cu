// CUDA kernels for ONNX operators (see onnx_kernels.h): one thread per output element, grid-stride.
#include "accel/cuda/onnx/onnx_kernels.h"

#include <cfloat>

namespace unifn::accel::cuda::onnx {

namespace {

constexpr int kThreads = 256;

unsigned blocks(std::int64_t n) {
  std::int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 65535 ? (b > 0 ? b : 1) : 65535);
}

#define UNIFN_FOR_EACH(i, n)                                                            \
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < (n); \
       i += std::int64_t{blockDim.x} * gridDim.x)

__global__ void unary_kernel(Unary op, const float* x, float* y, std::int64_t n, float alpha,
                             float beta) {
  UNIFN_FOR_EACH(i, n) {
    float v = x[i];
    switch (op) {
      case Unary::Relu: v = v > 0 ? v : 0; break;
      case Unary::LeakyRelu: v = v > 0 ? v : alpha * v; break;
      case Unary::Sigmoid: v = 1 / (1 + expf(-v)); break;
      case Unary::Tanh: v = tanhf(v); break;
      case Unary::Clip: v = fminf(fmaxf(v, alpha), beta); break;
      case Unary::Scale: v = alpha * v; break;
    }
    y[i] = v;
  }
}

__global__ void pair_kernel(Pair op, const float* a, const float* b, float* y, Strided st,
                            std::int64_t n) {
  UNIFN_FOR_EACH(i, n) {
    std::int64_t rest = i, ia = 0, ib = 0;
    for (int d = st.rank - 1; d >= 0; --d) {
      std::int64_t k = rest % st.out[d];
      rest /= st.out[d];
      ia += k * st.a[d];
      ib += k * st.b[d];
    }
    float u = op == Pair::Second ? 0 : a[ia], v = b[ib];
    switch (op) {
      case Pair::Add: u = u + v; break;
      case Pair::Sub: u = u - v; break;
      case Pair::Mul: u = u * v; break;
      case Pair::Div: u = u / v; break;
      case Pair::Second: u = v; break;
    }
    y[i] = u;
  }
}

__global__ void transpose_kernel(const float* x, float* y, Strided st, std::int64_t n) {
  UNIFN_FOR_EACH(i, n) {
    std::int64_t rest = i, ix = 0;
    for (int d = st.rank - 1; d >= 0; --d) {
      ix += (rest % st.out[d]) * st.a[d];
      rest /= st.out[d];
    }
    y[i] = x[ix];
  }
}

__global__ void pool_kernel(const float* x, float* y, Window2d g, bool max, bool include_pad) {
  std::int64_t n = g.n * g.c * g.oh * g.ow;
  UNIFN_FOR_EACH(i, n) {
    std::int64_t ox = i % g.ow, oy = (i / g.ow) % g.oh, plane = i / (g.ow * g.oh);
    const float* in = x + plane * g.h * g.w;
    float acc = max ? -FLT_MAX : 0;
    bool any = false;
    std::int64_t inside = 0;
    for (std::int64_t ky = 0; ky < g.kh; ++ky) {
      std::int64_t iy = oy * g.sh - g.pt + ky * g.dh;
      if (iy < 0 || iy >= g.h) continue;
      for (std::int64_t kx = 0; kx < g.kw; ++kx) {
        std::int64_t ix = ox * g.sw - g.pl + kx * g.dw;
        if (ix < 0 || ix >= g.w) continue;
        float v = in[iy * g.w + ix];
        acc = max ? fmaxf(acc, v) : acc + v;
        any = true;
        ++inside;
      }
    }
    if (max)
      y[i] = any ? acc : -FLT_MAX;
    else
      y[i] = acc / static_cast<float>(include_pad ? g.kh * g.kw : (inside ? inside : 1));
  }
}

__global__ void batch_norm_kernel(const float* x, float* y, const float* scale, const float* shift,
                                  const float* mean, const float* var, float epsilon,
                                  std::int64_t channels, std::int64_t inner, std::int64_t n) {
  UNIFN_FOR_EACH(i, n) {
    std::int64_t c = (i / inner) % channels;
    y[i] = (x[i] - mean[c]) * (scale[c] / sqrtf(var[c] + epsilon)) + shift[c];
  }
}

__global__ void softmax_kernel(const float* x, float* y, std::int64_t outer, std::int64_t len,
                               std::int64_t inner, bool log) {
  UNIFN_FOR_EACH(r, outer * inner) {
    std::int64_t base = (r / inner) * len * inner + r % inner;
    float top = -FLT_MAX;
    for (std::int64_t k = 0; k < len; ++k) top = fmaxf(top, x[base + k * inner]);
    float sum = 0;
    for (std::int64_t k = 0; k < len; ++k) sum += expf(x[base + k * inner] - top);
    for (std::int64_t k = 0; k < len; ++k) {
      float v = x[base + k * inner] - top;
      y[base + k * inner] = log ? v - logf(sum) : expf(v) / sum;
    }
  }
}

__global__ void conv_kernel(const float* x, const float* w, const float* bias, float* y,
                            Window2d g, std::int64_t m, std::int64_t group) {
  std::int64_t n = g.n * m * g.oh * g.ow, cg = g.c / group, mg = m / group;
  UNIFN_FOR_EACH(i, n) {
    std::int64_t ox = i % g.ow, oy = (i / g.ow) % g.oh, oc = (i / (g.ow * g.oh)) % m,
                 b = i / (g.ow * g.oh * m);
    std::int64_t c0 = (oc / mg) * cg;
    float acc = bias ? bias[oc] : 0;
    for (std::int64_t c = 0; c < cg; ++c) {
      const float* in = x + (b * g.c + c0 + c) * g.h * g.w;
      const float* k = w + (oc * cg + c) * g.kh * g.kw;
      for (std::int64_t ky = 0; ky < g.kh; ++ky) {
        std::int64_t iy = oy * g.sh - g.pt + ky * g.dh;
        if (iy < 0 || iy >= g.h) continue;
        for (std::int64_t kx = 0; kx < g.kw; ++kx) {
          std::int64_t ix = ox * g.sw - g.pl + kx * g.dw;
          if (ix >= 0 && ix < g.w) acc += in[iy * g.w + ix] * k[ky * g.kw + kx];
        }
      }
    }
    y[i] = acc;
  }
}

__global__ void pad_kernel(const float* x, float* y, std::int64_t planes, std::int64_t h,
                           std::int64_t w, std::int64_t top, std::int64_t left, std::int64_t ph,
                           std::int64_t pw) {
  UNIFN_FOR_EACH(i, planes * ph * pw) {
    std::int64_t px = i % pw, py = (i / pw) % ph, plane = i / (pw * ph);
    std::int64_t iy = py - top, ix = px - left;
    y[i] = iy >= 0 && iy < h && ix >= 0 && ix < w ? x[(plane * h + iy) * w + ix] : 0.f;
  }
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

cudaError_t transpose(const float* x, float* y, const Strided& st, std::int64_t n,
                      cudaStream_t s) {
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
  batch_norm_kernel<<<blocks(n), kThreads, 0, s>>>(x, y, scale, shift, mean, var, epsilon,
                                                   channels, inner, n);
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
