// The CUDA executor from a test on any machine: without a GPU it refuses with the reason; with one
// it gives the CPU executor's outputs (the full comparison is test/gpu's gpu_onnx_test).
#include <catch2/catch.hpp>

#include "accel/cuda/onnx/run_cuda.h"
#include "accel/onnx/model.h"
#include "accel/onnx/run.h"
#include "test/gpu/onnx_cases.h"
#include "test/unit/onnx/node_test_data.h"

namespace fs = std::filesystem;
using namespace unifn::onnx_model;
using namespace unifn::onnx_model::testing;

TEST_CASE("the CUDA executor runs a convolution as the CPU does or says why it cannot", "[onnx]") {
  fs::path dir = fs::path(UNIFN_ONNX_TEST_DATA) / "node/test_conv_with_strides_padding";
  auto model = load(read_bytes(dir / "model.onnx"));
  REQUIRE(model.ok());
  auto inputs = read_tensors(dir / "test_data_set_0", "input");
  auto got = run_on_cuda(*model.value(), inputs);
  std::string why = cuda_unavailable_reason();
  if (!why.empty()) {
    REQUIRE_FALSE(got.ok());
    CHECK(got.error() == "CUDA is unavailable: " + why);
    CHECK(cuda_detail().empty());
    return;
  }
  REQUIRE(got.ok());
  auto want = run(*model.value(), inputs);
  REQUIRE(want.ok());
  REQUIRE(got->size() == want->size());
  for (std::size_t k = 0; k < got->size(); ++k)
    CHECK(gpu_cases::difference(got.value()[k], want.value()[k], 1e-3f, 1e-5f) == "");
}

TEST_CASE("the CUDA executor checks inputs before anything runs", "[onnx]") {
  auto model = load(read_bytes(fs::path(UNIFN_ONNX_TEST_DATA) / "node/test_relu/model.onnx"));
  REQUIRE(model.ok());
  auto got = run_on_cuda(*model.value(), {});
  REQUIRE_FALSE(got.ok());
  // Without a GPU the refusal says so first; with one, the input count is what is wrong.
  if (cuda_unavailable_reason().empty())
    CHECK_THAT(got.error(), Catch::Contains("takes 1 inputs, 0 were given"));
  else
    CHECK_THAT(got.error(), Catch::StartsWith("CUDA is unavailable: "));
}
