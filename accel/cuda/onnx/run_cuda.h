// Runs a loaded ONNX graph on the GPU: the same graph walk as the CPU executor (accel/onnx/walk.h),
// with cuDNN's convolution, cuBLAS's SGEMM and unifn's kernels; tensors stay on the device from
// the inputs' upload to the outputs' download.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "accel/onnx/expected.h"
#include "accel/onnx/model.h"
#include "accel/onnx/tensor.h"

namespace unifn::onnx_model {

struct CudaRunOptions {
  // Whether to use cuDNN and cuBLAS where they load; without them (or with these false) the
  // convolution and the matrix products run on unifn's own kernels.
  bool cudnn = true;
  bool cublas = true;
};

// Why this thread cannot run models on CUDA (no driver, no device ...), or "" when it can. The
// libraries are loaded at run time, so a machine without them or without a GPU still runs the
// binary.
std::string cuda_unavailable_reason();
// The device and libraries a run uses ("NVIDIA H200, cuDNN 9.13, cuBLAS"), or "" when unavailable.
std::string cuda_detail();

// The contract of onnx_model::run: `inputs` in the order of graph.inputs, the result in the order
// of graph.outputs, inputs checked before any node runs, errors naming the node. Without a usable
// GPU, an error that says "CUDA is unavailable: " and why.
Expected<std::vector<Tensor>> run_on_cuda(const Graph& graph, std::span<const Tensor> inputs,
                                          CudaRunOptions options = {});

}  // namespace unifn::onnx_model
