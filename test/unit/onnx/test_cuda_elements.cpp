// The CUDA executor checked without a GPU: its kernels' per-element functions
// (accel/cuda/onnx/elements.h) and its geometry (geometry.h: windows, broadcasting, the cuBLAS
// arguments, cuDNN's symmetric padding, MatMul's batches, Concat's copies) run here on the host
// for every passing node test, on both the library and the own-kernel paths, against the oneDNN
// executor. What needs the GPU itself (launches, cuDNN, cuBLAS, copies) is test/gpu's
// gpu_onnx_test.
#include <catch2/catch.hpp>

#include "accel/cuda/onnx/elements.h"
#include "accel/cuda/onnx/geometry.h"
#include "accel/onnx/dnnl_kernels.h"
#include "accel/onnx/model.h"
#include "accel/onnx/run.h"
#include "accel/onnx/walk.h"
#include "test/gpu/onnx_cases.h"
#include "test/unit/onnx/node_test_data.h"

namespace fs = std::filesystem;
namespace ck = unifn::accel::cuda::onnx;
using namespace unifn::onnx_model;
using namespace unifn::onnx_model::testing;

namespace {

// cublasSgemm's definition (column-major, op(X) = X or its transpose), to check the arguments the
// executor derives for it.
void column_major_sgemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k,
                        float alpha, const float* a, std::int64_t lda, const float* b,
                        std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      float acc = 0;
      for (std::int64_t l = 0; l < k; ++l)
        acc += (ta ? a[l + i * lda] : a[i + l * lda]) * (tb ? b[j + l * ldb] : b[l + j * ldb]);
      c[i + j * ldc] = alpha * acc + (beta == 0 ? 0 : beta * c[i + j * ldc]);
    }
}

// Row-major C = alpha op(A) op(B) + beta C through the column-major call the executor makes.
void gemm_as_cublas(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
                    const float* a, const float* b, float beta, float* c) {
  ck::ColumnMajorGemm g = ck::column_major(ta, tb, m, n, k);
  column_major_sgemm(g.trans_first, g.trans_second, g.rows, g.cols, g.depth, alpha, b, g.ld_first,
                     a, g.ld_second, beta, c, g.ld_out);
}

// The CUDA executor's work done on the host: its kernels' element functions called once per
// output element as each GPU thread would, and its geometry for cuBLAS (as cublasSgemm defines
// it), cuDNN's symmetric padding and Concat's 2-D copies. `libraries`: the paths taken when cuDNN
// and cuBLAS load (else its own kernels').
class HostElementKernels final : public Kernels {
 public:
  explicit HostElementKernels(bool libraries) : libraries_(libraries) {}
  Operand upload(const Tensor& t) override { return cpu_.upload(t); }
  std::vector<float> download(const Operand& x) override { return cpu_.download(x); }

