// The CUDA executor: Kernels on device memory (stream-ordered allocations on one stream per
// thread), cuDNN for Conv, cuBLAS for MatMul and Gemm, unifn's kernels for the rest and as the
// fallback when a library is missing.
#include "accel/cuda/onnx/run_cuda.h"

#include <cuda_runtime_api.h>

#include <limits>
#include <memory>
#include <numeric>
#include <stdexcept>

#include "accel/cuda/cublas_lib.h"
#include "accel/cuda/gpu_probe.h"
#include "accel/cuda/kernels.h"
#include "accel/cuda/onnx/cudnn_lib.h"
#include "accel/cuda/onnx/geometry.h"
#include "accel/cuda/onnx/onnx_kernels.h"
#include "accel/onnx/walk.h"

namespace unifn::onnx_model {

namespace {

namespace ck = accel::cuda::onnx;

[[noreturn]] void fail(std::string why) { throw std::runtime_error(std::move(why)); }

using accel::cuda::cuda_error;

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail(cuda_error(what, e));
}

// What one thread runs models with: a stream, and the libraries' handles on it.
struct Context {
  std::string reason;  // why there is no GPU to run on; "" when there is
  std::string device;
  cudaStream_t stream = nullptr;
  accel::Cublas cublas;
  std::string cublas_note;  // why cuBLAS is not used; "" when it is
  const ck::CudnnLib* dnn = nullptr;
  cudnnHandle_t cudnn = nullptr;
  std::string cudnn_note;

  Context() {
    accel::cuda::Gpu gpu = accel::cuda::open_gpu();
    reason = gpu.reason, device = gpu.name, stream = gpu.stream;
    if (!reason.empty()) return;
    cublas_note = cublas.load(stream);
    dnn = ck::load_cudnn(cudnn_note);
    if (dnn && dnn->create(&cudnn) != CUDNN_STATUS_SUCCESS) {
      cudnn_note = "cudnnCreate failed", dnn = nullptr;
    } else if (dnn && dnn->set_stream(cudnn, stream) != CUDNN_STATUS_SUCCESS) {
      cudnn_note = "cudnnSetStream failed", dnn = nullptr;
    }
  }
  // Left to the process's end: the handles and stream live as long as the thread may run models.
};

Context& context() {
  static thread_local Context c;
  return c;
}

int as_int(std::int64_t v, const char* what) {
  if (v < 0 || v > std::numeric_limits<int>::max())
    fail(std::string(what) + " does not fit the 32-bit sizes the GPU libraries take");
  return static_cast<int>(v);
}

std::int64_t product(const Shape& d, std::size_t from, std::size_t to) {
  return std::accumulate(d.begin() + static_cast<std::ptrdiff_t>(from),
                         d.begin() + static_cast<std::ptrdiff_t>(to), std::int64_t{1},
                         std::multiplies<>());
}

// A descriptor of cuDNN's, destroyed with its scope.
template <class T, class Destroy>
struct Desc {
  T d = nullptr;
  Destroy destroy;
  ~Desc() {
    if (d) destroy(d);
  }
};

class CudaKernels final : public Kernels {
 public:
  CudaKernels(Context& c, CudaRunOptions o)
      : c_(c),
        s_(c.stream),
        dnn_(o.cudnn ? c.dnn : nullptr),
        blas_(o.cublas && c.cublas_note.empty() ? &c.cublas : nullptr) {}

  Operand upload(const Tensor& t) override {
    Operand x = make(t.dims);
    if (x.data)
      check(cudaMemcpyAsync(x.data.get(), t.f.data(), t.f.size() * sizeof(float),
                            cudaMemcpyHostToDevice, s_),
            "cudaMemcpyAsync to the device");
    return x;
  }

  std::vector<float> download(const Operand& x) override {
    std::vector<float> out(static_cast<std::size_t>(std::max<std::int64_t>(x.elements(), 0)));
    if (x.data)
      check(cudaMemcpyAsync(out.data(), x.data.get(), out.size() * sizeof(float),
                            cudaMemcpyDeviceToHost, s_),
            "cudaMemcpyAsync from the device");
    check(cudaStreamSynchronize(s_), "a kernel or copy on the stream");
    return out;
  }

