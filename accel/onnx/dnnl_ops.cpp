// oneDNN primitives for the ONNX operators it has, on plain row-major float32 memory. Primitives
// are made per call from the shapes at hand: shapes may depend on a run's inputs (Reshape's shape).
#include "accel/onnx/dnnl_ops.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <unordered_map>

#include <fmt/format.h>

#include "accel/onnx/window.h"

namespace unifn::onnx_model {

namespace {

using dnnl::memory;
using Dims = memory::dims;

[[noreturn]] void fail(std::string why) { throw std::runtime_error(std::move(why)); }

Dims strides_of(const Dims& d) {
  Dims s(d.size());
  std::int64_t acc = 1;
  for (std::size_t i = d.size(); i-- > 0;) {
    s[i] = acc;
    acc *= d[i];
  }
  return s;
}

// oneDNN has no 0-d memory: a scalar is a 1-element vector there.
Dims as_dims(const std::vector<std::int64_t>& v) {
  return v.empty() ? Dims{1} : Dims(v.begin(), v.end());
}
memory::desc plain(const Dims& d) { return memory::desc(d, memory::data_type::f32, strides_of(d)); }

// Safe: oneDNN only reads a source memory; the const_cast only satisfies memory's constructor.
memory source(Dnnl& d, const memory::desc& md, const Tensor& t) {
  return memory(md, d.engine, const_cast<float*>(t.f.data()));
}
memory target(Dnnl& d, const memory::desc& md, Tensor& t) {
  return memory(md, d.engine, t.f.data());
}

Tensor zeros(std::vector<std::int64_t> dims) {
  std::int64_t n = element_count(dims);
  if (n < 0)
    fail(fmt::format("a result of shape {} would pass the {} elements allowed", shape_string(dims),
                     kMaxTensorElements));
  return Tensor::floats(std::move(dims), std::vector<float>(static_cast<std::size_t>(n)));
}

Dims with_leading_ones(const std::vector<std::int64_t>& v, std::size_t rank) {
  Dims d(rank - v.size(), 1);
  d.insert(d.end(), v.begin(), v.end());
  return d;
}

void run(Dnnl& d, const dnnl::primitive& p, const std::unordered_map<int, memory>& args) {
  p.execute(d.stream, args);
  d.stream.wait();
}

Dims minus_one(const std::vector<std::int64_t>& v) {  // ONNX dilation 1 is oneDNN dilation 0
  Dims d(v.begin(), v.end());
  for (auto& x : d) x -= 1;
  return d;
}

void spatial_rank(const Tensor& x, const char* op) {
  if (x.dims.size() != 3 && x.dims.size() != 4)
    fail(fmt::format(
        "input of shape {} has rank {}: {} supports only 1-D and 2-D spatial data (rank 3 or 4)",
        shape_string(x.dims), x.dims.size(), op));
}

}  // namespace

std::int64_t normalize_axis(std::int64_t axis, std::size_t rank, bool inclusive) {
  auto r = static_cast<std::int64_t>(rank);
  if (axis < -r || axis > r || (axis == r && !inclusive))
    fail(fmt::format("axis {} is outside a rank-{} tensor", axis, rank));
  return axis < 0 ? axis + r : axis;
}

std::vector<std::int64_t> broadcast_shape(const std::vector<std::int64_t>& a,
                                          const std::vector<std::int64_t>& b) {
  std::size_t r = std::max(a.size(), b.size());
  Dims pa = with_leading_ones(a, r), pb = with_leading_ones(b, r);
  std::vector<std::int64_t> out(r);
  for (std::size_t i = 0; i < r; ++i) {
    if (pa[i] != pb[i] && pa[i] != 1 && pb[i] != 1)
      fail(fmt::format("shapes {} and {} do not broadcast", shape_string(a), shape_string(b)));
    out[i] = pa[i] == 1 ? pb[i] : pa[i];
  }
  return out;
}

Tensor conv(Dnnl& d, const Tensor& x, const Tensor& w, const Tensor* bias, const WindowAttrs& a) {
  spatial_rank(x, "Conv");
  if (w.dims.size() != x.dims.size())
    fail(fmt::format("weights of shape {} do not fit input of shape {}", shape_string(w.dims),
                     shape_string(x.dims)));
  std::int64_t n = x.dims[0], c = x.dims[1], m = w.dims[0], g = a.group;
  if (c != w.dims[1] * g || m % g != 0)
    fail(fmt::format("weights of shape {} with group {} do not fit input of shape {}",
                     shape_string(w.dims), g, shape_string(x.dims)));
  if (bias && (bias->dims.size() != 1 || bias->dims[0] != m))
    fail(fmt::format("bias of shape {} is not one value per output channel ({})",
                     shape_string(bias->dims), m));
  std::vector<std::int64_t> in(x.dims.begin() + 2, x.dims.end()),
      kernel(w.dims.begin() + 2, w.dims.end());
  if (!a.kernel_shape.empty() && a.kernel_shape != kernel)
    fail(fmt::format("kernel_shape {} disagrees with the weights' {}", shape_string(a.kernel_shape),
                     shape_string(kernel)));
  Window win = resolve_window(a, in, kernel);
  std::vector<std::int64_t> out_dims{n, m};
  out_dims.insert(out_dims.end(), win.out.begin(), win.out.end());
  Tensor y = zeros(out_dims);
  Dims wd(w.dims.begin(), w.dims.end());
  if (g > 1) {  // the same memory seen as [g, m/g, c/g, k...]
    wd = {g, m / g, c / g};
    wd.insert(wd.end(), kernel.begin(), kernel.end());
  }
  memory::desc src = plain(as_dims(x.dims)), wmd = plain(wd), dst = plain(as_dims(y.dims));
  memory::desc bmd = bias ? plain(Dims{m}) : memory::desc();
  dnnl::convolution_forward::desc desc(
      dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src, wmd, bmd, dst,
      win.strides, minus_one(win.dilations), win.pad_begin, win.pad_end);
  dnnl::convolution_forward p({desc, d.engine});
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, source(d, src, x)},
                                       {DNNL_ARG_WEIGHTS, source(d, wmd, w)},
                                       {DNNL_ARG_DST, target(d, dst, y)}};
  if (bias) args.emplace(DNNL_ARG_BIAS, source(d, bmd, *bias));
  run(d, p, args);
  return y;
}

