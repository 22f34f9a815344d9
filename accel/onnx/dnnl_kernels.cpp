// oneDNN primitives for the ONNX operators it has, on plain row-major float32 memory. Primitives
// are made per call from the shapes at hand: shapes may depend on a run's inputs (Reshape's shape).
#include "accel/onnx/dnnl_kernels.h"

#include <stdexcept>
#include <unordered_map>

#include <fmt/format.h>
#include <oneapi/dnnl/dnnl.hpp>

namespace unifn::onnx_model {

namespace {

using dnnl::memory;
using Dims = memory::dims;

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

// A result of the given (checked) shape, in fresh host memory.
Operand zeros(std::vector<std::int64_t> dims) {
  Operand y{DType::Float, std::move(dims), {}, nullptr};
  auto n = static_cast<std::size_t>(element_count(y.dims));
  if (n > 0) y.data = std::shared_ptr<float>(new float[n](), std::default_delete<float[]>());
  return y;
}

Dims minus_one(const std::vector<std::int64_t>& v) {  // ONNX dilation 1 is oneDNN dilation 0
  Dims d(v.begin(), v.end());
  for (auto& x : d) x -= 1;
  return d;
}

class DnnlKernels final : public Kernels {
 public:
  // Safe: an operand aliases a caller's tensor only for reading (operands are never written once
  // made); the const_cast only satisfies shared_ptr<float>, which holds no ownership here.
  Operand upload(const Tensor& t) override {
    Operand x{DType::Float, t.dims, {}, nullptr};
    if (!t.f.empty())
      x.data = std::shared_ptr<float>(std::shared_ptr<void>(), const_cast<float*>(t.f.data()));
    return x;
  }
  std::vector<float> download(const Operand& x) override {
    auto n = static_cast<std::size_t>(std::max<std::int64_t>(x.elements(), 0));
    return x.data ? std::vector<float>(x.data.get(), x.data.get() + n) : std::vector<float>(n);
  }

  Operand conv(const Operand& x, const Operand& w, const Operand* bias,
               const ConvGeometry& geo) override {
    const Window& win = geo.window;
    std::int64_t g = geo.group, m = w.dims[0], c = x.dims[1];
    Operand y = zeros(geo.out);
    Dims wd(w.dims.begin(), w.dims.end());
    if (g > 1) {  // the same memory seen as [g, m/g, c/g, k...]
      wd = {g, m / g, c / g};
      wd.insert(wd.end(), win.kernel.begin(), win.kernel.end());
    }
    memory::desc src = plain(as_dims(x.dims)), wmd = plain(wd), dst = plain(as_dims(y.dims));
    memory::desc bmd = bias ? plain(Dims{m}) : memory::desc();
    dnnl::convolution_forward::desc desc(
        dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src, wmd, bmd, dst,
        win.strides, minus_one(win.dilations), win.pad_begin, win.pad_end);
    dnnl::convolution_forward p({desc, engine_});
    std::unordered_map<int, memory> args{
        {DNNL_ARG_SRC, mem(src, x)}, {DNNL_ARG_WEIGHTS, mem(wmd, w)}, {DNNL_ARG_DST, mem(dst, y)}};
    if (bias) args.emplace(DNNL_ARG_BIAS, mem(bmd, *bias));
    run(p, args);
    return y;
  }

  Operand pool(const Operand& x, bool max, bool count_include_pad, const Window& win,
               const std::vector<std::int64_t>& out) override {
    Operand y = zeros(out);
    auto alg = max                 ? dnnl::algorithm::pooling_max
               : count_include_pad ? dnnl::algorithm::pooling_avg_include_padding
                                   : dnnl::algorithm::pooling_avg_exclude_padding;
    memory::desc src = plain(as_dims(x.dims)), dst = plain(as_dims(y.dims));
    dnnl::pooling_v2_forward::desc desc(dnnl::prop_kind::forward_inference, alg, src, dst,
                                        win.strides, win.kernel, minus_one(win.dilations),
                                        win.pad_begin, win.pad_end);
    dnnl::pooling_v2_forward p({desc, engine_});
    run(p, {{DNNL_ARG_SRC, mem(src, x)}, {DNNL_ARG_DST, mem(dst, y)}});
    return y;
  }