  Operand conv(const Operand& x, const Operand& w, const Operand* bias,
               const ConvGeometry& geo) override {
    Operand y = make(geo.out);
    ck::Window2d g = ck::window2d(x.dims, geo.window, geo.out);
    std::int64_t m = geo.out[1];
    if (!libraries_) {
      const float* b = bias ? bias->data.get() : nullptr;
      for (std::int64_t i = 0; i < y.elements(); ++i)
        y.data.get()[i] = ck::conv_at(x.data.get(), w.data.get(), b, g, m, geo.group, i);
      return y;
    }
    // As with cuDNN: the input padded where the pads differ, the convolution, then the bias.
    ck::SymmetricConv sc = ck::symmetric_conv(x.dims, geo.window, g);
    const float* src = x.data.get();
    Operand padded;
    if (sc.pad) {
      padded = make({g.n, g.c, sc.conv.h, sc.conv.w});
      for (std::int64_t i = 0; i < padded.elements(); ++i)
        padded.data.get()[i] = ck::pad_at(src, g.h, g.w, g.pt, g.pl, sc.conv.h, sc.conv.w, i);
      src = padded.data.get();
    }
    for (std::int64_t i = 0; i < y.elements(); ++i)
      y.data.get()[i] = ck::conv_at(src, w.data.get(), nullptr, sc.conv, m, geo.group, i) +
                        (bias ? bias->data.get()[(i / (g.oh * g.ow)) % m] : 0.f);
    return y;
  }
  Operand pool(const Operand& x, bool max, bool include_pad, const Window& win,
               const std::vector<std::int64_t>& out) override {
    Operand y = make(out);
    ck::Window2d g = ck::window2d(x.dims, win, out);
    for (std::int64_t i = 0; i < y.elements(); ++i)
      y.data.get()[i] = ck::pool_at(x.data.get(), g, max, include_pad, i);
    return y;
  }
  Operand batch_norm(const Operand& x, const Operand& scale, const Operand& shift,
                     const Operand& mean, const Operand& var, float epsilon) override {
    Operand y = make(x.dims);
    std::int64_t inner = 1;
    for (std::size_t d = 2; d < x.dims.size(); ++d) inner *= x.dims[d];
    for (std::int64_t i = 0; i < y.elements(); ++i)
      y.data.get()[i] =
          ck::batch_norm_at(x.data.get(), scale.data.get(), shift.data.get(), mean.data.get(),
                            var.data.get(), epsilon, x.dims[1], inner, i);
    return y;
  }
  Operand eltwise(Eltwise kind, const Operand& x, float alpha, float beta) override {
    Operand y = make(x.dims);
    for (std::int64_t i = 0; i < y.elements(); ++i)
      y.data.get()[i] = ck::unary_at(ck::unary_of(kind), x.data.get()[i], alpha, beta);
    return y;
  }
  Operand binary(Binary kind, const Operand& a, const Operand& b,
                 const std::vector<std::int64_t>& out) override {
    Operand y = make(out);
    ck::Strided st = ck::broadcast_strides(a.dims, b.dims, out);
    for (std::int64_t i = 0; i < y.elements(); ++i)
      y.data.get()[i] = ck::pair_at(ck::pair_of(kind), a.data.get(), b.data.get(), st, i);
    return y;
  }
  Operand matmul(const Operand& a, const Operand& b, const MatMulGeometry& geo) override {
    Operand y = make(geo.y);
    ck::MatMulBatches p = ck::matmul_batches(geo);
    bool strided = libraries_ && p.stride_a >= 0 && p.stride_b >= 0 && p.count > 1;
    for (std::int64_t i = 0; y.data && i < p.count; ++i) {
      auto [oa, ob] = strided ? std::pair(i * p.stride_a, i * p.stride_b) : p.offsets(i);
      gemm_as_cublas(false, false, p.m, p.n, p.k, 1, a.data.get() + oa, b.data.get() + ob, 0,
                     y.data.get() + i * p.m * p.n);
    }
    y.dims = geo.result;
    return y;
  }
  Operand gemm(const Operand& a, const Operand& b, const Operand* c, const GemmAttrs& attrs,
               const GemmGeometry& g) override {
    Operand y = make({g.m, g.n});
    if (!y.data) return y;
    if (c) {
      ck::Strided st = ck::broadcast_strides(y.dims, c->dims, y.dims);
      for (std::int64_t i = 0; i < y.elements(); ++i)
        y.data.get()[i] = ck::pair_at(ck::Pair::Second, nullptr, c->data.get(), st, i);
    }
    gemm_as_cublas(attrs.trans_a, attrs.trans_b, g.m, g.n, g.k, attrs.alpha, a.data.get(),
                   b.data.get(), c ? attrs.beta : 0, y.data.get());
    return y;
  }
  Operand softmax(const Operand& x, const std::vector<std::int64_t>& dims, std::int64_t axis,
                  bool log) override {
    Operand y = make(x.dims);
    ck::Rows r = ck::softmax_rows(dims, axis);
    for (std::int64_t row = 0; y.data && row < r.outer * r.inner; ++row)
      ck::softmax_row(x.data.get(), y.data.get(), r.len, r.inner, log, row);
    return y;
  }
  Operand concat(const std::vector<const Operand*>& xs, std::int64_t axis,
                 const std::vector<std::int64_t>& out) override {
    Operand y = make(out);
    std::vector<const Shape*> shapes;
    for (const Operand* x : xs) shapes.push_back(&x->dims);
    auto blocks = ck::concat_blocks(shapes, axis, out);
    for (std::size_t k = 0; y.data && k < xs.size(); ++k)  // cudaMemcpy2D's rows
      for (std::int64_t r = 0; xs[k]->data && r < blocks[k].outer; ++r)
        std::copy_n(xs[k]->data.get() + r * blocks[k].part, blocks[k].part,
                    y.data.get() + r * blocks[k].row + blocks[k].at);
    return y;
  }
  Operand transpose(const Operand& x, const std::vector<std::int64_t>& perm,
                    const std::vector<std::int64_t>& out) override {
    Operand y = make(out);
    ck::Strided st = ck::transpose_strides(x.dims, perm, out);
    for (std::int64_t i = 0; i < y.elements(); ++i)
      y.data.get()[i] = ck::transpose_at(x.data.get(), st, i);
    return y;
  }