Tensor pool(Dnnl& d, Op op, const Tensor& x, const WindowAttrs& a) {
  spatial_rank(x, to_string(op).data());
  std::vector<std::int64_t> in(x.dims.begin() + 2, x.dims.end());
  Window win = resolve_window(a, in, a.kernel_shape);
  std::vector<std::int64_t> out_dims{x.dims[0], x.dims[1]};
  out_dims.insert(out_dims.end(), win.out.begin(), win.out.end());
  Tensor y = zeros(out_dims);
  auto alg = op == Op::MaxPool     ? dnnl::algorithm::pooling_max
             : a.count_include_pad ? dnnl::algorithm::pooling_avg_include_padding
                                   : dnnl::algorithm::pooling_avg_exclude_padding;
  memory::desc src = plain(as_dims(x.dims)), dst = plain(as_dims(y.dims));
  dnnl::pooling_v2_forward::desc desc(dnnl::prop_kind::forward_inference, alg, src, dst,
                                      win.strides, win.kernel, minus_one(win.dilations),
                                      win.pad_begin, win.pad_end);
  dnnl::pooling_v2_forward p({desc, d.engine});
  run(d, p, {{DNNL_ARG_SRC, source(d, src, x)}, {DNNL_ARG_DST, target(d, dst, y)}});
  return y;
}

