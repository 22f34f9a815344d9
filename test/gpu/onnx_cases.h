// The file of ONNX cases the standalone GPU test runs: graphs parsed and run on the CPU executor
// where the ONNX library and oneDNN are (onnx_gpu_cases), read where they are not (gpu_onnx_test).
#pragma once

#include <cmath>
#include <cstddef>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "accel/onnx/serialize.h"

namespace unifn::onnx_model::gpu_cases {

struct Case {
  std::string name;  // "node/test_conv_with_strides_padding", "fashion-mnist/cnn"
  Graph graph;
  std::vector<Tensor> inputs;
  std::vector<Tensor> expected;  // the CPU executor's outputs
};

inline constexpr std::uint64_t kCasesMagic = 0x31534553'41435846;  // "FXCASES1" read as bytes

inline std::vector<std::byte> write_cases(const std::vector<Case>& cases) {
  ByteWriter w;
  w.u64(kCasesMagic);
  w.u64(cases.size());
  for (const Case& c : cases) {
    w.str(c.name);
    w.graph(c.graph);
    for (const auto* list : {&c.inputs, &c.expected}) {
      w.u64(list->size());
      for (const Tensor& t : *list) w.tensor(t);
    }
  }
  return w.bytes();
}

// Throws std::runtime_error with a sentence when the bytes are not such a file.
inline std::vector<Case> read_cases(std::span<const std::byte> bytes) {
  ByteReader r(bytes);
  if (r.u64() != kCasesMagic) throw std::runtime_error("not a file of ONNX GPU cases");
  std::vector<Case> cases(r.u64());
  for (Case& c : cases) {
    c.name = r.str();
    c.graph = r.graph();
    for (auto* list : {&c.inputs, &c.expected}) {
      list->resize(r.u64());
      for (Tensor& t : *list) t = r.tensor();
    }
  }
  if (!r.done()) throw std::runtime_error("bytes are left over after the last case");
  return cases;
}

// Where got and want differ by more than atol + rtol * |want| (or in type, shape or an int64
// value): a sentence naming the first such element, or "" when they agree.
inline std::string difference(const Tensor& got, const Tensor& want, float rtol, float atol) {
  if (got.type != want.type || got.dims != want.dims)
    return "the result is " + to_string(got.type) + " " + shape_string(got.dims) + ", not " +
           to_string(want.type) + " " + shape_string(want.dims);
  if (got.type == DType::Int64) return got.i == want.i ? "" : "int64 values differ";
  if (got.f.size() != want.f.size()) return "the value counts differ";
  for (std::size_t k = 0; k < got.f.size(); ++k) {
    float g = got.f[k], w = want.f[k];
    if (std::isnan(w) && std::isnan(g)) continue;
    if (!(std::fabs(g - w) <= atol + rtol * std::fabs(w)))
      return "element " + std::to_string(k) + " is " + std::to_string(g) + ", not " +
             std::to_string(w);
  }
  return "";
}

}  // namespace unifn::onnx_model::gpu_cases