  Operand batch_norm(const Operand& x, const Operand& scale, const Operand& shift,
                     const Operand& mean, const Operand& var, float epsilon) override {
    Operand y = zeros(x.dims);
    memory::desc src = plain(as_dims(x.dims)), per_c = plain(Dims{x.dims[1]});
    auto flags = dnnl::normalization_flags::use_global_stats |
                 dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
    dnnl::batch_normalization_forward::desc desc(dnnl::prop_kind::forward_inference, src, epsilon,
                                                 flags);
    dnnl::batch_normalization_forward p({desc, engine_});
    run(p, {{DNNL_ARG_SRC, mem(src, x)},
            {DNNL_ARG_DST, mem(src, y)},
            {DNNL_ARG_MEAN, mem(per_c, mean)},
            {DNNL_ARG_VARIANCE, mem(per_c, var)},
            {DNNL_ARG_SCALE, mem(per_c, scale)},
            {DNNL_ARG_SHIFT, mem(per_c, shift)}});
    return y;
  }

  Operand eltwise(Eltwise kind, const Operand& x, float alpha, float beta) override {
    using A = dnnl::algorithm;
    A alg = kind == Eltwise::Sigmoid ? A::eltwise_logistic
            : kind == Eltwise::Tanh  ? A::eltwise_tanh
            : kind == Eltwise::Clip  ? A::eltwise_clip_v2
                                     : A::eltwise_relu;  // Relu: alpha 0; LeakyRelu: its alpha
    return eltwise(alg, x, kind == Eltwise::Relu ? 0 : alpha, beta);
  }

  Operand binary(Binary kind, const Operand& a, const Operand& b,
                 const std::vector<std::int64_t>& out) override {
    using A = dnnl::algorithm;
    A alg = kind == Binary::Add   ? A::binary_add
            : kind == Binary::Sub ? A::binary_sub
            : kind == Binary::Mul ? A::binary_mul
                                  : A::binary_div;
    return binary(alg, a, b, out);
  }

  Operand matmul(const Operand& a, const Operand& b, const MatMulGeometry& geo) override {
    Operand y = zeros(geo.y);
    memory::desc amd = plain(as_dims(geo.a)), bmd = plain(as_dims(geo.b)),
                 ymd = plain(as_dims(geo.y));
    if (y.data) {
      dnnl::matmul p({{amd, bmd, ymd}, engine_});
      run(p, {{DNNL_ARG_SRC, mem(amd, a)},
              {DNNL_ARG_WEIGHTS, mem(bmd, b)},
              {DNNL_ARG_DST, mem(ymd, y)}});
    }
    y.dims = geo.result;
    return y;
  }

  Operand gemm(const Operand& a, const Operand& b, const Operand* c, const GemmAttrs& g,
               const GemmGeometry& geo) override {
    std::int64_t m = geo.m, n = geo.n, k = geo.k;
    Operand y = zeros({m, n});
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
    dnnl::matmul p({{amd, bmd, ymd}, attr, engine_});
    run(p, {{DNNL_ARG_SRC, mem(amd, a)},
            {DNNL_ARG_WEIGHTS, mem(bmd, b)},
            {DNNL_ARG_DST, mem(ymd, y)}});
    if (!c) return y;
    if (g.beta == 1) return binary(dnnl::algorithm::binary_add, y, *c, y.dims);
    return binary(dnnl::algorithm::binary_add, y,
                  eltwise(dnnl::algorithm::eltwise_linear, *c, g.beta, 0.f), y.dims);
  }

  Operand softmax(const Operand& x, const std::vector<std::int64_t>& dims, std::int64_t axis,
                  bool log) override {
    Operand y = zeros(x.dims);
    if (!y.data) return y;
    memory::desc md = plain(Dims(dims.begin(), dims.end()));
    auto alg = log ? dnnl::algorithm::softmax_log : dnnl::algorithm::softmax_accurate;
    dnnl::softmax_v2_forward p(
        {{dnnl::prop_kind::forward_inference, alg, md, md, static_cast<int>(axis)}, engine_});
    run(p, {{DNNL_ARG_SRC, mem(md, x)}, {DNNL_ARG_DST, mem(md, y)}});
    return y;
  }

