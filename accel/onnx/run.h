// Runs a loaded ONNX graph on the CPU: inputs checked against the model first, then node by node.
#pragma once

#include <span>
#include <vector>

#include "accel/onnx/expected.h"
#include "accel/onnx/model.h"
#include "accel/onnx/tensor.h"

namespace unifn::onnx_model {

struct RunOptions {
  // The threads oneDNN's OpenMP teams use for this run. One by default: the daemon runs many
  // guests' calls at once, and OpenMP threads that spin-wait on shared cores cost milliseconds per
  // operator (measured on a busy 2-core machine: 3 ms per 4-element Relu with 2 threads, 7 us with
  // 1).
  int threads = 1;
};

// `inputs` in the order of graph.inputs; the result in the order of graph.outputs. An input whose
// type, rank or sizes disagree with the model is refused before any node runs; an error while
// running names the node.
Expected<std::vector<Tensor>> run(const Graph& graph, std::span<const Tensor> inputs,
                                  RunOptions options = {});

}  // namespace unifn::onnx_model
