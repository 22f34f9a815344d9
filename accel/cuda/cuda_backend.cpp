// CUDA backend: GPU probe, cuBLAS loaded at run time, capped device scratch, turns shared fairly,
// and the host side of each op.
#include "accel/cuda/cuda_backend.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>
#include <initializer_list>
#include <string>

#include "accel/cuda/cublas_lib.h"
#include "accel/cuda/gpu_probe.h"
#include "accel/cuda/kernels.h"
#include "accel/fair_gate.h"
#include "accel/reference/reference.h"
#include "accel/scratch_pool.h"

namespace unifn::accel {

namespace {

using cuda::cuda_error;

class CudaBackend final : public Backend {
 public:
  CudaBackend(std::optional<ScratchPool::Limits> scratch, CudaModels models)
      : models_(std::move(models)) {
    cuda::Gpu gpu = cuda::open_gpu();
    reason_ = gpu.reason;
    stream_ = gpu.stream;  // destroyed below when made, even without the rest
    if (!reason_.empty()) return;
    device_name_ = gpu.name;
    cublas_note_ = cublas_.load(stream_);
    // By default one op may hold a quarter of the GPU's memory (at most 8 GiB: the largest op,
    // a Gaussian blur of a 1 GiB image, needs 6); 256 MiB stay held between ops.
    ScratchPool::Limits limits;
    limits.max_bytes = std::min<std::size_t>(limits.max_bytes, gpu.memory / 4);
    scratch_.emplace(kSlots, scratch.value_or(limits),
                     ScratchPool::Allocator{[](std::size_t n) -> void* {
                                              void* p = nullptr;
                                              return cudaMalloc(&p, n) == cudaSuccess ? p : nullptr;
                                            },
                                            [](void* p) { cudaFree(p); }});
    available_ = true;
  }

  ~CudaBackend() override {
    // The process may be exiting, with the CUDA runtime already torn down: errors are ignored, and
    // the cuBLAS handle is left to the driver's own cleanup.
    scratch_.reset();
    if (stream_) cudaStreamDestroy(stream_);
  }

  std::string_view name() const override { return "cuda"; }
  bool available() const override { return available_; }
  std::string unavailable_reason() const override { return reason_; }
  std::string detail() const override {
    if (!available_) return {};
    return device_name_ +
           (cublas_note_.empty() ? ", cuBLAS" : ", own SGEMM kernel: " + cublas_note_);
  }

  Result sgemm(const SgemmArgs& a) override {
    const std::size_t na = a.a.size_bytes(), nb = a.b.size_bytes(), nc = a.c.size_bytes();
    return run(a.tenant, "sgemm", {na, nb, nc}, [&](const Buffers& buf) -> cudaError_t {
      auto* da = static_cast<float*>(buf[0]);
      auto* db = static_cast<float*>(buf[1]);
      auto* dc = static_cast<float*>(buf[2]);
      if (auto e = up(da, a.a.data(), na); e != cudaSuccess) return e;
      if (auto e = up(db, a.b.data(), nb); e != cudaSuccess) return e;
      if (a.beta != 0.0f)
        if (auto e = up(dc, a.c.data(), nc); e != cudaSuccess) return e;
      const int m = static_cast<int>(a.m), n = static_cast<int>(a.n), k = static_cast<int>(a.k);
      if (cublas_.handle) {
        // Row-major C = A B is column-major C^T = B^T A^T: swap the operands, no transposes.
        if (cublas_.sgemm(cublas_.handle, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &a.alpha, db,
                          static_cast<int>(a.ldb), da, static_cast<int>(a.lda), &a.beta, dc,
                          static_cast<int>(a.ldc)) != CUBLAS_STATUS_SUCCESS)
          return cudaErrorUnknown;
      } else if (auto e = cuda::sgemm(m, n, k, a.alpha, da, static_cast<int>(a.lda), db,
                                      static_cast<int>(a.ldb), a.beta, dc, static_cast<int>(a.ldc),
                                      stream_);
                 e != cudaSuccess) {
        return e;
      }
      return down(a.c.data(), dc, nc);
    });
  }

  bool runs_models() const override { return available_ && models_.parser && models_.run; }
  Result load_model(std::span<const std::uint8_t> bytes, LoadedModel& out) override {
    if (!runs_models()) return Backend::load_model(bytes, out);
    return models_.parser->load_model(bytes, out);
  }
  std::shared_ptr<const onnx_model::Graph> find_model(const ModelDigest& digest) override {
    return runs_models() ? models_.parser->find_model(digest) : nullptr;
  }
  Result run_model(const ModelRunArgs& a) override {
    if (!runs_models()) return Backend::run_model(a);
    const auto turn = gate_.enter(a.tenant);
    return models_.run(a);
  }

