// Ranks checked before ONNX's shape inference runs: some of its inference functions (Gemm before
// opset 7, for one) index dims without checking the rank, and crash on a hostile model.
#pragma once

#include <string>

#include <onnx/onnx_pb.h>

namespace unifn::onnx_model {

// Follows each tensor's rank through the graph (where the model declares it) and checks every
// node's inputs and rank-sized attributes against the rules of its operator. Call after the checker
// (which makes sure inputs are defined before use and attributes have their types), only on graphs
// whose nodes are all supported operators. Answers the sentence that refuses the model, or "".
std::string rank_problem(const onnx::GraphProto& g);

}  // namespace unifn::onnx_model
