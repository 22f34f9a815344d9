// The CUDA kernels' view of an operator's shapes: 2-D windows (1-D ones as height 1) and the index
// strides of broadcasting and transposes. Host code only; shared by the executor and its host test.
#pragma once

#include <stdexcept>
#include <string>

#include "accel/cuda/onnx/onnx_kernels.h"
#include "accel/onnx/kernels.h"
#include "accel/onnx/shapes.h"
#include "accel/onnx/window.h"

namespace unifn::accel::cuda::onnx {

using onnx_model::Shape;

// x [n, c, spatial...] under window w giving spatial sizes out [n, c|m, spatial...].
inline Window2d window2d(const Shape& x, const onnx_model::Window& win, const Shape& out) {
  bool one_d = x.size() == 3;
  Window2d g;
  g.n = x[0], g.c = x[1];
  g.h = one_d ? 1 : x[2], g.w = x.back();
  g.oh = one_d ? 1 : out[2], g.ow = out.back();
  g.kh = one_d ? 1 : win.kernel[0], g.kw = win.kernel.back();
  g.sh = one_d ? 1 : win.strides[0], g.sw = win.strides.back();
  g.dh = one_d ? 1 : win.dilations[0], g.dw = win.dilations.back();
  g.pt = one_d ? 0 : win.pad_begin[0], g.pl = win.pad_begin.back();
  return g;
}

// Index arithmetic for `rank` dims, refused past what the kernels take.
inline Strided strided(std::size_t rank) {
  if (rank > kMaxRank)
    throw std::runtime_error("rank " + std::to_string(rank) + " is more than the CUDA kernels' " +
                             std::to_string(kMaxRank));
  Strided st;
  st.rank = static_cast<int>(rank);
  return st;
}

// a and b broadcast to out (numpy's rules, already checked): stride 0 along broadcast dims.
inline Strided broadcast_strides(const Shape& a, const Shape& b, const Shape& out) {
  Strided st = strided(out.size());
  Shape pa = onnx_model::with_leading_ones(a, out.size()),
        pb = onnx_model::with_leading_ones(b, out.size());
  std::int64_t ea = 1, eb = 1;
  for (std::size_t d = out.size(); d-- > 0;) {
    st.out[d] = out[d];
    st.a[d] = pa[d] == 1 ? 0 : ea, st.b[d] = pb[d] == 1 ? 0 : eb;
    ea *= pa[d], eb *= pb[d];
  }
  return st;
}

// x read in the order perm gives (out[i] = x[perm[i]]).
inline Strided transpose_strides(const Shape& x, const std::vector<std::int64_t>& perm,
                                 const Shape& out) {
  Strided st = strided(out.size());
  Shape strides(x.size(), 1);
  for (std::size_t d = x.size(); d-- > 1;) strides[d - 1] = strides[d] * x[d];
  for (std::size_t d = 0; d < out.size(); ++d)
    st.out[d] = out[d], st.a[d] = strides[static_cast<std::size_t>(perm[d])];
  return st;
}

inline Unary unary_of(onnx_model::Eltwise kind) {
  using onnx_model::Eltwise;
  return kind == Eltwise::Relu        ? Unary::Relu
         : kind == Eltwise::LeakyRelu ? Unary::LeakyRelu
         : kind == Eltwise::Sigmoid   ? Unary::Sigmoid
         : kind == Eltwise::Tanh      ? Unary::Tanh
                                      : Unary::Clip;
}

inline Pair pair_of(onnx_model::Binary kind) {
  using onnx_model::Binary;
  return kind == Binary::Add   ? Pair::Add
         : kind == Binary::Sub ? Pair::Sub
         : kind == Binary::Mul ? Pair::Mul
                               : Pair::Div;
}

// Softmax along axis of dims: the [outer, len, inner] view the kernel takes.
struct Rows {
  std::int64_t outer = 1, len = 1, inner = 1;
};
inline Rows softmax_rows(const Shape& dims, std::int64_t axis) {
  Rows r;
  for (std::size_t d = 0; d < dims.size(); ++d)
    (static_cast<std::int64_t>(d) < axis    ? r.outer
     : static_cast<std::int64_t>(d) == axis ? r.len
                                            : r.inner) *= dims[d];
  return r;
}

}  // namespace unifn::accel::cuda::onnx
