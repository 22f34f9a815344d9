// The CPU executor: the graph walk (walk.h) on oneDNN's kernels, with OpenMP's team size set.
#include "accel/onnx/run.h"

#include <dlfcn.h>

#include "accel/onnx/dnnl_kernels.h"
#include "accel/onnx/walk.h"

namespace unifn::onnx_model {

namespace {

// OpenMP's omp_set_num_threads, found in the runtime oneDNN already loaded (libgomp with Debian's
// libdnnl), so that nothing here is compiled with OpenMP. It sets the calling thread's team size.
void set_threads(int n) {
  using SetThreads = void (*)(int);
  // Safe: dlsym answers the function's address or null; the type is omp_set_num_threads's own.
  static auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  if (set && n > 0) set(n);
}

}  // namespace

Expected<std::vector<Tensor>> run(const Graph& graph, std::span<const Tensor> inputs,
                                  RunOptions options) {
  if (auto why = input_problem(graph, inputs); !why.empty()) return Error{why};
  set_threads(options.threads);
  return walk(graph, inputs, dnnl_kernels());
}

}  // namespace unifn::onnx_model
