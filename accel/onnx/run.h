// Runs a loaded ONNX graph on the CPU: inputs checked against the model first, then node by node.
#pragma once

#include <span>
#include <vector>

#include "accel/onnx/expected.h"
#include "accel/onnx/model.h"
#include "accel/onnx/tensor.h"

namespace unifn::onnx_model {

// `inputs` in the order of graph.inputs; the result in the order of graph.outputs. An input whose type,
// rank or sizes disagree with the model is refused before any node runs; an error while running
// names the node.
Expected<std::vector<Tensor>> run(const Graph& graph, std::span<const Tensor> inputs);

}  // namespace unifn::onnx_model