  Result minmax(const MinmaxArgs& a) override {
    const std::size_t bytes = a.in.size_bytes();
    return run(a.tenant, "minmax", {bytes, bytes}, [&](const Buffers& buf) -> cudaError_t {
      auto* din = static_cast<double*>(buf[0]);
      auto* dout = static_cast<double*>(buf[1]);
      if (auto e = up(din, a.in.data(), bytes); e != cudaSuccess) return e;
      if (auto e = cuda::minmax(din, dout, static_cast<int>(a.in.size()), a.low, a.high, a.min,
                                a.max, stream_);
          e != cudaSuccess)
        return e;
      return down(a.out.data(), dout, bytes);
    });
  }

  Result image(const ImageArgs& a) override {
    const std::size_t tmp_bytes = a.op == ImageOp::GaussianBlur ? a.src.size() * sizeof(float) : 0;
    return run(a.tenant, to_string(a.op), {a.src.size(), a.dst.size(), tmp_bytes},
               [&](const Buffers& buf) -> cudaError_t {
                 const int w = static_cast<int>(a.width), h = static_cast<int>(a.height),
                           c = static_cast<int>(a.channels);
                 auto* src = static_cast<std::uint8_t*>(buf[0]);
                 auto* dst = static_cast<std::uint8_t*>(buf[1]);
                 if (auto e = up(src, a.src.data(), a.src.size()); e != cudaSuccess) return e;
                 cudaError_t e = cudaSuccess;
                 switch (a.op) {
                   case ImageOp::Grayscale:
                     e = cuda::grayscale(src, dst, w, h, c, stream_);
                     break;
                   case ImageOp::GaussianBlur: {
                     const auto k = reference::gaussian_kernel(static_cast<int>(a.ksize), a.sigma);
                     e = cuda::gaussian_blur(src, static_cast<float*>(buf[2]), dst, w, h, c,
                                             k.data(), static_cast<int>(a.ksize), stream_);
                     break;
                   }
                   case ImageOp::Sobel:
                     e = cuda::sobel(src, dst, w, h, stream_);
                     break;
                   case ImageOp::Resize:
                     e = cuda::resize_bilinear(src, w, h, c, dst, static_cast<int>(a.out_width),
                                               static_cast<int>(a.out_height), stream_);
                     break;
                 }
                 if (e != cudaSuccess) return e;
                 return down(a.dst.data(), dst, a.dst.size());
               });
  }

 private:
  static constexpr std::size_t kSlots = 3;
  using Buffers = std::array<void*, kSlots>;

  // One op: the tenant's turn at the GPU, its scratch (slot i of bytes[i]), then f on the device
  // buffers; the scratch is trimmed after, whatever happened.
  template <typename F>
  Result run(Tenant tenant, std::string_view op, std::initializer_list<std::size_t> bytes, F&& f) {
    if (!available_)
      return Result::fail(Status::Error, "the CUDA backend is unavailable: " + reason_);
    const auto turn = gate_.enter(tenant);
    Buffers buf{};
    Result r = scratch_->acquire(std::span(bytes.begin(), bytes.size()), buf);
    if (r.ok())
      r = guarded(op, [&] { return f(buf); });
    else
      r.message = "CUDA " + std::string(op) + ": " + r.message;
    scratch_->trim();
    return r;
  }
  cudaError_t up(void* dev, const void* host, std::size_t n) {
    return cudaMemcpyAsync(dev, host, n, cudaMemcpyHostToDevice, stream_);
  }
  cudaError_t down(void* host, const void* dev, std::size_t n) {
    if (auto e = cudaMemcpyAsync(host, dev, n, cudaMemcpyDeviceToHost, stream_); e != cudaSuccess)
      return e;
    return cudaStreamSynchronize(stream_);
  }
  template <typename F>
  Result guarded(std::string_view op, F&& f) {
    try {
      if (cudaError_t e = f(); e != cudaSuccess) {
        cudaStreamSynchronize(stream_);
        return Result::fail(Status::Error, cuda_error(("CUDA " + std::string(op)).c_str(), e));
      }
      return Result::success();
    } catch (const std::exception& ex) {
      return Result::fail(Status::Error, "CUDA " + std::string(op) + ": " + ex.what());
    }
  }

  bool available_ = false;
  std::string reason_;
  std::string device_name_;
  std::string cublas_note_;
  cudaStream_t stream_ = nullptr;
  Cublas cublas_;
  CudaModels models_;
  FairGate gate_;                       // one op on the GPU at a time, tenants in turn
  std::optional<ScratchPool> scratch_;  // used only during a turn
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(std::optional<ScratchPool::Limits> scratch,
                                           CudaModels models) {
  return std::make_unique<CudaBackend>(scratch, std::move(models));
}

}  // namespace unifn::accel
