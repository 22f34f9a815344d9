// The compute operators on oneDNN's CPU engine, on plain row-major float32 memory.
#pragma once

#include "accel/onnx/kernels.h"

namespace unifn::onnx_model {

// Kernels on the calling thread's oneDNN engine and stream (made once per thread). Operands alias
// the caller's tensors; results live in host memory.
Kernels& dnnl_kernels();

}  // namespace unifn::onnx_model
