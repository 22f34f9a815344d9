// cuDNN resolved from libcudnn.so.<the major version of the headers built against>.
#include "accel/cuda/onnx/cudnn_lib.h"

#include <dlfcn.h>

#include <mutex>

namespace unifn::accel::cuda::onnx {

namespace {

template <class F>
bool resolve(void* lib, F& f, const char* name) {
  // Safe: the symbol is cast to the exact prototype cudnn's headers declare for that name.
  f = reinterpret_cast<F>(dlsym(lib, name));
  return f != nullptr;
}

}  // namespace

const CudnnLib* load_cudnn(std::string& why) {
  static CudnnLib lib;
  static std::string problem;
  static std::once_flag once;
  std::call_once(once, [] {
    const std::string name = "libcudnn.so." + std::to_string(CUDNN_MAJOR);
    // Safe: dlopen of a system library by name; the handle is kept for the process's life.
    void* h = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      problem = name + " could not be loaded (" + dlerror() + ")";
      return;
    }
    bool all = resolve(h, lib.create, "cudnnCreate") &&
               resolve(h, lib.set_stream, "cudnnSetStream") &&
               resolve(h, lib.error_string, "cudnnGetErrorString") &&
               resolve(h, lib.create_tensor, "cudnnCreateTensorDescriptor") &&
               resolve(h, lib.set_tensor, "cudnnSetTensorNdDescriptor") &&
               resolve(h, lib.destroy_tensor, "cudnnDestroyTensorDescriptor") &&
               resolve(h, lib.create_filter, "cudnnCreateFilterDescriptor") &&
               resolve(h, lib.set_filter, "cudnnSetFilterNdDescriptor") &&
               resolve(h, lib.destroy_filter, "cudnnDestroyFilterDescriptor") &&
               resolve(h, lib.create_conv, "cudnnCreateConvolutionDescriptor") &&
               resolve(h, lib.set_conv, "cudnnSetConvolutionNdDescriptor") &&
               resolve(h, lib.set_groups, "cudnnSetConvolutionGroupCount") &&
               resolve(h, lib.set_math, "cudnnSetConvolutionMathType") &&
               resolve(h, lib.destroy_conv, "cudnnDestroyConvolutionDescriptor") &&
               resolve(h, lib.find_algorithm, "cudnnGetConvolutionForwardAlgorithm_v7") &&
               resolve(h, lib.workspace_size, "cudnnGetConvolutionForwardWorkspaceSize") &&
               resolve(h, lib.convolution_forward, "cudnnConvolutionForward");
    if (!all) problem = name + " lacks one of the convolution entry points used";
  });
  why = problem;
  return problem.empty() ? &lib : nullptr;
}

}  // namespace unifn::accel::cuda::onnx
