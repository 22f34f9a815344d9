// An ONNX model loaded from untrusted bytes: checked once by the ONNX library, refused with a
// sentence when it uses what the executor does not support, kept as a typed graph the executor
// walks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "accel/onnx/expected.h"
#include "accel/onnx/tensor.h"

namespace unifn::onnx_model {

// The largest model accepted: the bytes come from a guest, and protobuf holds them all in memory.
inline constexpr std::size_t kMaxModelBytes = std::size_t{64} << 20;
// The most nodes one graph may have: bounds the work of checking and running it (measured: a chain
// of 10,000 Relu loads in ~0.2 s, of 100,000 in ~2.3 s; a 64 MiB model of one Gemm in ~0.7 s).
inline constexpr std::size_t kMaxNodes = 10000;
// The default domain's opsets this executor knows (ONNX 1.12's newest is 17). Operators whose
// oldest versions mean something else (Add's broadcast attribute) are refused per node below their
// version.
inline constexpr std::int64_t kMinOpset = 1;
inline constexpr std::int64_t kMaxOpset = 17;

enum class Op {
  Conv,
  MaxPool,
  AveragePool,
  GlobalAveragePool,
  BatchNormalization,
  Relu,
  LeakyRelu,
  Sigmoid,
  Tanh,
  Clip,
  Add,
  Mul,
  Sub,
  Div,
  MatMul,
  Gemm,
  Softmax,
  LogSoftmax,
  Concat,
  Transpose,
  Flatten,
  Reshape,
  Squeeze,
  Unsqueeze,
  Dropout,
  Constant,
  Identity,
};
std::string_view to_string(Op op);

enum class AutoPad { NotSet, SameUpper, SameLower, Valid };

// Conv and the pools. Empty vectors mean the operator's defaults (filled in at run time from
// ranks).
struct WindowAttrs {
  std::vector<std::int64_t> kernel_shape, strides, pads, dilations;
  AutoPad auto_pad = AutoPad::NotSet;
  std::int64_t group = 1;          // Conv
  bool ceil_mode = false;          // pools
  bool count_include_pad = false;  // AveragePool
  bool operator==(const WindowAttrs&) const = default;
};
struct GemmAttrs {
  float alpha = 1, beta = 1;
  bool trans_a = false, trans_b = false;
  bool operator==(const GemmAttrs&) const = default;
};
struct ScalarAttrs {  // LeakyRelu's alpha, BatchNormalization's epsilon, Clip's bounds before opset
                      // 11
  float alpha = 0, beta = 0;
  bool operator==(const ScalarAttrs&) const = default;
};
struct AxisAttrs {  // Softmax, LogSoftmax, Concat, Flatten
  std::int64_t axis = 0;
  bool operator==(const AxisAttrs&) const = default;
};
struct PermAttrs {                 // Transpose
  std::vector<std::int64_t> perm;  // empty: reverse
  bool operator==(const PermAttrs&) const = default;
};
struct AxesAttrs {  // Squeeze and Unsqueeze before opset 13; from 13 the axes are an input
  std::vector<std::int64_t> axes;
  bool operator==(const AxesAttrs&) const = default;
};
// Add, Sub, Mul, Div before opset 7: no numpy broadcasting, but B fitted into A by a 'broadcast'
// flag and an 'axis' where B's dims start (suffix matching without it).
struct BinaryAttrs {
  bool legacy = false;
  bool broadcast = false;
  std::optional<std::int64_t> axis;
  bool operator==(const BinaryAttrs&) const = default;
};
struct ReshapeAttrs {
  bool allowzero = false;
  bool operator==(const ReshapeAttrs&) const = default;
};
struct ConstantAttrs {
  Tensor value;
  bool operator==(const ConstantAttrs&) const = default;
};
using Attrs = std::variant<std::monostate, WindowAttrs, GemmAttrs, ScalarAttrs, AxisAttrs,
                           PermAttrs, AxesAttrs, BinaryAttrs, ReshapeAttrs, ConstantAttrs>;

inline constexpr int kNoValue = -1;  // an optional input left out

// "node 3 'conv1' (Conv)", or "node 3 (Conv)" for a node without a name: how refusals name a node.
std::string node_label(std::size_t index, std::string_view name, std::string_view op);

struct Node {
  Op op;
  std::string name;   // as the model names it; may be empty
  std::size_t index;  // its position in the graph
  int version = 0;    // the operator's version (its schema's since_version) under the model's opset
  std::vector<int> inputs, outputs;  // value ids; kNoValue for an omitted optional input
  Attrs attrs;
  std::string label() const;  // "node 3 'conv1' (Conv)"
  bool operator==(const Node&) const = default;
};

// A declared dimension: a fixed size, a named size (same name, same size), or unknown.
struct Dim {
  std::int64_t value = -1;
  std::string param;
  bool operator==(const Dim&) const = default;
};

struct Value {
  std::string name;
  DType type = DType::Float;
  bool shape_known = false;  // whether dims below were declared or inferred
  std::vector<Dim> dims;
  bool operator==(const Value&) const = default;
};

struct Graph {
  std::int64_t opset = 0;
  std::vector<Value> values;
  std::vector<int> inputs;   // the values a caller supplies, in the model's order
  std::vector<int> outputs;  // the values run() returns, in the model's order
  std::vector<std::pair<int, Tensor>> initializers;
  std::vector<Node> nodes;  // in an order where each input is computed before its use
  // The model's metadata_props in its order (unifn.labels, unifn.mean ...: read by the guest).
  std::vector<std::pair<std::string, std::string>> metadata;
  bool operator==(const Graph&) const = default;
};

// The most bytes of metadata_props (keys and values) a model may carry.
inline constexpr std::size_t kMaxMetadataBytes = 64 * 1024;

// Parses, checks (onnx::checker), infers shapes (onnx::shape_inference) and refuses what the
// executor does not support, each refusal a sentence naming the node, its operator and the reason.
Expected<std::shared_ptr<const Graph>> load(std::span<const std::byte> bytes);

}  // namespace unifn::onnx_model
