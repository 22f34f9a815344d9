// The graph walk: input checks, the shape-only operators in plain C++, the rest through oneDNN.
#include "accel/onnx/run.h"

#include <dlfcn.h>

#include <map>
#include <stdexcept>

#include <fmt/format.h>

#include "accel/onnx/dnnl_ops.h"

namespace unifn::onnx_model {

namespace {

[[noreturn]] void fail(std::string why) { throw std::runtime_error(std::move(why)); }

// "[1, batch, ?]": fixed sizes, named sizes, unknown ones.
std::string declared_shape(const Value& v) {
  std::string s;
  for (const Dim& d : v.dims)
    s += (s.empty() ? "" : ", ") + (d.value >= 0      ? std::to_string(d.value)
                                    : d.param.empty() ? "?"
                                                      : d.param);
  return "[" + s + "]";
}

std::string check_inputs(const Graph& g, std::span<const Tensor> inputs) {
  if (inputs.size() != g.inputs.size())
    return fmt::format("the model takes {} inputs, {} were given", g.inputs.size(), inputs.size());
  std::map<std::string, std::int64_t> named;  // a dim_param's size, fixed by its first use
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    const Value& v = g.values[static_cast<std::size_t>(g.inputs[k])];
    const Tensor& t = inputs[k];
    if (t.type != v.type)
      return fmt::format("input '{}' is {}, where the model takes {}", v.name, to_string(t.type),
                         to_string(v.type));
    std::int64_t n = t.elements();
    if (n < 0)
      return fmt::format("input '{}' has shape {}, outside what is allowed", v.name,
                         shape_string(t.dims));
    if (static_cast<std::int64_t>(t.stored()) != n)
      return fmt::format("input '{}' has shape {} ({} elements) but {} values", v.name,
                         shape_string(t.dims), n, t.stored());
    if (!v.shape_known) continue;
    auto refuse = [&] {
      return fmt::format("input '{}' has shape {}, where the model takes {}", v.name,
                         shape_string(t.dims), declared_shape(v));
    };
    if (t.dims.size() != v.dims.size()) return refuse();
    for (std::size_t i = 0; i < t.dims.size(); ++i) {
      const Dim& d = v.dims[i];
      if (d.value >= 0 && t.dims[i] != d.value) return refuse();
      if (d.value < 0 && !d.param.empty()) {
        auto [it, fresh] = named.emplace(d.param, t.dims[i]);
        if (!fresh && it->second != t.dims[i])
          return fmt::format("input '{}' has size {} for '{}', which another input gives as {}",
                             v.name, t.dims[i], d.param, it->second);
      }
    }
  }
  return {};
}

// OpenMP's omp_set_num_threads, found in the runtime oneDNN already loaded (libgomp with Debian's
// libdnnl), so that nothing here is compiled with OpenMP. It sets the calling thread's team size.
void set_threads(int n) {
  using SetThreads = void (*)(int);
  // Safe: dlsym answers the function's address or null; the type is omp_set_num_threads's own.
  static auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  if (set && n > 0) set(n);
}

float scalar(const Tensor* t, float def, const char* what) {
  if (!t) return def;
  if (t->f.size() != 1)
    fail(fmt::format("{} has shape {}, not a single value", what, shape_string(t->dims)));
  return t->f[0];
}

Tensor flatten(const Tensor& x, std::int64_t axis) {
  std::int64_t ax = normalize_axis(axis, x.dims.size(), true);
  std::int64_t outer = 1, inner = 1;
  for (std::size_t i = 0; i < x.dims.size(); ++i)
    (static_cast<std::int64_t>(i) < ax ? outer : inner) *= x.dims[i];
  Tensor y = x;
  y.dims = {outer, inner};
  return y;
}

Tensor reshape(const Tensor& x, const Tensor& shape, bool allowzero) {
  if (shape.dims.size() != 1)
    fail(fmt::format("the shape input has shape {}, not a vector", shape_string(shape.dims)));
  std::vector<std::int64_t> out = shape.i;
  int infer = -1;
  std::int64_t known = 1;
  for (std::size_t k = 0; k < out.size(); ++k) {
    if (out[k] == 0 && !allowzero) {
      if (k >= x.dims.size())
        fail(fmt::format("shape {} copies dim {} of a rank-{} input", shape_string(shape.i), k,
                         x.dims.size()));
      out[k] = x.dims[k];
    }
    if (out[k] == -1) {
      if (infer >= 0) fail(fmt::format("shape {} has more than one -1", shape_string(shape.i)));
      infer = static_cast<int>(k);
      continue;
    }
    if (out[k] < 0) fail(fmt::format("shape {} has a negative size", shape_string(shape.i)));
    if (element_count({known, out[k]}) < 0)
      fail(fmt::format("shape {} has too many elements", shape_string(shape.i)));
    known *= out[k];
  }
  std::int64_t n = x.elements();
  if (infer >= 0) {
    if (known == 0 || n % known != 0)
      fail(fmt::format("shape {} does not fit {} elements", shape_string(shape.i), n));
    out[static_cast<std::size_t>(infer)] = n / known;
  }
  if (element_count(out) != n)
    fail(fmt::format("shape {} does not hold the {} elements of shape {}", shape_string(out), n,
                     shape_string(x.dims)));
  Tensor y = x;
  y.dims = std::move(out);
  return y;
}

// Squeeze removes the size-1 dims at axes (all of them when axes is empty); Unsqueeze inserts
// size-1 dims so that they stand at axes in the result.
Tensor squeeze(const Tensor& x, std::vector<std::int64_t> axes, bool unsqueeze) {
  std::size_t rank = unsqueeze ? x.dims.size() + axes.size() : x.dims.size();
  std::vector<bool> at(rank);
  for (auto& a : axes) {
    auto k = static_cast<std::size_t>(normalize_axis(a, rank));
    if (at[k]) fail(fmt::format("axes {} name axis {} twice", shape_string(axes), k));
    at[k] = true;
  }
  Tensor y = x;
  y.dims.clear();
  if (unsqueeze) {
    for (std::size_t k = 0, from = 0; k < rank; ++k) y.dims.push_back(at[k] ? 1 : x.dims[from++]);
    return y;
  }
  for (std::size_t k = 0; k < rank; ++k) {
    bool drop = axes.empty() ? x.dims[k] == 1 : at[k];
    if (drop && x.dims[k] != 1)
      fail(fmt::format("axis {} of shape {} is not of size 1", k, shape_string(x.dims)));
    if (!drop) y.dims.push_back(x.dims[k]);
  }
  return y;
}

class Walk {
 public:
  Walk(const Graph& g, std::span<const Tensor> inputs)
      : g_(g), at_(g.values.size()), held_(g.values.size()) {
    for (std::size_t k = 0; k < inputs.size(); ++k)
      at_[static_cast<std::size_t>(g.inputs[k])] = &inputs[k];
    for (const auto& [id, t] : g.initializers) at_[static_cast<std::size_t>(id)] = &t;
  }

