// CUDA backend: GPU probe, cuBLAS loaded at run time, device scratch buffers, and the host side of each op.
#include "cuda/cuda_backend.h"

#include <dlfcn.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <array>
#include <mutex>
#include <string>

#include "cuda/kernels.h"
#include "reference/reference.h"

namespace unifn::accel {

namespace {

// The few cuBLAS entry points used, resolved from the shared library when a GPU is present.
struct Cublas {
  void* lib = nullptr;
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasSetStream_v2) set_stream = nullptr;
  decltype(&cublasSgemm_v2) sgemm = nullptr;
  cublasHandle_t handle = nullptr;

  // Returns "" on success, else why cuBLAS cannot be used.
  std::string load(cudaStream_t stream) {
    // The cuBLAS of the toolkit major version this was built with (it carries its own runtime).
    const std::string name = "libcublas.so." + std::to_string(CUDART_VERSION / 1000);
    // Safe: dlopen of a system library by name; the handle is kept for the process's life.
    lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) return name + " could not be loaded (" + dlerror() + ")";
    // Safe (each of the three): the symbol is cast to the exact prototype cublas_api.h declares for it.
    create = reinterpret_cast<decltype(create)>(dlsym(lib, "cublasCreate_v2"));               // Safe: see above.
    set_stream = reinterpret_cast<decltype(set_stream)>(dlsym(lib, "cublasSetStream_v2"));   // Safe: see above.
    sgemm = reinterpret_cast<decltype(sgemm)>(dlsym(lib, "cublasSgemm_v2"));                  // Safe: see above.
    if (!create || !set_stream || !sgemm) return "cuBLAS lacks cublasSgemm_v2 or its companions";
    if (create(&handle) != CUBLAS_STATUS_SUCCESS) return "cublasCreate failed";
    if (set_stream(handle, stream) != CUBLAS_STATUS_SUCCESS) {
      handle = nullptr;  // unusable off our stream; left to the driver's cleanup
      return "cublasSetStream failed";
    }
    return {};
  }
};

std::string cuda_error(const char* what, cudaError_t e) {
  return std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
}

