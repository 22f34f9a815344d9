// The graph walk shared by every executor: inputs checked against the model, the shape-only
// operators done here, the compute operators through a Kernels implementation.
#pragma once

#include <span>
#include <vector>

#include "accel/onnx/expected.h"
#include "accel/onnx/kernels.h"
#include "accel/onnx/model.h"
#include "accel/onnx/tensor.h"

namespace unifn::onnx_model {

// Why `inputs` do not fit the graph's inputs (count, type, rank, sizes), or "" when they do.
std::string input_problem(const Graph& graph, std::span<const Tensor> inputs);

// `inputs` in the order of graph.inputs; the result in the order of graph.outputs. Inputs are
// checked before any node runs; an error while running names the node.
Expected<std::vector<Tensor>> walk(const Graph& graph, std::span<const Tensor> inputs,
                                   Kernels& kernels);

}  // namespace unifn::onnx_model