  Operand conv(const Operand& x, const Operand& w, const Operand* bias,
               const ConvGeometry& geo) override {
    Operand y = make(geo.out);
    if (!y.data) return y;
    ck::Window2d g = ck::window2d(x.dims, geo.window, geo.out);
    std::int64_t m = geo.out[1];
    if (!dnn_) {
      check(
          ck::conv_direct(ptr(x), ptr(w), bias ? ptr(*bias) : nullptr, ptr(y), g, m, geo.group, s_),
          "the convolution kernel");
      return y;
    }
    ck::SymmetricConv sc = ck::symmetric_conv(x.dims, geo.window, g);
    const float* src = ptr(x);
    Operand padded;
    if (sc.pad) {
      padded = make({g.n, g.c, sc.conv.h, sc.conv.w});
      check(ck::pad(src, ptr(padded), g.n * g.c, g.h, g.w, g.pt, sc.bottom, g.pl, sc.right, s_),
            "the padding kernel");
      src = ptr(padded);
    }
    g = sc.conv;
    cudnn_conv(src, ptr(w), ptr(y), g, m, geo.group);
    if (bias)
      check(ck::add_bias(ptr(y), ptr(*bias), m, g.oh * g.ow, y.elements(), s_), "the bias kernel");
    return y;
  }

  Operand pool(const Operand& x, bool max, bool count_include_pad, const Window& win,
               const std::vector<std::int64_t>& out) override {
    Operand y = make(out);
    if (y.data)
      check(ck::pool(ptr(x), ptr(y), ck::window2d(x.dims, win, out), max, count_include_pad, s_),
            "the pooling kernel");
    return y;
  }

  Operand batch_norm(const Operand& x, const Operand& scale, const Operand& shift,
                     const Operand& mean, const Operand& var, float epsilon) override {
    Operand y = make(x.dims);
    if (y.data)
      check(ck::batch_norm(ptr(x), ptr(y), ptr(scale), ptr(shift), ptr(mean), ptr(var), epsilon,
                           x.dims[1], product(x.dims, 2, x.dims.size()), y.elements(), s_),
            "the batch norm kernel");
    return y;
  }

  Operand eltwise(Eltwise kind, const Operand& x, float alpha, float beta) override {
    Operand y = make(x.dims);
    ck::Unary op = ck::unary_of(kind);
    if (y.data)
      check(ck::unary(op, ptr(x), ptr(y), y.elements(), alpha, beta, s_),
            "the element-wise kernel");
    return y;
  }

  Operand binary(Binary kind, const Operand& a, const Operand& b,
                 const std::vector<std::int64_t>& out) override {
    ck::Pair op = ck::pair_of(kind);
    Operand y = make(out);
    if (y.data) broadcast(op, ptr(a), a.dims, ptr(b), b.dims, ptr(y), out);
    return y;
  }

  Operand matmul(const Operand& a, const Operand& b, const MatMulGeometry& geo) override {
    Operand y = make(geo.y);
    ck::MatMulBatches p = ck::matmul_batches(geo);
    if (y.data && p.stride_a >= 0 && p.stride_b >= 0 && blas_ && blas_->sgemm_strided_batched &&
        p.count > 1) {
      ck::ColumnMajorGemm c = ck::column_major(false, false, p.m, p.n, p.k);
      float one = 1, zero = 0;
      if (blas_->sgemm_strided_batched(
              blas_->handle, CUBLAS_OP_N, CUBLAS_OP_N, as_int(c.rows, "n"), as_int(c.cols, "m"),
              as_int(c.depth, "k"), &one, ptr(b), as_int(c.ld_first, "ldb"), p.stride_b, ptr(a),
              as_int(c.ld_second, "lda"), p.stride_a, &zero, ptr(y), as_int(c.ld_out, "ldc"),
              p.m * p.n, as_int(p.count, "batch")) != CUBLAS_STATUS_SUCCESS)
        fail("cublasSgemmStridedBatched failed");
    } else if (y.data) {
      for (std::int64_t i = 0; i < p.count; ++i) {
        auto [oa, ob] = p.offsets(i);
        gemm_rm(false, false, p.m, p.n, p.k, 1, ptr(a) + oa, ptr(b) + ob, 0,
                ptr(y) + i * p.m * p.n);
      }
    }
    y.dims = geo.result;
    return y;
  }

  Operand gemm(const Operand& a, const Operand& b, const Operand* c, const GemmAttrs& g,
               const GemmGeometry& geo) override {
    Operand y = make({geo.m, geo.n});
    if (!y.data) return y;
    if (c) broadcast(ck::Pair::Second, ptr(y), y.dims, ptr(*c), c->dims, ptr(y), y.dims);
    gemm_rm(g.trans_a, g.trans_b, geo.m, geo.n, geo.k, g.alpha, ptr(a), ptr(b), c ? g.beta : 0,
            ptr(y));
    return y;
  }

  Operand softmax(const Operand& x, const std::vector<std::int64_t>& dims, std::int64_t axis,
                  bool log) override {
    Operand y = make(x.dims);
    ck::Rows r = ck::softmax_rows(dims, axis);
    if (y.data)
      check(ck::softmax(ptr(x), ptr(y), r.outer, r.len, r.inner, log, s_), "the softmax kernel");
    return y;
  }