Tensor global_average_pool(Dnnl& d, const Tensor& x) {
  spatial_rank(x, "GlobalAveragePool");
  WindowAttrs a;
  a.kernel_shape.assign(x.dims.begin() + 2, x.dims.end());
  return pool(d, Op::AveragePool, x, a);
}

Tensor batch_norm(Dnnl& d, const Tensor& x, const Tensor& scale, const Tensor& shift,
                  const Tensor& mean, const Tensor& var, float epsilon) {
  if (x.dims.size() < 2)
    fail(fmt::format("input of shape {} has no channel dimension", shape_string(x.dims)));
  std::int64_t c = x.dims[1];
  for (const Tensor* t : {&scale, &shift, &mean, &var})
    if (t->dims.size() != 1 || t->dims[0] != c)
      fail(fmt::format("a parameter of shape {} is not one value per channel ({})",
                       shape_string(t->dims), c));
  Tensor y = zeros(x.dims);
  memory::desc src = plain(as_dims(x.dims)), per_c = plain(Dims{c});
  auto flags = dnnl::normalization_flags::use_global_stats | dnnl::normalization_flags::use_scale |
               dnnl::normalization_flags::use_shift;
  dnnl::batch_normalization_forward::desc desc(dnnl::prop_kind::forward_inference, src, epsilon,
                                               flags);
  dnnl::batch_normalization_forward p({desc, d.engine});
  run(d, p,
      {{DNNL_ARG_SRC, source(d, src, x)},
       {DNNL_ARG_DST, target(d, src, y)},
       {DNNL_ARG_MEAN, source(d, per_c, mean)},
       {DNNL_ARG_VARIANCE, source(d, per_c, var)},
       {DNNL_ARG_SCALE, source(d, per_c, scale)},
       {DNNL_ARG_SHIFT, source(d, per_c, shift)}});
  return y;
}

Tensor eltwise(Dnnl& d, dnnl::algorithm alg, const Tensor& x, float alpha, float beta) {
  Tensor y = zeros(x.dims);
  if (y.f.empty()) return y;
  memory::desc md = plain(as_dims(x.dims));
  dnnl::eltwise_forward p({{dnnl::prop_kind::forward_inference, alg, md, alpha, beta}, d.engine});
  run(d, p, {{DNNL_ARG_SRC, source(d, md, x)}, {DNNL_ARG_DST, target(d, md, y)}});
  return y;
}

Tensor binary(Dnnl& d, dnnl::algorithm alg, const Tensor& a, const Tensor& b) {
  std::vector<std::int64_t> out = broadcast_shape(a.dims, b.dims);
  Tensor y = zeros(out);
  if (y.f.empty()) return y;
  std::size_t r = std::max<std::size_t>(out.size(), 1);
  Dims od = as_dims(out), ad = with_leading_ones(a.dims, r), bd = with_leading_ones(b.dims, r);
  // oneDNN broadcasts only its second source: a first source smaller than the result is first
  // expanded by adding it to zeros.
  const Tensor* first = &a;
  Tensor expanded;
  if (ad != od) {
    expanded = zeros(out);
    memory::desc z = plain(od), amd = plain(ad);
    dnnl::binary grow({{dnnl::algorithm::binary_add, z, amd, z}, d.engine});
    run(d, grow,
        {{DNNL_ARG_SRC_0, target(d, z, expanded)},
         {DNNL_ARG_SRC_1, source(d, amd, a)},
         {DNNL_ARG_DST, target(d, z, expanded)}});
    first = &expanded;
  }
  memory::desc omd = plain(od), bmd = plain(bd);
  dnnl::binary p({{alg, omd, bmd, omd}, d.engine});
  run(d, p,
      {{DNNL_ARG_SRC_0, source(d, omd, *first)},
       {DNNL_ARG_SRC_1, source(d, bmd, b)},
       {DNNL_ARG_DST, target(d, omd, y)}});
  return y;
}