  Operand concat(const std::vector<const Operand*>& xs, std::int64_t axis,
                 const std::vector<std::int64_t>& out) override {
    std::vector<memory::desc> mds;
    std::unordered_map<int, memory> args;
    for (const Operand* t : xs) {
      if (!t->data) continue;  // oneDNN takes no empty sources; they add nothing
      mds.push_back(plain(as_dims(t->dims)));
      args.emplace(DNNL_ARG_MULTIPLE_SRC + static_cast<int>(mds.size() - 1), mem(mds.back(), *t));
    }
    Operand y = zeros(out);
    if (!y.data) return y;
    memory::desc ymd = plain(as_dims(out));
    args.emplace(DNNL_ARG_DST, mem(ymd, y));
    dnnl::concat p({ymd, static_cast<int>(axis), mds, engine_});
    run(p, args);
    return y;
  }

  Operand transpose(const Operand& x, const std::vector<std::int64_t>& perm,
                    const std::vector<std::int64_t>& out) override {
    std::size_t r = x.dims.size();
    Dims in_strides = strides_of(Dims(x.dims.begin(), x.dims.end())), view(r);
    for (std::size_t i = 0; i < r; ++i) view[i] = in_strides[static_cast<std::size_t>(perm[i])];
    Operand y = zeros(out);
    if (!y.data) return y;
    // The input read in the output's axis order (its strides permuted), written out densely.
    Dims od(out.begin(), out.end());
    memory::desc src(od, memory::data_type::f32, view), dst = plain(od);
    memory s = mem(src, x), t = mem(dst, y);
    guard([&] {
      dnnl::reorder(s, t).execute(stream_, s, t);
      stream_.wait();
    });
    return y;
  }

 private:
  memory mem(const memory::desc& md, const Operand& t) { return memory(md, engine_, t.data.get()); }

  // oneDNN's errors made sentences naming the library and its status.
  template <class F>
  static void guard(F&& f) {
    try {
      f();
    } catch (const dnnl::error& e) {
      throw std::runtime_error(
          fmt::format("oneDNN: {} ({})", e.what(), static_cast<int>(e.status)));
    }
  }
  void run(const dnnl::primitive& p, const std::unordered_map<int, memory>& args) {
    guard([&] {
      p.execute(stream_, args);
      stream_.wait();
    });
  }

  Operand eltwise(dnnl::algorithm alg, const Operand& x, float alpha, float beta) {
    Operand y = zeros(x.dims);
    if (!y.data) return y;
    memory::desc md = plain(as_dims(x.dims));
    dnnl::eltwise_forward p({{dnnl::prop_kind::forward_inference, alg, md, alpha, beta}, engine_});
    run(p, {{DNNL_ARG_SRC, mem(md, x)}, {DNNL_ARG_DST, mem(md, y)}});
    return y;
  }

  Operand binary(dnnl::algorithm alg, const Operand& a, const Operand& b,
                 const std::vector<std::int64_t>& out) {
    Operand y = zeros(out);
    if (!y.data) return y;
    std::size_t r = std::max<std::size_t>(out.size(), 1);
    Dims od = as_dims(out), ad = with_leading_ones(a.dims, r), bd = with_leading_ones(b.dims, r);
    // oneDNN broadcasts only its second source: a first source smaller than the result is first
    // expanded by adding it to zeros.
    const Operand* first = &a;
    Operand expanded;
    if (ad != od) {
      expanded = zeros(out);
      memory::desc z = plain(od), amd = plain(ad);
      dnnl::binary grow({{dnnl::algorithm::binary_add, z, amd, z}, engine_});
      run(grow, {{DNNL_ARG_SRC_0, mem(z, expanded)},
                 {DNNL_ARG_SRC_1, mem(amd, a)},
                 {DNNL_ARG_DST, mem(z, expanded)}});
      first = &expanded;
    }
    memory::desc omd = plain(od), bmd = plain(bd);
    dnnl::binary p({{alg, omd, bmd, omd}, engine_});
    run(p, {{DNNL_ARG_SRC_0, mem(omd, *first)},
            {DNNL_ARG_SRC_1, mem(bmd, b)},
            {DNNL_ARG_DST, mem(omd, y)}});
    return y;
  }

  dnnl::engine engine_{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream_{engine_};
};

}  // namespace

Kernels& dnnl_kernels() {
  static thread_local DnnlKernels k;
  return k;
}

}  // namespace unifn::onnx_model