  Operand concat(const std::vector<const Operand*>& xs, std::int64_t axis,
                 const std::vector<std::int64_t>& out) override {
    Operand y = make(out);
    if (!y.data) return y;
    std::vector<const Shape*> shapes;
    for (const Operand* x : xs) shapes.push_back(&x->dims);
    auto blocks = ck::concat_blocks(shapes, axis, out);
    for (std::size_t k = 0; k < xs.size(); ++k) {
      const ck::ConcatBlock& b = blocks[k];
      auto f = sizeof(float);
      if (xs[k]->data)  // x's outer rows land in their slot of the result's rows
        check(cudaMemcpy2DAsync(ptr(y) + b.at, static_cast<std::size_t>(b.row) * f, ptr(*xs[k]),
                                static_cast<std::size_t>(b.part) * f,
                                static_cast<std::size_t>(b.part) * f,
                                static_cast<std::size_t>(b.outer), cudaMemcpyDeviceToDevice, s_),
              "cudaMemcpy2DAsync for Concat");
    }
    return y;
  }

  Operand transpose(const Operand& x, const std::vector<std::int64_t>& perm,
                    const std::vector<std::int64_t>& out) override {
    Operand y = make(out);
    if (y.data) transpose_into(ptr(x), x.dims, perm, ptr(y), out);
    return y;
  }

 private:
  // An operand's device memory. Kernels write only to the results made here: operands are never
  // written once made, so values may share them.
  static float* ptr(const Operand& x) { return x.data.get(); }

  // A result of a checked shape in stream-ordered device memory, freed on the stream when the
  // last operand sharing it goes.
  Operand make(std::vector<std::int64_t> dims) {
    Operand y{DType::Float, std::move(dims), {}, nullptr};
    std::int64_t n = result_elements(y.dims);
    if (n == 0) return y;
    void* p = nullptr;
    auto bytes = static_cast<std::size_t>(n) * sizeof(float);
    check(cudaMallocAsync(&p, bytes, s_), "cudaMallocAsync");
    cudaStream_t s = s_;
    // Safe: cudaMallocAsync returned memory for n floats, suitably aligned for float.
    y.data = std::shared_ptr<float>(static_cast<float*>(p), [s](float* q) { cudaFreeAsync(q, s); });
    return y;
  }

