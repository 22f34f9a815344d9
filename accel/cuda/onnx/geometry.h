// The CUDA kernels' view of an operator's shapes: 2-D windows (1-D ones as height 1) and the index
// strides of broadcasting and transposes. Host code only; shared by the executor and its host test.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

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

// A row-major product C [m, n] = op(A) op(B) as the column-major call cuBLAS takes: C^T = op(B)^T
// op(A)^T, so B comes first. Each field is the argument of that name in cublasSgemm.
struct ColumnMajorGemm {
  bool trans_first = false, trans_second = false;  // transa, transb (first: B, second: A)
  std::int64_t rows = 0, cols = 0, depth = 0;      // m, n, k of the call: n, m, k of the product
  std::int64_t ld_first = 0, ld_second = 0, ld_out = 0;
};
inline ColumnMajorGemm column_major(bool ta, bool tb, std::int64_t m, std::int64_t n,
                                    std::int64_t k) {
  return {tb, ta, n, m, k, tb ? k : n, ta ? m : k, n};
}

// MatMul's batches: how many, and for batch i where its A and B start (numpy broadcasting over
// the batch dims). stride_a/stride_b: the step between batches when every batch has its own
// operand or all share one (0); -1 when the operand is broadcast along some batch dims only.
struct MatMulBatches {
  std::int64_t m = 0, n = 0, k = 0, count = 1, stride_a = 0, stride_b = 0;
  Shape batch, a, b;  // the result's batch dims and each operand's
  std::pair<std::int64_t, std::int64_t> offsets(std::int64_t i) const {
    std::int64_t oa = 0, ob = 0, rest = i, ea = m * k, eb = k * n;
    for (std::size_t d = batch.size(); d-- > 0;) {  // i's batch index, broadcast into each
      std::int64_t idx = rest % batch[d];
      rest /= batch[d];
      oa += (a[d] == 1 ? 0 : idx) * ea, ob += (b[d] == 1 ? 0 : idx) * eb;
      ea *= a[d], eb *= b[d];
    }
    return {oa, ob};
  }
};
inline MatMulBatches matmul_batches(const onnx_model::MatMulGeometry& geo) {
  std::size_t r = geo.y.size();
  MatMulBatches p;
  p.m = geo.a[r - 2], p.k = geo.a[r - 1], p.n = geo.b[r - 1];
  p.batch.assign(geo.y.begin(), geo.y.end() - 2);
  p.a.assign(geo.a.begin(), geo.a.end() - 2);
  p.b.assign(geo.b.begin(), geo.b.end() - 2);
  auto count = [](const Shape& s) {
    std::int64_t c = 1;
    for (auto d : s) c *= d;
    return c;
  };
  p.count = count(p.batch);
  auto stride = [&](const Shape& own, std::int64_t size) -> std::int64_t {
    return own == p.batch ? size : count(own) == 1 ? 0 : -1;
  };
  p.stride_a = stride(p.a, p.m * p.k), p.stride_b = stride(p.b, p.k * p.n);
  return p;
}

// cuDNN pads symmetrically: a window with other end pads runs on an input padded here, with
// the window's pads then zero. `pad` says whether that is needed; `conv` is the geometry cuDNN
// gets.
struct SymmetricConv {
  bool pad = false;
  std::int64_t bottom = 0, right = 0;  // the end pads the padding kernel adds
  Window2d conv;
};
inline SymmetricConv symmetric_conv(const Shape& x, const onnx_model::Window& win,
                                    const Window2d& g) {
  SymmetricConv s{false, x.size() == 3 ? 0 : win.pad_end[0], win.pad_end.back(), g};
  s.pad = s.bottom != g.pt || s.right != g.pl;
  if (s.pad) {
    s.conv.h += g.pt + s.bottom, s.conv.w += g.pl + s.right;
    s.conv.pt = s.conv.pl = 0;
  }
  return s;
}

// Concat as 2-D copies: each input's `outer` rows of `part` elements land at column `at` of the
// result's rows of `row` elements.
struct ConcatBlock {
  std::int64_t outer = 1, row = 1, part = 1, at = 0;
};
inline std::vector<ConcatBlock> concat_blocks(const std::vector<const Shape*>& xs,
                                              std::int64_t axis, const Shape& out) {
  auto ax = static_cast<std::size_t>(axis);
  ConcatBlock b;
  for (std::size_t d = 0; d < out.size(); ++d) (d < ax ? b.outer : b.row) *= out[d];
  std::vector<ConcatBlock> blocks;
  for (const Shape* x : xs) {
    b.part = 1;
    for (std::size_t d = ax; d < x->size(); ++d) b.part *= (*x)[d];
    blocks.push_back(b);
    b.at += b.part;
  }
  return blocks;
}

}  // namespace unifn::accel::cuda::onnx
