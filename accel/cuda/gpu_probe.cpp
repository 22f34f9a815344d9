// The GPU probe (see gpu_probe.h).
#include "accel/cuda/gpu_probe.h"

namespace unifn::accel::cuda {

std::string cuda_error(const char* what, cudaError_t e) {
  return std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
}

Gpu open_gpu() {
  Gpu g;
  int n = 0;
  if (cudaError_t e = cudaGetDeviceCount(&n); e != cudaSuccess) {
    g.reason = cuda_error("no usable CUDA driver or device: cudaGetDeviceCount", e);
    return g;
  }
  if (n == 0) {
    g.reason = "no CUDA device on this machine";
    return g;
  }
  cudaDeviceProp prop{};
  if (cudaError_t e = cudaGetDeviceProperties(&prop, 0); e != cudaSuccess) {
    g.reason = cuda_error("cudaGetDeviceProperties", e);
    return g;
  }
  g.name = prop.name;
  g.memory = prop.totalGlobalMem;
  if (cudaError_t e = cudaStreamCreateWithFlags(&g.stream, cudaStreamNonBlocking); e != cudaSuccess)
    g.reason = cuda_error("cudaStreamCreate", e);
  return g;
}

}  // namespace unifn::accel::cuda
