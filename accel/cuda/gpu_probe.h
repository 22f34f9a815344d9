// Finding the GPU: the probe both CUDA executors (the backend's ops and ONNX graphs) start with.
#pragma once

#include <cstddef>
#include <string>

#include <cuda_runtime_api.h>

namespace unifn::accel::cuda {

// "what: cudaErrorX (its description)".
std::string cuda_error(const char* what, cudaError_t e);

struct Gpu {
  std::string reason;  // why there is no GPU to use; "" when there is
  std::string name;
  std::size_t memory = 0;  // bytes of device memory
  cudaStream_t stream = nullptr;
};

// Device 0 and a non-blocking stream on it, or the reason there is none (no driver, no device).
Gpu open_gpu();

}  // namespace unifn::accel::cuda
