// What one run of a model costs, estimated once from its graph: the multiply-adds of its Conv,
// Gemm and MatMul nodes and one per element elsewhere, for the device's work limits and deadline.
#pragma once

#include <cstdint>

namespace unifn::onnx_model {
struct Graph;
}

namespace unifn::accel {

// Nodes whose sizes the model leaves open count only what is known (their fixed dimensions).
std::uint64_t model_multiply_adds(const onnx_model::Graph& g);

}  // namespace unifn::accel
