// Shape rules of the compute operators (see shapes.h), shared by the oneDNN and CUDA kernels.
#include "accel/onnx/shapes.h"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>

namespace unifn::onnx_model {

namespace {

[[noreturn]] void fail(std::string why) { throw std::runtime_error(std::move(why)); }

}  // namespace

std::int64_t normalize_axis(std::int64_t axis, std::size_t rank, bool inclusive) {
  auto r = static_cast<std::int64_t>(rank);
  if (axis < -r || axis > r || (axis == r && !inclusive))
    fail(fmt::format("axis {} is outside a rank-{} tensor", axis, rank));
  return axis < 0 ? axis + r : axis;
}

Shape with_leading_ones(const Shape& v, std::size_t rank) {
  Shape d(rank - v.size(), 1);
  d.insert(d.end(), v.begin(), v.end());
  return d;
}

Shape broadcast_shape(const Shape& a, const Shape& b) {
  std::size_t r = std::max(a.size(), b.size());
  Shape pa = with_leading_ones(a, r), pb = with_leading_ones(b, r);
  Shape out(r);
  for (std::size_t i = 0; i < r; ++i) {
    if (pa[i] != pb[i] && pa[i] != 1 && pb[i] != 1)
      fail(fmt::format("shapes {} and {} do not broadcast", shape_string(a), shape_string(b)));
    out[i] = pa[i] == 1 ? pb[i] : pa[i];
  }
  return out;
}

std::int64_t result_elements(const Shape& dims) {
  std::int64_t n = element_count(dims);
  if (n < 0)
    fail(fmt::format("a result of shape {} would pass the {} elements allowed", shape_string(dims),
                     kMaxTensorElements));
  return n;
}

void spatial_rank(const Shape& x, const char* op) {
  if (x.size() != 3 && x.size() != 4)
    fail(fmt::format(
        "input of shape {} has rank {}: {} supports only 1-D and 2-D spatial data (rank 3 or 4)",
        shape_string(x), x.size(), op));
}

ConvGeometry conv_geometry(const Shape& x, const Shape& w, const Shape* bias,
                           const WindowAttrs& a) {
  spatial_rank(x, "Conv");
  if (w.size() != x.size())
    fail(fmt::format("weights of shape {} do not fit input of shape {}", shape_string(w),
                     shape_string(x)));
  std::int64_t n = x[0], c = x[1], m = w[0], g = a.group;
  if (g < 1 || c != w[1] * g || m % g != 0)
    fail(fmt::format("weights of shape {} with group {} do not fit input of shape {}",
                     shape_string(w), g, shape_string(x)));
  if (bias && (bias->size() != 1 || (*bias)[0] != m))
    fail(fmt::format("bias of shape {} is not one value per output channel ({})",
                     shape_string(*bias), m));
  Shape in(x.begin() + 2, x.end()), kernel(w.begin() + 2, w.end());
  if (!a.kernel_shape.empty() && a.kernel_shape != kernel)
    fail(fmt::format("kernel_shape {} disagrees with the weights' {}", shape_string(a.kernel_shape),
                     shape_string(kernel)));
  ConvGeometry geo{resolve_window(a, in, kernel), g, {n, m}};
  geo.out.insert(geo.out.end(), geo.window.out.begin(), geo.window.out.end());
  result_elements(geo.out);
  return geo;
}

PoolGeometry pool_geometry(const Shape& x, const Shape& kernel, const WindowAttrs& a,
                           const char* op) {
  spatial_rank(x, op);
  Shape in(x.begin() + 2, x.end());
  PoolGeometry geo{resolve_window(a, in, kernel), {x[0], x[1]}};
  geo.out.insert(geo.out.end(), geo.window.out.begin(), geo.window.out.end());
  result_elements(geo.out);
  return geo;
}

MatMulGeometry matmul_geometry(const Shape& a, const Shape& b) {
  if (a.empty() || b.empty()) fail("MatMul takes no scalars");
  Shape ad = a, bd = b;
  bool a_vector = ad.size() == 1, b_vector = bd.size() == 1;
  if (a_vector) ad.insert(ad.begin(), 1);
  if (b_vector) bd.push_back(1);
  if (ad.back() != bd[bd.size() - 2])
    fail(fmt::format("shapes {} and {} do not multiply", shape_string(a), shape_string(b)));
  Shape batch = broadcast_shape({ad.begin(), ad.end() - 2}, {bd.begin(), bd.end() - 2});
  std::size_t r = batch.size() + 2;
  MatMulGeometry geo{with_leading_ones(ad, r), with_leading_ones(bd, r), batch, {}};
  geo.y.push_back(ad[ad.size() - 2]);
  geo.y.push_back(bd.back());
  result_elements(geo.y);
  geo.result = geo.y;
  if (b_vector) geo.result.pop_back();
  if (a_vector) geo.result.erase(geo.result.end() - (b_vector ? 1 : 2));
  return geo;
}

GemmGeometry gemm_geometry(const Shape& a, const Shape& b, const Shape* c, const GemmAttrs& g) {
  if (a.size() != 2 || b.size() != 2)
    fail(
        fmt::format("Gemm takes matrices, not shapes {} and {}", shape_string(a), shape_string(b)));
  GemmGeometry geo{g.trans_a ? a[1] : a[0], g.trans_b ? b[0] : b[1], g.trans_a ? a[0] : a[1]};
  std::int64_t kb = g.trans_b ? b[1] : b[0];
  if (geo.k != kb)
    fail(fmt::format("shapes {} and {} do not multiply", shape_string(a), shape_string(b)));
  result_elements({geo.m, geo.n});
  if (c && g.beta != 0 && broadcast_shape(*c, {geo.m, geo.n}) != Shape{geo.m, geo.n})
    fail(fmt::format("C of shape {} does not broadcast to the result's {}", shape_string(*c),
                     shape_string({geo.m, geo.n})));
  return geo;
}

Shape concat_shape(const std::vector<const Shape*>& xs, std::int64_t axis) {
  const Shape& first = *xs.at(0);
  auto ax = static_cast<std::size_t>(axis);
  Shape out = first;
  out[ax] = 0;
  for (const Shape* t : xs) {
    bool fits = t->size() == first.size();
    for (std::size_t i = 0; fits && i < first.size(); ++i) fits = i == ax || (*t)[i] == first[i];
    if (!fits)
      fail(fmt::format("inputs of shapes {} and {} differ off axis {}", shape_string(first),
                       shape_string(*t), ax));
    out[ax] += (*t)[ax];
  }
  result_elements(out);
  return out;
}

std::vector<std::int64_t> full_perm(std::vector<std::int64_t> perm, std::size_t r) {
  if (perm.empty())
    for (std::size_t i = r; i-- > 0;) perm.push_back(static_cast<std::int64_t>(i));
  std::vector<bool> seen(r);
  bool valid = perm.size() == r;
  for (std::size_t i = 0; valid && i < r; ++i) {
    valid = perm[i] >= 0 && perm[i] < static_cast<std::int64_t>(r) &&
            !seen[static_cast<std::size_t>(perm[i])];
    if (valid) seen[static_cast<std::size_t>(perm[i])] = true;
  }
  if (!valid)
    fail(fmt::format("perm {} is not a permutation of a rank-{} tensor's axes", shape_string(perm),
                     r));
  return perm;
}

}  // namespace unifn::onnx_model
