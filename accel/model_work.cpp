// The work estimate of a model run, from the shapes the ONNX shape inference declared.
#include "accel/model_work.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <variant>

#include "accel/onnx/model.h"

namespace unifn::accel {

namespace {

constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();

std::uint64_t mul(std::uint64_t a, std::uint64_t b) {
  return b != 0 && a > kMax / b ? kMax : a * b;
}
std::uint64_t add(std::uint64_t a, std::uint64_t b) { return a > kMax - b ? kMax : a + b; }

// A value's elements, counting an open dimension as 1.
std::uint64_t elements(const onnx_model::Value& v) {
  std::uint64_t n = 1;
  for (const auto& d : v.dims) n = mul(n, d.value > 0 ? static_cast<std::uint64_t>(d.value) : 1);
  return n;
}

std::optional<std::int64_t> dim(const onnx_model::Value& v, std::size_t i) {
  if (i >= v.dims.size() || v.dims[i].value < 0) return std::nullopt;
  return v.dims[i].value;
}

}  // namespace

std::uint64_t model_multiply_adds(const onnx_model::Graph& g) {
  using onnx_model::Op;
  const auto value = [&g](int id) -> const onnx_model::Value* {
    return id >= 0 && static_cast<std::size_t>(id) < g.values.size()
               ? &g.values[static_cast<std::size_t>(id)]
               : nullptr;
  };
  std::uint64_t total = 0;
  for (const auto& n : g.nodes) {
    const auto* out = n.outputs.empty() ? nullptr : value(n.outputs[0]);
    if (!out) continue;
    std::uint64_t per_output = 1;  // multiply-adds behind one output element
    const auto* a = n.inputs.size() > 0 ? value(n.inputs[0]) : nullptr;
    const auto* b = n.inputs.size() > 1 ? value(n.inputs[1]) : nullptr;
    if (n.op == Op::Conv && b) {  // W: [M, C/group, k...]
      for (std::size_t i = 1; i < b->dims.size(); ++i)
        per_output = mul(per_output, static_cast<std::uint64_t>(dim(*b, i).value_or(1)));
    } else if (const auto* gemm = std::get_if<onnx_model::GemmAttrs>(&n.attrs); gemm && a) {
      per_output = static_cast<std::uint64_t>(dim(*a, gemm->trans_a ? 0 : 1).value_or(1));
    } else if (n.op == Op::MatMul && a && !a->dims.empty()) {
      per_output = static_cast<std::uint64_t>(dim(*a, a->dims.size() - 1).value_or(1));
    } else if (const auto* w = std::get_if<onnx_model::WindowAttrs>(&n.attrs);
               w && (n.op == Op::MaxPool || n.op == Op::AveragePool)) {
      for (auto k : w->kernel_shape)
        per_output = mul(per_output, static_cast<std::uint64_t>(k > 0 ? k : 1));
    } else if (n.op == Op::GlobalAveragePool && a) {
      per_output = elements(*a) / std::max<std::uint64_t>(1, elements(*out));
    }
    total = add(total, mul(elements(*out), per_output));
  }
  return total;
}

}  // namespace unifn::accel
