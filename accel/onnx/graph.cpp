// The typed graph's names: operators, node labels (no ONNX library needed).
#include "accel/onnx/op_info.h"

#include <array>

#include <fmt/format.h>

namespace unifn::onnx_model {

namespace {

constexpr std::array kOps{
    OpInfo{Op::Conv, "Conv", 1, ""},
    OpInfo{Op::MaxPool, "MaxPool", 1, ""},
    OpInfo{Op::AveragePool, "AveragePool", 1, ""},
    OpInfo{Op::GlobalAveragePool, "GlobalAveragePool", 1, ""},
    OpInfo{Op::BatchNormalization, "BatchNormalization", 1, ""},
    OpInfo{Op::Relu, "Relu", 1, ""},
    OpInfo{Op::LeakyRelu, "LeakyRelu", 1, ""},
    OpInfo{Op::Sigmoid, "Sigmoid", 1, ""},
    OpInfo{Op::Tanh, "Tanh", 1, ""},
    OpInfo{Op::Clip, "Clip", 1, ""},
    OpInfo{Op::Add, "Add", 1, ""},
    OpInfo{Op::Mul, "Mul", 1, ""},
    OpInfo{Op::Sub, "Sub", 1, ""},
    OpInfo{Op::Div, "Div", 1, ""},
    OpInfo{Op::MatMul, "MatMul", 1, ""},
    OpInfo{Op::Gemm, "Gemm", 1,
           ""},  // its old 'broadcast' flag only allows what numpy's rules allow
    OpInfo{Op::Softmax, "Softmax", 1, ""},
    OpInfo{Op::LogSoftmax, "LogSoftmax", 1, ""},
    OpInfo{Op::Concat, "Concat", 1, ""},
    OpInfo{Op::Transpose, "Transpose", 1, ""},
    OpInfo{Op::Flatten, "Flatten", 1, ""},
    OpInfo{Op::Reshape, "Reshape", 5, "older versions take the shape as an attribute"},
    OpInfo{Op::Squeeze, "Squeeze", 1, ""},
    OpInfo{Op::Unsqueeze, "Unsqueeze", 1, ""},
    OpInfo{Op::Dropout, "Dropout", 1, ""},
    OpInfo{Op::Constant, "Constant", 1, ""},
    OpInfo{Op::Identity, "Identity", 1, ""},
};

}  // namespace

const OpInfo* op_named(std::string_view s) {
  for (auto& info : kOps)
    if (s == info.name) return &info;
  return nullptr;
}

std::string_view to_string(Op op) {
  for (auto& info : kOps)
    if (info.op == op) return info.name;
  return "?";
}

std::string node_label(std::size_t index, std::string_view name, std::string_view op) {
  return name.empty() ? fmt::format("node {} ({})", index, op)
                      : fmt::format("node {} '{}' ({})", index, name, op);
}

std::string Node::label() const { return node_label(index, name, to_string(op)); }

}  // namespace unifn::onnx_model
