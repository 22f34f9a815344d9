// The graph walk: input checks, the shape-only operators in plain C++, the rest through Kernels.
#include "accel/onnx/walk.h"

#include <map>
#include <optional>
#include <stdexcept>

#include <fmt/format.h>

#include "accel/onnx/shapes.h"

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

}  // namespace

std::string input_problem(const Graph& g, std::span<const Tensor> inputs) {
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

namespace {

Operand flatten(const Operand& x, std::int64_t axis) {
  std::int64_t ax = normalize_axis(axis, x.dims.size(), true);
  std::int64_t outer = 1, inner = 1;
  for (std::size_t i = 0; i < x.dims.size(); ++i)
    (static_cast<std::int64_t>(i) < ax ? outer : inner) *= x.dims[i];
  Operand y = x;
  y.dims = {outer, inner};
  return y;
}

Operand reshape(const Operand& x, const Operand& shape, bool allowzero) {
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
  Operand y = x;
  y.dims = std::move(out);
  return y;
}

// Squeeze removes the size-1 dims at axes (all of them when axes is empty); Unsqueeze inserts
// size-1 dims so that they stand at axes in the result.
Operand squeeze(const Operand& x, std::vector<std::int64_t> axes, bool unsqueeze) {
  std::size_t rank = unsqueeze ? x.dims.size() + axes.size() : x.dims.size();
  std::vector<bool> at(rank);
  for (auto& a : axes) {
    auto k = static_cast<std::size_t>(normalize_axis(a, rank));
    if (at[k]) fail(fmt::format("axes {} name axis {} twice", shape_string(axes), k));
    at[k] = true;
  }
  Operand y = x;
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
  Walk(const Graph& g, std::span<const Tensor> inputs, Kernels& k)
      : g_(g), k_(k), host_(g.values.size()), held_(g.values.size()) {
    for (std::size_t k = 0; k < inputs.size(); ++k)
      host_[static_cast<std::size_t>(g.inputs[k])] = &inputs[k];
    for (const auto& [id, t] : g.initializers) host_[static_cast<std::size_t>(id)] = &t;
  }

  std::vector<Tensor> all() {
    for (const Node& n : g_.nodes) {
      try {
        Operand y = node(n);
        auto out = static_cast<std::size_t>(n.outputs.at(0));
        agrees(g_.values[out], y);
        held_[out] = std::move(y);
      } catch (const std::exception& e) {
        fail(fmt::format("{}: {}", n.label(), e.what()));
      }
    }
    std::vector<Tensor> out;
    for (int id : g_.outputs) {
      const Operand& y = value(id);
      out.push_back(y.type == DType::Int64 ? Tensor::ints(y.dims, y.i)
                                           : Tensor::floats(y.dims, k_.download(y)));
    }
    return out;
  }

 private:
  // A result must have the shape ONNX's shape inference gave its value at load, where it gave one:
  // the executor and the model's rules disagreeing is an error, not an answer.
  static void agrees(const Value& v, const Operand& y) {
    if (!v.shape_known) return;
    bool same = v.dims.size() == y.dims.size();
    for (std::size_t i = 0; same && i < y.dims.size(); ++i)
      same = v.dims[i].value < 0 || v.dims[i].value == y.dims[i];
    if (!same)
      fail(fmt::format("output '{}' has shape {}, where shape inference gave {}", v.name,
                       shape_string(y.dims), declared_shape(v)));
  }

  Operand operand(const Tensor& t) {
    if (t.type == DType::Int64) return Operand{DType::Int64, t.dims, t.i, nullptr};
    return k_.upload(t);
  }

  // A value's operand: computed by a node, or an input or initializer handed to the kernels on
  // first use (so that the kernels see only the weights a run uses).
  const Operand& value(int id) {
    auto k = static_cast<std::size_t>(id);
    if (!held_[k]) {
      if (!host_[k])
        fail(fmt::format("value '{}' is used before it is computed", g_.values[k].name));
      held_[k] = operand(*host_[k]);
    }
    return *held_[k];
  }

  const Operand* in(const Node& n, std::size_t k) {
    return k < n.inputs.size() && n.inputs[k] != kNoValue ? &value(n.inputs[k]) : nullptr;
  }
  const Operand& need(const Node& n, std::size_t k) {
    const Operand* t = in(n, k);
    if (!t) fail(fmt::format("input {} is missing", k));
    return *t;
  }
  // The compute operators take float32 only; int64 values are shapes and axes.
  const Operand& real(const Node& n, std::size_t k) {
    const Operand& t = need(n, k);
    if (t.type != DType::Float)
      fail(fmt::format("input {} is {}, not float32", k, to_string(t.type)));
    return t;
  }
  const Operand* real_or_none(const Node& n, std::size_t k) {
    return in(n, k) ? &real(n, k) : nullptr;
  }

  float scalar(const Operand* t, float def, const char* what) {
    if (!t) return def;
    if (t->elements() != 1)
      fail(fmt::format("{} has shape {}, not a single value", what, shape_string(t->dims)));
    return k_.download(*t).at(0);
  }

  Operand node(const Node& n) {
    switch (n.op) {
      case Op::Conv: {
        const Operand &x = real(n, 0), &w = real(n, 1), *b = real_or_none(n, 2);
        auto geo =
            conv_geometry(x.dims, w.dims, b ? &b->dims : nullptr, std::get<WindowAttrs>(n.attrs));
        return k_.conv(x, w, b, geo);
      }
      case Op::MaxPool:
      case Op::AveragePool: {
        const Operand& x = real(n, 0);
        const auto& a = std::get<WindowAttrs>(n.attrs);
        auto geo = pool_geometry(x.dims, a.kernel_shape, a, to_string(n.op).data());
        return k_.pool(x, n.op == Op::MaxPool, a.count_include_pad, geo.window, geo.out);
      }
      case Op::GlobalAveragePool: {
        const Operand& x = real(n, 0);
        spatial_rank(x.dims, "GlobalAveragePool");
        WindowAttrs a;
        a.kernel_shape.assign(x.dims.begin() + 2, x.dims.end());
        auto geo = pool_geometry(x.dims, a.kernel_shape, a, "GlobalAveragePool");
        return k_.pool(x, false, false, geo.window, geo.out);
      }
      case Op::BatchNormalization: {
        const Operand& x = real(n, 0);
        if (x.dims.size() < 2)
          fail(fmt::format("input of shape {} has no channel dimension", shape_string(x.dims)));
        std::int64_t c = x.dims[1];
        for (std::size_t k = 1; k <= 4; ++k)
          if (const Operand& t = real(n, k); t.dims.size() != 1 || t.dims[0] != c)
            fail(fmt::format("a parameter of shape {} is not one value per channel ({})",
                             shape_string(t.dims), c));
        return k_.batch_norm(x, real(n, 1), real(n, 2), real(n, 3), real(n, 4),
                             std::get<ScalarAttrs>(n.attrs).alpha);
      }
      case Op::Relu:
        return k_.eltwise(Eltwise::Relu, real(n, 0), 0, 0);
      case Op::LeakyRelu:
        return k_.eltwise(Eltwise::LeakyRelu, real(n, 0), std::get<ScalarAttrs>(n.attrs).alpha, 0);
      case Op::Sigmoid:
        return k_.eltwise(Eltwise::Sigmoid, real(n, 0), 0, 0);
      case Op::Tanh:
        return k_.eltwise(Eltwise::Tanh, real(n, 0), 0, 0);
      case Op::Clip: {
        const auto& s = std::get<ScalarAttrs>(n.attrs);
        const Operand& x = real(n, 0);
        return k_.eltwise(Eltwise::Clip, x, scalar(in(n, 1), s.alpha, "min"),
                          scalar(in(n, 2), s.beta, "max"));
      }
      case Op::Add:
        return arithmetic(n, Binary::Add);
      case Op::Mul:
        return arithmetic(n, Binary::Mul);
      case Op::Sub:
        return arithmetic(n, Binary::Sub);
      case Op::Div:
        return arithmetic(n, Binary::Div);
      case Op::MatMul: {
        const Operand &a = real(n, 0), &b = real(n, 1);
        return k_.matmul(a, b, matmul_geometry(a.dims, b.dims));
      }
      case Op::Gemm: {
        const Operand &a = real(n, 0), &b = real(n, 1), *c = real_or_none(n, 2);
        const auto& attrs = std::get<GemmAttrs>(n.attrs);
        auto geo = gemm_geometry(a.dims, b.dims, c ? &c->dims : nullptr, attrs);
        return k_.gemm(a, b, attrs.beta == 0 ? nullptr : c, attrs, geo);
      }
      case Op::Softmax:
      case Op::LogSoftmax:
        return softmax(n);
      case Op::Concat: {
        std::vector<const Operand*> xs;
        std::vector<const Shape*> shapes;
        for (std::size_t k = 0; k < n.inputs.size(); ++k) {
          xs.push_back(&real(n, k));
          shapes.push_back(&xs.back()->dims);
        }
        if (xs.empty()) fail("Concat has no inputs");
        if (xs[0]->dims.empty()) fail("Concat takes no scalars");
        std::int64_t ax = normalize_axis(std::get<AxisAttrs>(n.attrs).axis, xs[0]->dims.size());
        return k_.concat(xs, ax, concat_shape(shapes, ax));
      }
      case Op::Transpose: {
        const Operand& x = real(n, 0);
        auto perm = full_perm(std::get<PermAttrs>(n.attrs).perm, x.dims.size());
        if (x.dims.size() < 2) return x;
        Shape out;
        for (auto p : perm) out.push_back(x.dims[static_cast<std::size_t>(p)]);
        return k_.transpose(x, perm, out);
      }
      case Op::Flatten:
        return flatten(need(n, 0), std::get<AxisAttrs>(n.attrs).axis);
      case Op::Reshape:
        return reshape(need(n, 0), need(n, 1), std::get<ReshapeAttrs>(n.attrs).allowzero);
      case Op::Squeeze:
      case Op::Unsqueeze: {
        const Operand* axes = in(n, 1);  // from opset 13; before it, the attribute
        return squeeze(need(n, 0), axes ? axes->i : std::get<AxesAttrs>(n.attrs).axes,
                       n.op == Op::Unsqueeze);
      }
      case Op::Dropout:
      case Op::Identity:
        return need(n, 0);
      case Op::Constant:
        return operand(std::get<ConstantAttrs>(n.attrs).value);
    }
    fail("the operator has no implementation");
  }

  Operand softmax(const Node& n) {
    const Operand& x = real(n, 0);
    if (x.dims.empty()) fail("Softmax takes no scalar");
    std::int64_t ax = normalize_axis(std::get<AxisAttrs>(n.attrs).axis, x.dims.size());
    Shape dims = x.dims;
    if (n.version < 13) {  // before opset 13: the tensor as [outer, inner] at axis, over inner
      std::int64_t outer = 1, inner = 1;
      for (std::size_t i = 0; i < dims.size(); ++i)
        (static_cast<std::int64_t>(i) < ax ? outer : inner) *= dims[i];
      dims = {outer, inner};
      ax = 1;
    }
    return k_.softmax(x, dims, ax, n.op == Op::LogSoftmax);
  }

  Operand arithmetic(const Node& n, Binary kind) {
    const Operand &a = real(n, 0), &b = real(n, 1);
    const auto& attrs = std::get<BinaryAttrs>(n.attrs);
    if (!attrs.legacy) return k_.binary(kind, a, b, broadcast_shape(a.dims, b.dims));
    // Before opset 7: B equal to A, or with broadcast=1 fitted into A's dims at axis (the last ones
    // without it), which numpy's rules then reproduce once B has trailing ones.
    Operand fitted = b;
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
    return k_.binary(kind, a, fitted, a.dims);
  }

  const Graph& g_;
  Kernels& k_;
  std::vector<const Tensor*> host_;           // inputs and initializers, as the caller holds them
  std::vector<std::optional<Operand>> held_;  // each value's operand, once made
};

}  // namespace

Expected<std::vector<Tensor>> walk(const Graph& graph, std::span<const Tensor> inputs,
                                   Kernels& kernels) {
  if (auto why = input_problem(graph, inputs); !why.empty()) return Error{why};
  try {
    return Walk(graph, inputs, kernels).all();
  } catch (const std::exception& e) {
    return Error{e.what()};
  }
}

}  // namespace unifn::onnx_model
