// cuBLAS's entry points resolved from libcublas.so.<toolkit major> (see cublas_lib.h).
#include "accel/cuda/cublas_lib.h"

#include <dlfcn.h>

namespace unifn::accel {

std::string Cublas::load(cudaStream_t stream) {
  // The cuBLAS of the toolkit major version this was built with (it carries its own runtime).
  const std::string name = "libcublas.so." + std::to_string(CUDART_VERSION / 1000);
  // Safe: dlopen of a system library by name; the handle is kept for the process's life.
  lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) return name + " could not be loaded (" + dlerror() + ")";
  // Safe (each of the four): the symbol is cast to the exact prototype cublas_api.h declares for
  // it.
  create = reinterpret_cast<decltype(create)>(dlsym(lib, "cublasCreate_v2"));  // Safe: see above.
  set_stream =
      reinterpret_cast<decltype(set_stream)>(dlsym(lib, "cublasSetStream_v2"));  // Safe: see above.
  sgemm = reinterpret_cast<decltype(sgemm)>(dlsym(lib, "cublasSgemm_v2"));       // Safe: see above.
  sgemm_strided_batched = reinterpret_cast<decltype(sgemm_strided_batched)>(
      dlsym(lib, "cublasSgemmStridedBatched"));  // Safe: see above.
  if (!create || !set_stream || !sgemm) return "cuBLAS lacks cublasSgemm_v2 or its companions";
  if (create(&handle) != CUBLAS_STATUS_SUCCESS) return "cublasCreate failed";
  if (set_stream(handle, stream) != CUBLAS_STATUS_SUCCESS) {
    handle = nullptr;  // unusable off our stream; left to the driver's cleanup
    return "cublasSetStream failed";
  }
  return {};
}

}  // namespace unifn::accel
