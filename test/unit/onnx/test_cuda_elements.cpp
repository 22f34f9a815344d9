// The CUDA executor's own kernels checked without a GPU: their per-element functions
// (accel/cuda/onnx/elements.h) and launch geometry (geometry.h) run here on the host, element by
// element, for every passing node test, against the oneDNN executor. What needs the GPU itself
// (launches, cuDNN, cuBLAS, copies) is test/gpu's gpu_onnx_test.
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

// Kernels whose element-wise operators run the CUDA kernels' element functions on the host, one
// call per output element as each GPU thread would; the library-backed ones (MatMul, Gemm, Concat:
// cuBLAS and copies on the GPU) stay on oneDNN.
class HostElementKernels final : public Kernels {
 public:
  Operand upload(const Tensor& t) override { return cpu_.upload(t); }
  std::vector<float> download(const Operand& x) override { return cpu_.download(x); }

  Operand conv(const Operand& x, const Operand& w, const Operand* bias,
               const ConvGeometry& geo) override {
    Operand y = make(geo.out);
    ck::Window2d g = ck::window2d(x.dims, geo.window, geo.out);
    const float* b = bias ? bias->data.get() : nullptr;
    for (std::int64_t i = 0; i < y.elements(); ++i)
      y.data.get()[i] = ck::conv_at(x.data.get(), w.data.get(), b, g, geo.out[1], geo.group, i);
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
  Operand matmul(const Operand& a, const Operand& b, const MatMulGeometry& g) override {
    return cpu_.matmul(a, b, g);
  }
  Operand gemm(const Operand& a, const Operand& b, const Operand* c, const GemmAttrs& attrs,
               const GemmGeometry& g) override {
    return cpu_.gemm(a, b, c, attrs, g);
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
    return cpu_.concat(xs, axis, out);
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
  Kernels& cpu_ = dnnl_kernels();
};

}  // namespace

TEST_CASE("the CUDA kernels' element functions give the CPU executor's outputs", "[onnx]") {
  auto names = passing_tests(UNIFN_ONNX_NODE_LIST);
  REQUIRE(names.size() > 100);
  HostElementKernels kernels;
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