  std::vector<Tensor> all() {
    for (const Node& n : g_.nodes) {
      try {
        Tensor y = node(n);
        auto out = static_cast<std::size_t>(n.outputs.at(0));
        agrees(g_.values[out], y);
        held_[out] = std::move(y);
        at_[out] = &held_[out];
      } catch (const dnnl::error& e) {
        fail(fmt::format("{}: oneDNN: {} ({})", n.label(), e.what(), static_cast<int>(e.status)));
      } catch (const std::exception& e) {
        fail(fmt::format("{}: {}", n.label(), e.what()));
      }
    }
    std::vector<Tensor> out;
    for (int id : g_.outputs) out.push_back(*at_[static_cast<std::size_t>(id)]);
    return out;
  }

 private:
  // A result must have the shape ONNX's shape inference gave its value at load, where it gave one:
  // the executor and the model's rules disagreeing is an error, not an answer.
  static void agrees(const Value& v, const Tensor& y) {
    if (!v.shape_known) return;
    bool same = v.dims.size() == y.dims.size();
    for (std::size_t i = 0; same && i < y.dims.size(); ++i)
      same = v.dims[i].value < 0 || v.dims[i].value == y.dims[i];
    if (!same)
      fail(fmt::format("output '{}' has shape {}, where shape inference gave {}", v.name,
                       shape_string(y.dims), declared_shape(v)));
  }

  const Tensor* in(const Node& n, std::size_t k) const {
    return k < n.inputs.size() && n.inputs[k] != kNoValue
               ? at_[static_cast<std::size_t>(n.inputs[k])]
               : nullptr;
  }
  const Tensor& need(const Node& n, std::size_t k) const {
    const Tensor* t = in(n, k);
    if (!t) fail(fmt::format("input {} is missing", k));
    return *t;
  }

