// cuBLAS loaded at run time (dlopen), so that binaries built with it start on machines without it.
#pragma once

#include <string>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

namespace unifn::accel {

// The few cuBLAS entry points used, resolved from the shared library when a GPU is present.
struct Cublas {
  void* lib = nullptr;
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasSetStream_v2) set_stream = nullptr;
  decltype(&cublasSgemm_v2) sgemm = nullptr;
  decltype(&cublasSgemmStridedBatched) sgemm_strided_batched = nullptr;  // may stay null
  cublasHandle_t handle = nullptr;

  // Loads the library (the toolkit's major version) and makes a handle on `stream`. Returns "" on
  // success, else why cuBLAS cannot be used.
  std::string load(cudaStream_t stream);
};

}  // namespace unifn::accel
