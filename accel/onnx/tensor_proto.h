// Converts ONNX's TensorProto (initializers, Constant values, test data) into a Tensor, with
// checks.
#pragma once

#include <string>

#include <onnx/onnx_pb.h>

#include "accel/onnx/expected.h"
#include "accel/onnx/tensor.h"

namespace unifn::onnx_model {

// Refuses external data, types other than float32 and int64, and data whose size disagrees with the
// dims. `what` names the tensor in the sentence ("initializer 'W'").
Expected<Tensor> from_proto(const onnx::TensorProto& p, const std::string& what);

}  // namespace unifn::onnx_model
