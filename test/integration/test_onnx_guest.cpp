// A sample of ONNX's backend node tests through a real guest: the model and its inputs go in the
// request body, the guest registers the model on virtio-accel and runs it (test/guests/
// model_runner.c), and its outputs must match the test's expected outputs as the host executor's
// do (test/unit/onnx).
#include <catch2/catch.hpp>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <unifn/accel_abi.h>
#include "accel/cpu/cpu_backend.h"
#include "accel/device.h"
#include "test/unit/onnx/node_test_data.h"
#include "vmm/guest/function_vm.h"

using namespace unifn;
using onnx_model::DType;
using onnx_model::Tensor;

namespace {

namespace fs = std::filesystem;

void append(std::string& b, const void* p, std::size_t n) {
  b.append(static_cast<const char*>(p), n);
}

unifn_accel_tensor_desc desc_of(const Tensor& t) {
  unifn_accel_tensor_desc d{};
  d.type = t.type == DType::Float ? UNIFN_ACCEL_ARG_FLOAT32 : UNIFN_ACCEL_ARG_INT64;
  d.rank = static_cast<std::uint32_t>(t.dims.size());
  for (std::size_t i = 0; i < t.dims.size(); ++i) d.dims[i] = t.dims[i];
  return d;
}

// The body model_runner reads: the model, then each input's desc and data (none when the test's
// inputs are not wanted).
std::string body_for(const fs::path& test, bool with_inputs = true) {
  const auto model = onnx_model::testing::read_bytes(test / "model.onnx");
  const auto inputs = with_inputs
                          ? onnx_model::testing::read_tensors(test / "test_data_set_0", "input")
                          : std::vector<Tensor>{};
  std::string b;
  const auto len = static_cast<std::uint32_t>(model.size());
  append(b, &len, 4);
  append(b, model.data(), model.size());
  const auto n = static_cast<std::uint32_t>(inputs.size());
  append(b, &n, 4);
  for (const auto& t : inputs) {
    const auto d = desc_of(t);
    append(b, &d, sizeof d);
    if (t.type == DType::Float)
      append(b, t.f.data(), t.f.size() * 4);
    else
      append(b, t.i.data(), t.i.size() * 8);
  }
  return b;
}

struct GuestAnswer {
  std::int32_t rc = -1, status = -1;
  std::vector<Tensor> outputs;
};

GuestAnswer parse(const std::string& body) {
  GuestAnswer a;
  REQUIRE(body.size() >= 12);
  std::uint32_t n = 0;
  std::memcpy(&a.rc, body.data(), 4);
  std::memcpy(&a.status, body.data() + 4, 4);
  std::memcpy(&n, body.data() + 8, 4);
  std::size_t at = 12;
  for (std::uint32_t k = 0; k < n; ++k) {
    unifn_accel_tensor_desc d;
    REQUIRE(at + sizeof d <= body.size());
    std::memcpy(&d, body.data() + at, sizeof d);
    at += sizeof d;
    REQUIRE(d.rank <= UNIFN_ACCEL_MODEL_MAX_RANK);
    Tensor t;
    t.type = d.type == UNIFN_ACCEL_ARG_INT64 ? DType::Int64 : DType::Float;
    t.dims.assign(d.dims, d.dims + d.rank);
    const auto count = static_cast<std::size_t>(onnx_model::element_count(t.dims));
    const std::size_t bytes = count * (t.type == DType::Float ? 4 : 8);
    REQUIRE(at + bytes <= body.size());
    if (t.type == DType::Float) {
      t.f.resize(count);
      std::memcpy(t.f.data(), body.data() + at, bytes);
    } else {
      t.i.resize(count);
      std::memcpy(t.i.data(), body.data() + at, bytes);
    }
    at += bytes;
    a.outputs.push_back(std::move(t));
  }
  CHECK(at == body.size());
  return a;
}

struct Runner {
  std::unique_ptr<vmm::FunctionVm> vm;
  explicit Runner(const std::string& guest = "model_runner") {
    auto image =
        vmm::FunctionImage::load(std::string(UNIFN_BUILD_DIR) + "/test/guests/" + guest + ".elf");
    vmm::FunctionVmConfig cfg;
    cfg.memory_bytes = 128ull << 20;
    cfg.devices = {accel::device_factory(accel::make_cpu_backend())};
    vm = vmm::FunctionVm::boot(image, cfg, [](std::string_view) {});
  }
  GuestAnswer run(const std::string& body) { return parse(call(body)); }
  std::string call(const std::string& body) {
    auto o = vm->invoke(std::span(reinterpret_cast<const std::uint8_t*>(body.data()),
                                  body.size()),  // Safe: chars as bytes.
                        "application/octet-stream",
                        std::chrono::steady_clock::now() + std::chrono::seconds(30));
    INFO(o.stop.message << " " << o.body);
    REQUIRE(o.ok());
    REQUIRE(o.status == 200);
    return o.body;
  }
};

const fs::path kData = UNIFN_ONNX_TEST_DATA;

}  // namespace