 private:
  static Operand make(std::vector<std::int64_t> dims) {
    Operand y{DType::Float, std::move(dims), {}, nullptr};
    auto n = static_cast<std::size_t>(result_elements(y.dims));
    if (n) y.data = std::shared_ptr<float>(new float[n](), std::default_delete<float[]>());
    return y;
  }
  bool libraries_;
  Kernels& cpu_ = dnnl_kernels();
};

}  // namespace

TEST_CASE("the CUDA kernels' element functions give the CPU executor's outputs", "[onnx]") {
  auto names = passing_tests(UNIFN_ONNX_NODE_LIST);
  REQUIRE(names.size() > 100);
  bool libraries = GENERATE(false, true);
  INFO((libraries ? "as with cuDNN and cuBLAS" : "as with the own kernels only"));
  HostElementKernels kernels(libraries);
  for (const auto& name : names) {
    INFO(name);
    fs::path dir = fs::path(UNIFN_ONNX_TEST_DATA) / name;
    auto model = load(read_bytes(dir / "model.onnx"));
    REQUIRE(model.ok());
    auto inputs = read_tensors(dir / "test_data_set_0", "input");
    auto want = run(*model.value(), inputs);
    auto got = walk(*model.value(), inputs, kernels);
    REQUIRE(want.ok());
    REQUIRE(got.ok());
    REQUIRE(got.value().size() == want.value().size());
    for (std::size_t k = 0; k < got.value().size(); ++k)
      CHECK(gpu_cases::difference(got.value()[k], want.value()[k], 1e-3f, 1e-5f) == "");
  }
}

TEST_CASE("the CUDA kernels' host form classifies as the CPU executor does with the trained CNN",
          "[onnx]") {
  fs::path path = fs::path(UNIFN_SOURCE_DIR) / "models/fashion-mnist/fashion_cnn.onnx";
  auto model = load(read_bytes(path));
  REQUIRE(model.ok());
  const Graph& g = *model.value();
  REQUIRE(g.inputs.size() == 1);
  std::vector<std::int64_t> dims;
  for (const Dim& d : g.values[static_cast<std::size_t>(g.inputs[0])].dims)
    dims.push_back(d.value >= 0 ? d.value : 2);  // a batch of two where the batch is free
  std::vector<float> data(static_cast<std::size_t>(element_count(dims)));
  for (std::size_t k = 0; k < data.size(); ++k) data[k] = static_cast<float>((k * 37) % 101) / 101;
  std::vector<Tensor> inputs{Tensor::floats(dims, data)};
  auto want = run(g, inputs);
  REQUIRE(want.ok());
  for (bool libraries : {false, true}) {
    HostElementKernels kernels(libraries);
    auto got = walk(g, inputs, kernels);
    REQUIRE(got.ok());
    REQUIRE(got.value().size() == want.value().size());
    for (std::size_t k = 0; k < got.value().size(); ++k)
      CHECK(gpu_cases::difference(got.value()[k], want.value()[k], 1e-3f, 1e-5f) == "");
  }
}