  Tensor node(const Node& n) {
    using A = dnnl::algorithm;
    const Tensor& x = n.op == Op::Constant ? empty_ : need(n, 0);
    switch (n.op) {
      case Op::Conv:
        return conv(d_, x, need(n, 1), in(n, 2), std::get<WindowAttrs>(n.attrs));
      case Op::MaxPool:
      case Op::AveragePool:
        return pool(d_, n.op, x, std::get<WindowAttrs>(n.attrs));
      case Op::GlobalAveragePool:
        return global_average_pool(d_, x);
      case Op::BatchNormalization:
        return batch_norm(d_, x, need(n, 1), need(n, 2), need(n, 3), need(n, 4),
                          std::get<ScalarAttrs>(n.attrs).alpha);
      case Op::Relu:
        return eltwise(d_, A::eltwise_relu, x);
      case Op::LeakyRelu:
        return eltwise(d_, A::eltwise_relu, x, std::get<ScalarAttrs>(n.attrs).alpha);
      case Op::Sigmoid:
        return eltwise(d_, A::eltwise_logistic, x);
      case Op::Tanh:
        return eltwise(d_, A::eltwise_tanh, x);
      case Op::Clip: {
        const auto& s = std::get<ScalarAttrs>(n.attrs);
        return eltwise(d_, A::eltwise_clip_v2, x, scalar(in(n, 1), s.alpha, "min"),
                       scalar(in(n, 2), s.beta, "max"));
      }
      case Op::Add:
        return arithmetic(n, A::binary_add, x);
      case Op::Mul:
        return arithmetic(n, A::binary_mul, x);
      case Op::Sub:
        return arithmetic(n, A::binary_sub, x);
      case Op::Div:
        return arithmetic(n, A::binary_div, x);
      case Op::MatMul:
        return matmul(d_, x, need(n, 1));
      case Op::Gemm:
        return gemm(d_, x, need(n, 1), in(n, 2), std::get<GemmAttrs>(n.attrs));
      case Op::Softmax:
      case Op::LogSoftmax:
        return softmax(d_, x, std::get<AxisAttrs>(n.attrs).axis, n.version < 13,
                       n.op == Op::LogSoftmax);
      case Op::Concat: {
        std::vector<const Tensor*> xs;
        for (std::size_t k = 0; k < n.inputs.size(); ++k) xs.push_back(&need(n, k));
        return concat(d_, xs, std::get<AxisAttrs>(n.attrs).axis);
      }
      case Op::Transpose:
        return transpose(d_, x, std::get<PermAttrs>(n.attrs).perm);
      case Op::Flatten:
        return flatten(x, std::get<AxisAttrs>(n.attrs).axis);
      case Op::Reshape:
        return reshape(x, need(n, 1), std::get<ReshapeAttrs>(n.attrs).allowzero);
      case Op::Squeeze:
      case Op::Unsqueeze: {
        const Tensor* axes = in(n, 1);  // from opset 13; before it, the attribute
        return squeeze(x, axes ? axes->i : std::get<AxesAttrs>(n.attrs).axes,
                       n.op == Op::Unsqueeze);
      }
      case Op::Dropout:
      case Op::Identity:
        return x;
      case Op::Constant:
        return std::get<ConstantAttrs>(n.attrs).value;
    }
    fail("the operator has no implementation");
  }

  Tensor arithmetic(const Node& n, dnnl::algorithm alg, const Tensor& a) {
    const Tensor& b = need(n, 1);
    const auto& attrs = std::get<BinaryAttrs>(n.attrs);
    if (!attrs.legacy) return binary(d_, alg, a, b);
    // Before opset 7: B equal to A, or with broadcast=1 fitted into A's dims at axis (the last ones
    // without it), which numpy's rules then reproduce once B has trailing ones.
    Tensor fitted = b;
    if (attrs.broadcast && attrs.axis) {
      std::int64_t axis = normalize_axis(*attrs.axis, a.dims.size());
      auto trailing = static_cast<std::int64_t>(a.dims.size()) - axis -
                      static_cast<std::int64_t>(b.dims.size());
      if (trailing < 0)
        fail(fmt::format("B of shape {} does not fit A of shape {} at axis {}",
                         shape_string(b.dims), shape_string(a.dims), axis));
      fitted.dims.insert(fitted.dims.end(), static_cast<std::size_t>(trailing), 1);
    }
    if (!attrs.broadcast ? b.dims != a.dims : broadcast_shape(a.dims, fitted.dims) != a.dims)
      fail(fmt::format("B of shape {} does not fit A of shape {} (broadcast={})",
                       shape_string(b.dims), shape_string(a.dims), attrs.broadcast));
    return binary(d_, alg, a, fitted);
  }

  const Graph& g_;
  std::vector<const Tensor*>
      at_;  // each value's tensor: an input, an initializer or one held below
  std::vector<Tensor> held_;
  Tensor empty_;
  static thread_local Dnnl d_;
};

thread_local Dnnl Walk::d_;

}  // namespace

Expected<std::vector<Tensor>> run(const Graph& graph, std::span<const Tensor> inputs,
                                  RunOptions options) {
  if (auto why = check_inputs(graph, inputs); !why.empty()) return Error{why};
  set_threads(options.threads);
  try {
    return Walk(graph, inputs).all();
  } catch (const std::exception& e) {
    return Error{e.what()};
  }
}

}  // namespace unifn::onnx_model