Tensor matmul(Dnnl& d, const Tensor& a, const Tensor& b) {
  if (a.dims.empty() || b.dims.empty()) fail("MatMul takes no scalars");
  std::vector<std::int64_t> ad = a.dims, bd = b.dims;
  bool a_vector = ad.size() == 1, b_vector = bd.size() == 1;
  if (a_vector) ad.insert(ad.begin(), 1);
  if (b_vector) bd.push_back(1);
  if (ad.back() != bd[bd.size() - 2])
    fail(fmt::format("shapes {} and {} do not multiply", shape_string(a.dims),
                     shape_string(b.dims)));
  std::vector<std::int64_t> batch =
      broadcast_shape({ad.begin(), ad.end() - 2}, {bd.begin(), bd.end() - 2});
  std::size_t r = batch.size() + 2;
  std::vector<std::int64_t> out = batch;
  out.push_back(ad[ad.size() - 2]);
  out.push_back(bd.back());
  Tensor y = zeros(out);
  memory::desc amd = plain(with_leading_ones(ad, r)), bmd = plain(with_leading_ones(bd, r)),
               ymd = plain(as_dims(out));
  dnnl::matmul p({{amd, bmd, ymd}, d.engine});
  run(d, p,
      {{DNNL_ARG_SRC, source(d, amd, a)},
       {DNNL_ARG_WEIGHTS, source(d, bmd, b)},
       {DNNL_ARG_DST, target(d, ymd, y)}});
  if (b_vector) y.dims.pop_back();
  if (a_vector) y.dims.erase(y.dims.end() - (b_vector ? 1 : 2));
  return y;
}

Tensor gemm(Dnnl& d, const Tensor& a, const Tensor& b, const Tensor* c, const GemmAttrs& g) {
  if (a.dims.size() != 2 || b.dims.size() != 2)
    fail(fmt::format("Gemm takes matrices, not shapes {} and {}", shape_string(a.dims),
                     shape_string(b.dims)));
  std::int64_t m = g.trans_a ? a.dims[1] : a.dims[0], k = g.trans_a ? a.dims[0] : a.dims[1];
  std::int64_t kb = g.trans_b ? b.dims[1] : b.dims[0], n = g.trans_b ? b.dims[0] : b.dims[1];
  if (k != kb)
    fail(fmt::format("shapes {} and {} do not multiply", shape_string(a.dims),
                     shape_string(b.dims)));
  Tensor y = zeros({m, n});
  // A transposed operand is the same memory read with swapped strides.
  memory::desc amd =
      g.trans_a ? memory::desc({m, k}, memory::data_type::f32, Dims{1, m}) : plain({m, k});
  memory::desc bmd =
      g.trans_b ? memory::desc({k, n}, memory::data_type::f32, Dims{1, k}) : plain({k, n});
  memory::desc ymd = plain({m, n});
  dnnl::primitive_attr attr;
  if (g.alpha != 1) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_linear, g.alpha, 0.f);
    attr.set_post_ops(ops);
  }
  dnnl::matmul p({{amd, bmd, ymd}, attr, d.engine});
  run(d, p,
      {{DNNL_ARG_SRC, source(d, amd, a)},
       {DNNL_ARG_WEIGHTS, source(d, bmd, b)},
       {DNNL_ARG_DST, target(d, ymd, y)}});
  if (!c || g.beta == 0) return y;
  if (broadcast_shape(c->dims, y.dims) != y.dims)
    fail(fmt::format("C of shape {} does not broadcast to the result's {}", shape_string(c->dims),
                     shape_string(y.dims)));
  if (g.beta == 1) return binary(d, dnnl::algorithm::binary_add, y, *c);
  return binary(d, dnnl::algorithm::binary_add, y,
                eltwise(d, dnnl::algorithm::eltwise_linear, *c, g.beta, 0.f));
}