  void cudnn_conv(const float* x, const float* w, float* y, const ck::Window2d& g, std::int64_t m,
                  std::int64_t group) {
    auto ok = [&](cudnnStatus_t st, const char* what) {
      if (st != CUDNN_STATUS_SUCCESS)
        fail(std::string("cuDNN: ") + what + ": " + dnn_->error_string(st));
    };
    Desc<cudnnTensorDescriptor_t, decltype(dnn_->destroy_tensor)> xd{nullptr, dnn_->destroy_tensor},
        yd{nullptr, dnn_->destroy_tensor};
    Desc<cudnnFilterDescriptor_t, decltype(dnn_->destroy_filter)> wd{nullptr, dnn_->destroy_filter};
    Desc<cudnnConvolutionDescriptor_t, decltype(dnn_->destroy_conv)> cd{nullptr,
                                                                        dnn_->destroy_conv};
    ok(dnn_->create_tensor(&xd.d), "cudnnCreateTensorDescriptor");
    ok(dnn_->create_tensor(&yd.d), "cudnnCreateTensorDescriptor");
    ok(dnn_->create_filter(&wd.d), "cudnnCreateFilterDescriptor");
    ok(dnn_->create_conv(&cd.d), "cudnnCreateConvolutionDescriptor");
    auto dense = [&](cudnnTensorDescriptor_t d, std::int64_t c, std::int64_t h, std::int64_t wi) {
      int dims[4] = {as_int(g.n, "batch"), as_int(c, "channels"), as_int(h, "height"),
                     as_int(wi, "width")};
      int strides[4] = {dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1};
      ok(dnn_->set_tensor(d, CUDNN_DATA_FLOAT, 4, dims, strides), "cudnnSetTensorNdDescriptor");
    };
    dense(xd.d, g.c, g.h, g.w);
    dense(yd.d, m, g.oh, g.ow);
    int fdims[4] = {as_int(m, "output channels"), as_int(g.c / group, "channels per group"),
                    as_int(g.kh, "kernel height"), as_int(g.kw, "kernel width")};
    ok(dnn_->set_filter(wd.d, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 4, fdims),
       "cudnnSetFilterNdDescriptor");
    int pads[2] = {as_int(g.pt, "pad"), as_int(g.pl, "pad")},
        strides[2] = {as_int(g.sh, "stride"), as_int(g.sw, "stride")},
        dil[2] = {as_int(g.dh, "dilation"), as_int(g.dw, "dilation")};
    ok(dnn_->set_conv(cd.d, 2, pads, strides, dil, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
       "cudnnSetConvolutionNdDescriptor");
    ok(dnn_->set_groups(cd.d, as_int(group, "group")), "cudnnSetConvolutionGroupCount");
    // FMA math: no TF32 (its 10-bit mantissa would miss the CPU's results by far more than 1e-4).
    ok(dnn_->set_math(cd.d, CUDNN_FMA_MATH), "cudnnSetConvolutionMathType");
    cudnnConvolutionFwdAlgoPerf_t perf[8];
    int found = 0;
    ok(dnn_->find_algorithm(c_.cudnn, xd.d, wd.d, cd.d, yd.d, 8, &found, perf),
       "cudnnGetConvolutionForwardAlgorithm_v7");
    int pick = 0;
    while (pick < found && perf[pick].status != CUDNN_STATUS_SUCCESS) ++pick;
    if (pick == found) fail("cuDNN: no convolution algorithm fits");
    std::size_t space = 0;
    ok(dnn_->workspace_size(c_.cudnn, xd.d, wd.d, cd.d, yd.d, perf[pick].algo, &space),
       "cudnnGetConvolutionForwardWorkspaceSize");
    Operand work = make({static_cast<std::int64_t>((space + sizeof(float) - 1) / sizeof(float))});
    float one = 1, zero = 0;
    ok(dnn_->convolution_forward(c_.cudnn, &one, xd.d, x, wd.d, w, cd.d, perf[pick].algo,
                                 work.data.get(), space, &zero, yd.d, y),
       "cudnnConvolutionForward");
  }

  // Row-major C = alpha op(A) op(B) + beta C, C [m, n].
  void gemm_rm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
               const float* a, const float* b, float beta, float* c) {
    if (blas_) {
      ck::ColumnMajorGemm g = ck::column_major(ta, tb, m, n, k);
      if (blas_->sgemm(blas_->handle, g.trans_first ? CUBLAS_OP_T : CUBLAS_OP_N,
                       g.trans_second ? CUBLAS_OP_T : CUBLAS_OP_N, as_int(g.rows, "n"),
                       as_int(g.cols, "m"), as_int(g.depth, "k"), &alpha, b,
                       as_int(g.ld_first, "ldb"), a, as_int(g.ld_second, "lda"), &beta, c,
                       as_int(g.ld_out, "ldc")) != CUBLAS_STATUS_SUCCESS)
        fail("cublasSgemm failed");
      return;
    }
    Operand at, bt;  // the own kernel takes plain operands: transposed ones are made so first
    if (ta) {
      at = make({m, k});
      transpose_into(a, {k, m}, {1, 0}, ptr(at), {m, k});
      a = ptr(at);
    }
    if (tb) {
      bt = make({k, n});
      transpose_into(b, {n, k}, {1, 0}, ptr(bt), {k, n});
      b = ptr(bt);
    }
    check(accel::cuda::sgemm(as_int(m, "m"), as_int(n, "n"), as_int(k, "k"), alpha, a,
                             as_int(k, "k"), b, as_int(n, "n"), beta, c, as_int(n, "n"), s_),
          "the SGEMM kernel");
  }

  void broadcast(ck::Pair op, const float* a, const Shape& ad, const float* b, const Shape& bd,
                 float* y, const Shape& out) {
    check(ck::pair(op, a, b, y, ck::broadcast_strides(ad, bd, out), element_count(out), s_),
          "the broadcasting kernel");
  }

  void transpose_into(const float* x, const Shape& xd, const std::vector<std::int64_t>& perm,
                      float* y, const Shape& out) {
    check(ck::transpose(x, y, ck::transpose_strides(xd, perm, out), element_count(out), s_),
          "the transpose kernel");
  }

  Context& c_;
  cudaStream_t s_;
  const ck::CudnnLib* dnn_;
  accel::Cublas* blas_;
};

}  // namespace

std::string cuda_unavailable_reason() { return context().reason; }

std::string cuda_detail() {
  Context& c = context();
  if (!c.reason.empty()) return {};
  return c.device + (c.dnn ? ", cuDNN" : ", own convolution kernel: " + c.cudnn_note) +
         (c.cublas_note.empty() ? ", cuBLAS" : ", own SGEMM kernel: " + c.cublas_note);
}

Expected<std::vector<Tensor>> run_on_cuda(const Graph& graph, std::span<const Tensor> inputs,
                                          CudaRunOptions options) {
  Context& c = context();
  if (!c.reason.empty()) return Error{"CUDA is unavailable: " + c.reason};
  CudaKernels k(c, options);
  auto out = walk(graph, inputs, k);
  // A run that failed midway may leave work queued that reads its operands: wait for it before
  // they are freed (they already are, stream-ordered) and before the next run reuses the stream.
  cudaError_t e = cudaStreamSynchronize(c.stream);
  if (out && e != cudaSuccess) return Error{cuda_error("the run's kernels", e)};
  return out;
}

}  // namespace unifn::onnx_model
