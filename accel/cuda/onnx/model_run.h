// The CUDA backend's model run (CudaModels::run): a loaded graph through the CUDA executor.
#pragma once

#include "accel/backend.h"

namespace unifn::accel {

Result run_model_on_cuda(const ModelRunArgs& args);

}  // namespace unifn::accel
