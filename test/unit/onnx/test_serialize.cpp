// The graph serializer the GPU test's cases travel in: every passing node test's graph survives
// bytes and back equal and runs to the same outputs; damaged bytes are refused with a sentence.
#include <catch2/catch.hpp>

#include "accel/onnx/model.h"
#include "accel/onnx/run.h"
#include "accel/onnx/serialize.h"
#include "test/unit/onnx/node_test_data.h"

namespace fs = std::filesystem;
using namespace unifn::onnx_model;
using namespace unifn::onnx_model::testing;

namespace {

std::shared_ptr<const Graph> load_test(const std::string& name) {
  auto model = load(read_bytes(fs::path(UNIFN_ONNX_TEST_DATA) / name / "model.onnx"));
  INFO(name);
  REQUIRE(model.ok());
  return model.value();
}

}  // namespace

TEST_CASE("a serialized graph reads back equal and runs to the same outputs", "[onnx]") {
  auto names = passing_tests(UNIFN_ONNX_NODE_LIST);
  REQUIRE(names.size() > 100);
  for (const auto& name : names) {
    INFO(name);
    auto g = load_test(name);
    auto bytes = serialize(*g);
    auto back = deserialize(bytes);
    REQUIRE(back.ok());
    CHECK(back.value() == *g);
    auto inputs = read_tensors(fs::path(UNIFN_ONNX_TEST_DATA) / name / "test_data_set_0", "input");
    auto want = run(*g, inputs), got = run(back.value(), inputs);
    REQUIRE(want.ok());
    REQUIRE(got.ok());
    CHECK(got.value() == want.value());
  }
}

TEST_CASE("damaged serialized graphs are refused with the reason", "[onnx]") {
  auto g = load_test("node/test_conv_with_strides_padding");
  auto bytes = serialize(*g);
  SECTION("cut short") {
    for (std::size_t cut : {std::size_t{0}, std::size_t{7}, bytes.size() / 2, bytes.size() - 1}) {
      auto r = deserialize(std::span(bytes).first(cut));
      REQUIRE_FALSE(r.ok());
      CHECK_THAT(r.error(), Catch::Contains("not a serialized graph"));
    }
  }
  SECTION("a value id outside the graph") {
    Graph bad = *g;
    bad.nodes[0].inputs[0] = static_cast<int>(bad.values.size());
    auto r = deserialize(serialize(bad));
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error(), Catch::Contains("outside the graph's"));
  }
  SECTION("bytes after the graph") {
    bytes.push_back(std::byte{0});
    auto r = deserialize(bytes);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error(), Catch::Contains("left over"));
  }
}