TEST_CASE("a sample of ONNX's node tests runs through a guest and matches the expected outputs") {
  Runner r;
  for (const char* name : {"node/test_add_bcast",
                           "node/test_div_bcast",
                           "node/test_basic_conv_with_padding",
                           "node/test_conv_with_strides_padding",
                           "node/test_maxpool_2d_pads",
                           "node/test_averagepool_2d_strides",
                           "node/test_globalaveragepool",
                           "node/test_batchnorm_example",
                           "node/test_relu",
                           "node/test_leakyrelu",
                           "node/test_sigmoid",
                           "node/test_tanh",
                           "node/test_clip_example",
                           "node/test_gemm_all_attributes",
                           "node/test_matmul_2d",
                           "node/test_softmax_axis_1",
                           "node/test_flatten_axis1",
                           "node/test_reshape_negative_dim",
                           "node/test_concat_2d_axis_0",
                           "node/test_transpose_default"}) {
    INFO(name);
    const auto test = kData / name;
    auto got = r.run(body_for(test));
    REQUIRE(got.rc == 0);
    const auto want = onnx_model::testing::read_tensors(test / "test_data_set_0", "output");
    REQUIRE(got.outputs.size() == want.size());
    for (std::size_t k = 0; k < want.size(); ++k) {
      CHECK(got.outputs[k].dims == want[k].dims);
      REQUIRE(got.outputs[k].type == want[k].type);
      REQUIRE(got.outputs[k].f.size() == want[k].f.size());
      double worst = 0;
      for (std::size_t i = 0; i < want[k].f.size(); ++i) {
        const double e = want[k].f[i], g = got.outputs[k].f[i];
        worst = std::max(worst, std::abs(g - e) - 1e-3 * std::abs(e));
      }
      CHECK(worst <= 1e-5);
      CHECK(got.outputs[k].i == want[k].i);
    }
  }
}

TEST_CASE("a node test the backends cannot run is refused at registration, and the guest goes on") {
  Runner r;
  // Its uint8 inputs cannot even be described: the registration alone is tried.
  auto refused = r.run(body_for(kData / "node/test_add_uint8", false));
  CHECK(refused.rc != 0);
  CHECK(refused.status != UNIFN_ACCEL_OK);
  CHECK(refused.outputs.empty());
  auto ok = r.run(body_for(kData / "node/test_relu"));
  CHECK(ok.rc == 0);
  CHECK(ok.outputs.size() == 1);
}

TEST_CASE("vaccel_image_classification, vAccel's signature, labels a PNG with a model resource") {
  Runner r("vaccel_classifier");
  const auto model = onnx_model::testing::read_bytes(fs::path(UNIFN_SOURCE_DIR) /
                                                     "models/fashion-mnist/fashion_cnn.onnx");
  auto body = [&](std::uint32_t text_len, std::uint32_t name_len, const std::string& image) {
    std::string b;
    const auto len = static_cast<std::uint32_t>(model.size());
    append(b, &len, 4);
    append(b, model.data(), model.size());
    append(b, &text_len, 4);
    append(b, &name_len, 4);
    return b + image;
  };
  const auto shirt =
      onnx_model::testing::read_bytes(fs::path(UNIFN_SOURCE_DIR) / "test/data/fashion/shirt_6.png");
  const std::string png(reinterpret_cast<const char*>(shirt.data()),  // Safe: bytes as chars.
                        shirt.size());
  CHECK(r.call(body(64, 8, png)) == "rc=0 text=Shirt name=6");
  // Truncated to what fits with its NUL; a class number that does not fit leaves "".
  CHECK(r.call(body(3, 1, png)) == "rc=0 text=Sh name=");
  // Not an image: EINVAL, and nothing written.
  CHECK(r.call(body(64, 8, "not a PNG")) == "rc=" + std::to_string(EINVAL) + " text=- name=-");
}
