// A device's model run on CUDA: run_on_cuda's result as the backend interface answers it.
#include "accel/cuda/onnx/model_run.h"

#include "accel/cuda/onnx/run_cuda.h"

namespace unifn::accel {

Result run_model_on_cuda(const ModelRunArgs& a) {
  auto r = onnx_model::run_on_cuda(*a.graph, a.inputs);
  if (!r) return Result::fail(Status::Error, "the model failed: " + r.error());
  *a.outputs = std::move(r.value());
  return Result::success();
}

}  // namespace unifn::accel