Tensor softmax(Dnnl& d, const Tensor& x, std::int64_t axis, bool coerce_2d, bool log) {
  if (x.dims.empty()) fail("Softmax takes no scalar");
  std::int64_t ax = normalize_axis(axis, x.dims.size());
  Tensor y = zeros(x.dims);
  if (y.f.empty()) return y;
  Dims dims(x.dims.begin(), x.dims.end());
  if (coerce_2d) {  // before opset 13: the tensor as [outer, inner] at axis, softmax over inner
    auto mul = std::multiplies<std::int64_t>();
    dims = {std::accumulate(dims.begin(), dims.begin() + ax, std::int64_t{1}, mul),
            std::accumulate(dims.begin() + ax, dims.end(), std::int64_t{1}, mul)};
    ax = 1;
  }
  memory::desc md = plain(dims);
  auto alg = log ? dnnl::algorithm::softmax_log : dnnl::algorithm::softmax_accurate;
  dnnl::softmax_v2_forward p(
      {{dnnl::prop_kind::forward_inference, alg, md, md, static_cast<int>(ax)}, d.engine});
  run(d, p, {{DNNL_ARG_SRC, source(d, md, x)}, {DNNL_ARG_DST, target(d, md, y)}});
  return y;
}

Tensor concat(Dnnl& d, const std::vector<const Tensor*>& xs, std::int64_t axis) {
  if (xs.empty()) fail("Concat has no inputs");
  const auto& first = xs[0]->dims;
  if (first.empty()) fail("Concat takes no scalars");
  std::int64_t ax = normalize_axis(axis, first.size());
  std::vector<std::int64_t> out = first;
  out[static_cast<std::size_t>(ax)] = 0;
  std::vector<memory::desc> mds;
  std::unordered_map<int, memory> args;
  for (const Tensor* t : xs) {
    bool fits = t->dims.size() == first.size();
    for (std::size_t i = 0; fits && i < first.size(); ++i)
      fits = i == static_cast<std::size_t>(ax) || t->dims[i] == first[i];
    if (!fits)
      fail(fmt::format("inputs of shapes {} and {} differ off axis {}", shape_string(first),
                       shape_string(t->dims), ax));
    out[static_cast<std::size_t>(ax)] += t->dims[static_cast<std::size_t>(ax)];
    if (t->f.empty()) continue;  // oneDNN takes no empty sources; they add nothing
    mds.push_back(plain(as_dims(t->dims)));
    args.emplace(DNNL_ARG_MULTIPLE_SRC + static_cast<int>(mds.size() - 1),
                 source(d, mds.back(), *t));
  }
  Tensor y = zeros(out);
  if (y.f.empty()) return y;
  memory::desc ymd = plain(as_dims(out));
  args.emplace(DNNL_ARG_DST, target(d, ymd, y));
  dnnl::concat p({ymd, static_cast<int>(ax), mds, d.engine});
  run(d, p, args);
  return y;
}

Tensor transpose(Dnnl& d, const Tensor& x, std::vector<std::int64_t> perm) {
  std::size_t r = x.dims.size();
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
  if (r < 2) return x;
  Dims in_strides = strides_of(Dims(x.dims.begin(), x.dims.end())), out(r), view(r);
  for (std::size_t i = 0; i < r; ++i) {
    out[i] = x.dims[static_cast<std::size_t>(perm[i])];
    view[i] = in_strides[static_cast<std::size_t>(perm[i])];
  }
  Tensor y = zeros(std::vector<std::int64_t>(out.begin(), out.end()));
  if (y.f.empty()) return y;
  // The input read in the output's axis order (its strides permuted), written out densely.
  memory::desc src(out, memory::data_type::f32, view), dst = plain(out);
  memory s = source(d, src, x), t = target(d, dst, y);
  dnnl::reorder(s, t).execute(d.stream, s, t);
  d.stream.wait();
  return y;
}

}  // namespace unifn::onnx_model
