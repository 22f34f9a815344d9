// The CUDA backend: cuBLAS SGEMM and unifn's own kernels; probes for a GPU when created.
#pragma once

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
std::unique_ptr<Backend> make_cuda_backend(std::optional<ScratchPool::Limits> scratch = {});

}  // namespace unifn::accel
