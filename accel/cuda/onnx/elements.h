// What each CUDA kernel of onnx_kernels.cu computes for one output element, as functions that
// compile for the device (nvcc) and for the host (g++): the kernels run them per thread, and a host
// test runs them per element against oneDNN, so their index arithmetic is checked on any machine.
#pragma once

#include <cfloat>
#include <cmath>
#include <cstdint>

#include "accel/cuda/onnx/onnx_kernels.h"

#ifdef __CUDACC__
#define UNIFN_HD __host__ __device__
#else
#define UNIFN_HD
#endif

namespace unifn::accel::cuda::onnx {

UNIFN_HD inline float unary_at(Unary op, float v, float alpha, float beta) {
  switch (op) {
    case Unary::Relu:
      return v > 0 ? v : 0;
    case Unary::LeakyRelu:
      return v > 0 ? v : alpha * v;
    case Unary::Sigmoid:
      return 1 / (1 + expf(-v));
    case Unary::Tanh:
      return tanhf(v);
    case Unary::Clip:
      return fminf(fmaxf(v, alpha), beta);
    case Unary::Scale:
      return alpha * v;
  }
  return v;
}

UNIFN_HD inline float pair_at(Pair op, const float* a, const float* b, const Strided& st,
                              std::int64_t i) {
  std::int64_t rest = i, ia = 0, ib = 0;
  for (int d = st.rank - 1; d >= 0; --d) {
    std::int64_t k = rest % st.out[d];
    rest /= st.out[d];
    ia += k * st.a[d];
    ib += k * st.b[d];
  }
  float u = op == Pair::Second ? 0 : a[ia], v = b[ib];
  switch (op) {
    case Pair::Add:
      return u + v;
    case Pair::Sub:
      return u - v;
    case Pair::Mul:
      return u * v;
    case Pair::Div:
      return u / v;
    case Pair::Second:
      return v;
  }
  return v;
}

UNIFN_HD inline float transpose_at(const float* x, const Strided& st, std::int64_t i) {
  std::int64_t rest = i, ix = 0;
  for (int d = st.rank - 1; d >= 0; --d) {
    ix += (rest % st.out[d]) * st.a[d];
    rest /= st.out[d];
  }
  return x[ix];
}

UNIFN_HD inline float pool_at(const float* x, const Window2d& g, bool max, bool include_pad,
                              std::int64_t i) {
  std::int64_t ox = i % g.ow, oy = (i / g.ow) % g.oh, plane = i / (g.ow * g.oh);
  const float* in = x + plane * g.h * g.w;
  float acc = max ? -FLT_MAX : 0;
  std::int64_t inside = 0;
  for (std::int64_t ky = 0; ky < g.kh; ++ky) {
    std::int64_t iy = oy * g.sh - g.pt + ky * g.dh;
    if (iy < 0 || iy >= g.h) continue;
    for (std::int64_t kx = 0; kx < g.kw; ++kx) {
      std::int64_t ix = ox * g.sw - g.pl + kx * g.dw;
      if (ix < 0 || ix >= g.w) continue;
      float v = in[iy * g.w + ix];
      acc = max ? fmaxf(acc, v) : acc + v;
      ++inside;
    }
  }
  if (max) return acc;
  // As oneDNN: including the padding, every tap counts; excluding it, those inside the input.
  return acc / static_cast<float>(include_pad ? g.kh * g.kw : (inside ? inside : 1));
}

UNIFN_HD inline float batch_norm_at(const float* x, const float* scale, const float* shift,
                                    const float* mean, const float* var, float epsilon,
                                    std::int64_t channels, std::int64_t inner, std::int64_t i) {
  std::int64_t c = (i / inner) % channels;
  return (x[i] - mean[c]) * (scale[c] / sqrtf(var[c] + epsilon)) + shift[c];
}

// Row r of x seen as [outer, len, inner] (r = outer index * inner + inner index), along len.
UNIFN_HD inline void softmax_row(const float* x, float* y, std::int64_t len, std::int64_t inner,
                                 bool log, std::int64_t r) {
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

UNIFN_HD inline float conv_at(const float* x, const float* w, const float* bias, const Window2d& g,
                              std::int64_t m, std::int64_t group, std::int64_t i) {
  std::int64_t cg = g.c / group, mg = m / group;
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
  return acc;
}

// Element i of the padded planes [planes, h + top + bottom, w + left + right] (ph, pw: their
// sizes).
UNIFN_HD inline float pad_at(const float* x, std::int64_t h, std::int64_t w, std::int64_t top,
                             std::int64_t left, std::int64_t ph, std::int64_t pw, std::int64_t i) {
  std::int64_t px = i % pw, py = (i / pw) % ph, plane = i / (pw * ph);
  std::int64_t iy = py - top, ix = px - left;
  return iy >= 0 && iy < h && ix >= 0 && ix < w ? x[(plane * h + iy) * w + ix] : 0.f;
}

}  // namespace unifn::accel::cuda::onnx
