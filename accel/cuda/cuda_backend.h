// The CUDA backend: cuBLAS SGEMM and unifn's own kernels; probes for a GPU when created.
#pragma once

#include <functional>
#include <memory>
#include <optional>

#include "accel/backend.h"
#include "accel/scratch_pool.h"

namespace unifn::accel {

// Never fails: without a GPU (or a driver) the backend reports itself unavailable, with the reason.
// cuBLAS is loaded at run time (libcublas.so.13/12) only when a GPU is present, so this build runs
// on machines without CUDA libraries; without cuBLAS, SGEMM runs on unifn's own kernel.
// Ops take turns at the GPU, tenant by tenant (FairGate); their device buffers come from a
// ScratchPool, by default capped at a quarter of the GPU's memory and trimmed to 256 MiB after each
// op.
// Models on the GPU: parsed by `parser` (the CPU backend, which holds the ONNX library) and run by
// `run` (the CUDA graph executor, accel/cuda/onnx), each run a turn at the GPU as the other ops
// are. Without both, the backend runs no models.
struct CudaModels {
  std::shared_ptr<Backend> parser;
  std::function<Result(const ModelRunArgs&)> run;
};
std::unique_ptr<Backend> make_cuda_backend(std::optional<ScratchPool::Limits> scratch = {},
                                           CudaModels models = {});

}  // namespace unifn::accel