class CudaBackend final : public Backend {
 public:
  CudaBackend() {
    int n = 0;
    if (cudaError_t e = cudaGetDeviceCount(&n); e != cudaSuccess) {
      reason_ = cuda_error("no usable CUDA driver or device: cudaGetDeviceCount", e);
      return;
    }
    if (n == 0) {
      reason_ = "no CUDA device on this machine";
      return;
    }
    cudaDeviceProp prop{};
    if (cudaError_t e = cudaGetDeviceProperties(&prop, 0); e != cudaSuccess) {
      reason_ = cuda_error("cudaGetDeviceProperties", e);
      return;
    }
    device_name_ = prop.name;
    if (cudaError_t e = cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking); e != cudaSuccess) {
      reason_ = cuda_error("cudaStreamCreate", e);
      return;
    }
    cublas_note_ = cublas_.load(stream_);
    available_ = true;
  }

  ~CudaBackend() override {
    // The process may be exiting, with the CUDA runtime already torn down: errors are ignored, and
    // the cuBLAS handle is left to the driver's own cleanup.
    for (auto& b : bufs_)
      if (b.ptr) cudaFree(b.ptr);
    if (stream_) cudaStreamDestroy(stream_);
  }

  std::string_view name() const override { return "cuda"; }
  bool available() const override { return available_; }
  std::string unavailable_reason() const override { return reason_; }
  std::string detail() const override {
    if (!available_) return {};
    return device_name_ + (cublas_note_.empty() ? ", cuBLAS" : ", own SGEMM kernel: " + cublas_note_);
  }

  Result sgemm(const SgemmArgs& a) override {
    std::lock_guard lock(mu_);
    return guarded("sgemm", [&]() -> cudaError_t {
      const std::size_t na = a.a.size_bytes(), nb = a.b.size_bytes(), nc = a.c.size_bytes();
      float* da = static_cast<float*>(buffer(0, na));
      float* db = static_cast<float*>(buffer(1, nb));
      float* dc = static_cast<float*>(buffer(2, nc));
      if (!da || !db || !dc) return cudaErrorMemoryAllocation;
      if (auto e = up(da, a.a.data(), na); e != cudaSuccess) return e;
      if (auto e = up(db, a.b.data(), nb); e != cudaSuccess) return e;
      if (a.beta != 0.0f)
        if (auto e = up(dc, a.c.data(), nc); e != cudaSuccess) return e;
      const int m = static_cast<int>(a.m), n = static_cast<int>(a.n), k = static_cast<int>(a.k);
      if (cublas_.handle) {
        // Row-major C = A B is column-major C^T = B^T A^T: swap the operands, no transposes.
        if (cublas_.sgemm(cublas_.handle, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &a.alpha, db, static_cast<int>(a.ldb), da,
                          static_cast<int>(a.lda), &a.beta, dc, static_cast<int>(a.ldc)) != CUBLAS_STATUS_SUCCESS)
          return cudaErrorUnknown;
      } else if (auto e = cuda::sgemm(m, n, k, a.alpha, da, static_cast<int>(a.lda), db, static_cast<int>(a.ldb), a.beta, dc,
                                      static_cast<int>(a.ldc), stream_);
                 e != cudaSuccess) {
        return e;
      }
      return down(a.c.data(), dc, nc);
    });
  }

  Result minmax(const MinmaxArgs& a) override {
    std::lock_guard lock(mu_);
    return guarded("minmax", [&]() -> cudaError_t {
      const std::size_t bytes = a.in.size_bytes();
      auto* din = static_cast<double*>(buffer(0, bytes));
      auto* dout = static_cast<double*>(buffer(1, bytes));
      if (!din || !dout) return cudaErrorMemoryAllocation;
      if (auto e = up(din, a.in.data(), bytes); e != cudaSuccess) return e;
      if (auto e = cuda::minmax(din, dout, static_cast<int>(a.in.size()), a.low, a.high, a.min, a.max, stream_); e != cudaSuccess)
        return e;
      return down(a.out.data(), dout, bytes);
    });
  }

  Result image(const ImageArgs& a) override {
    std::lock_guard lock(mu_);
    return guarded(to_string(a.op), [&]() -> cudaError_t {
      const int w = static_cast<int>(a.width), h = static_cast<int>(a.height), c = static_cast<int>(a.channels);
      auto* src = static_cast<std::uint8_t*>(buffer(0, a.src.size()));
      auto* dst = static_cast<std::uint8_t*>(buffer(1, a.dst.size()));
      if (!src || !dst) return cudaErrorMemoryAllocation;
      if (auto e = up(src, a.src.data(), a.src.size()); e != cudaSuccess) return e;
      cudaError_t e = cudaSuccess;
      switch (a.op) {
        case ImageOp::Grayscale: e = cuda::grayscale(src, dst, w, h, c, stream_); break;
        case ImageOp::GaussianBlur: {
          auto* tmp = static_cast<float*>(buffer(2, a.src.size() * sizeof(float)));
          if (!tmp) return cudaErrorMemoryAllocation;
          const auto k = reference::gaussian_kernel(static_cast<int>(a.ksize), a.sigma);
          e = cuda::gaussian_blur(src, tmp, dst, w, h, c, k.data(), static_cast<int>(a.ksize), stream_);
          break;
        }
        case ImageOp::Sobel: e = cuda::sobel(src, dst, w, h, stream_); break;
        case ImageOp::Resize:
          e = cuda::resize_bilinear(src, w, h, c, dst, static_cast<int>(a.out_width), static_cast<int>(a.out_height), stream_);
          break;
      }
      if (e != cudaSuccess) return e;
      return down(a.dst.data(), dst, a.dst.size());
    });
  }

 private:
  struct Buf {
    void* ptr = nullptr;
    std::size_t size = 0;
  };

  // Scratch buffer `slot` of at least `bytes`, grown as needed and kept (ops are serialised by mu_).
  void* buffer(std::size_t slot, std::size_t bytes) {
    Buf& b = bufs_[slot];
    if (b.size >= bytes && b.ptr) return b.ptr;
    if (b.ptr) cudaFree(b.ptr);
    b = {};
    if (cudaMalloc(&b.ptr, bytes) != cudaSuccess) return nullptr;
    b.size = bytes;
    return b.ptr;
  }
  cudaError_t up(void* dev, const void* host, std::size_t n) {
    return cudaMemcpyAsync(dev, host, n, cudaMemcpyHostToDevice, stream_);
  }
  cudaError_t down(void* host, const void* dev, std::size_t n) {
    if (auto e = cudaMemcpyAsync(host, dev, n, cudaMemcpyDeviceToHost, stream_); e != cudaSuccess) return e;
    return cudaStreamSynchronize(stream_);
  }
  template <typename F>
  Result guarded(std::string_view op, F&& f) {
    if (!available_) return Result::fail(Status::Error, "the CUDA backend is unavailable: " + reason_);
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
  std::mutex mu_;
  std::array<Buf, 3> bufs_{};
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend() { return std::make_unique<CudaBackend>(); }

}  // namespace unifn::accel
