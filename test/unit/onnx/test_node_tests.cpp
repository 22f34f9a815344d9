// ONNX's own backend tests through load() and run(): each listed test passes or is refused with the
// listed reason, and every node test of a supported operator and every PyTorch-exported test is
// listed, so a regression fails.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "accel/onnx/model.h"
#include "accel/onnx/run.h"
#include "test/unit/onnx/node_test_data.h"

namespace fs = std::filesystem;
using namespace unifn::onnx_model;
using namespace unifn::onnx_model::testing;

namespace {

struct Entry {
  std::string name;  // the test's folder under libonnx-testdata's data/: "node/test_relu"
  bool pass = false;
  std::string reason;  // for a refused test: a part of the sentence load() must answer
};

std::vector<Entry> read_list() {
  std::ifstream f(UNIFN_ONNX_NODE_LIST);
  REQUIRE(f);
  std::vector<Entry> out;
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream s(line);
    Entry e;
    std::string verdict;
    s >> e.name >> verdict;
    if (verdict == "pass")
      e.pass = true;
    else if (verdict == "refused:")
      std::getline(s >> std::ws, e.reason);
    else
      FAIL("node_tests.txt: line '" << line
                                    << "' is neither 'NAME pass' nor 'NAME refused: REASON'");
    out.push_back(e);
  }
  return out;
}

enum class Kind { Pass, Refused, RunFailed, Mismatch };
struct Outcome {
  Kind kind;
  std::string detail;
};

// ONNX's backend test tolerance (onnx/backend/test/case/node: rtol 1e-3, atol 1e-7).
std::string compare(const Tensor& got, const Tensor& want, std::size_t k) {
  if (got.type != want.type || got.dims != want.dims)
    return fmt::format("output {} is {} {}, expected {} {}", k, to_string(got.type),
                       shape_string(got.dims), to_string(want.type), shape_string(want.dims));
  for (std::size_t i = 0; i < want.f.size(); ++i) {
    float g = got.f[i], w = want.f[i];
    if (std::isnan(w) && std::isnan(g)) continue;
    if (!(std::fabs(g - w) <= 1e-7f + 1e-3f * std::fabs(w)))
      return fmt::format("output {} element {} is {}, expected {}", k, i, g, w);
  }
  if (got.i != want.i) return fmt::format("output {} (int64) differs", k);
  return {};
}

Outcome attempt(const fs::path& dir) {
  auto m = load(read_bytes(dir / "model.onnx"));
  if (!m) return {Kind::Refused, m.error()};
  auto inputs = read_tensors(dir / "test_data_set_0", "input");
  auto want = read_tensors(dir / "test_data_set_0", "output");
  auto got = run(*m.value(), inputs);
  if (!got) return {Kind::RunFailed, got.error()};
  if (got->size() != want.size())
    return {Kind::Mismatch, fmt::format("{} outputs, expected {}", got->size(), want.size())};
  for (std::size_t k = 0; k < want.size(); ++k)
    if (auto why = compare(got.value()[k], want[k], k); !why.empty()) return {Kind::Mismatch, why};
  return {Kind::Pass, {}};
}

// The node tests named for a supported operator ("test_conv_...", "test_batchnorm_...").
bool named_for_supported(const std::string& test) {
  static const char* prefixes[] = {
      "conv",      "basic_conv", "maxpool",   "averagepool", "globalaveragepool",
      "batchnorm", "relu",       "leakyrelu", "sigmoid",     "tanh",
      "clip",      "add",        "mul",       "sub",         "div",
      "matmul",    "gemm",       "softmax",   "logsoftmax",  "concat",
      "transpose", "flatten",    "reshape",   "squeeze",     "unsqueeze",
      "dropout",   "constant",   "identity"};
  for (const char* p : prefixes) {
    std::string head = std::string("test_") + p;
    if (test.rfind(head, 0) == 0 && (test.size() == head.size() || test[head.size()] == '_'))
      return true;
  }
  return false;
}

// Whether every node of the test's model is of an operator load() knows by name.
bool only_supported_ops(const fs::path& dir) {
  auto bytes = read_bytes(dir / "model.onnx");
  onnx::ModelProto m;
  if (!m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return false;
  static const std::vector<std::string> ops = {"Conv",
                                               "MaxPool",
                                               "AveragePool",
                                               "GlobalAveragePool",
                                               "BatchNormalization",
                                               "Relu",
                                               "LeakyRelu",
                                               "Sigmoid",
                                               "Tanh",
                                               "Clip",
                                               "Add",
                                               "Mul",
                                               "Sub",
                                               "Div",
                                               "MatMul",
                                               "Gemm",
                                               "Softmax",
                                               "LogSoftmax",
                                               "Concat",
                                               "Transpose",
                                               "Flatten",
                                               "Reshape",
                                               "Squeeze",
                                               "Unsqueeze",
                                               "Dropout",
                                               "Constant",
                                               "Identity"};
  for (const auto& n : m.graph().node())
    if (std::find(ops.begin(), ops.end(), n.op_type()) == ops.end()) return false;
  return m.graph().node_size() > 0;
}

}  // namespace

TEST_CASE("Each listed ONNX node test passes or is refused as node_tests.txt says", "[onnx]") {
  auto list = read_list();
  REQUIRE(list.size() > 100);
  // UNIFN_ONNX_WRITE_LIST=FILE writes what actually happened in the list's format, to update it.
  std::ofstream actual;
  if (const char* p = std::getenv("UNIFN_ONNX_WRITE_LIST")) actual.open(p);
  int passed = 0, refused = 0;
  auto start = std::chrono::steady_clock::now();
  for (const auto& e : list) {
    INFO("node test " << e.name);
    fs::path dir = fs::path(UNIFN_ONNX_TEST_DATA) / e.name;
    REQUIRE(fs::exists(dir / "model.onnx"));
    Outcome o = attempt(dir);
    if (actual.is_open())
      actual << e.name
             << (o.kind == Kind::Pass      ? " pass"
                 : o.kind == Kind::Refused ? " refused: "
                                           : " FAILED: ")
             << o.detail << "\n";
    INFO("outcome: " << o.detail);
    if (e.pass) {
      CHECK(o.kind == Kind::Pass);
      passed += o.kind == Kind::Pass;
    } else {
      CHECK(o.kind == Kind::Refused);
      CHECK_THAT(o.detail, Catch::Matchers::Contains(e.reason));
      refused += o.kind == Kind::Refused;
    }
  }
  auto ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  WARN(fmt::format("{} node tests passed and {} were refused as listed, in {:.0f} ms", passed,
                   refused, ms));
}

TEST_CASE("node_tests.txt lists every node test of a supported operator and every PyTorch test",
          "[onnx]") {
  auto list = read_list();
  std::vector<std::string> names;
  for (const auto& e : list) names.push_back(e.name);
  for (std::string set : {"node", "pytorch-converted", "pytorch-operator"}) {
    for (const auto& dir : fs::directory_iterator(fs::path(UNIFN_ONNX_TEST_DATA) / set)) {
      std::string test = dir.path().filename().string();
      if (!fs::exists(dir.path() / "model.onnx")) continue;
      if (set == "node" && !named_for_supported(test) && !only_supported_ops(dir.path())) continue;
      std::string name = set + "/" + test;
      INFO("test " << name << " is missing from node_tests.txt");
      CHECK(std::find(names.begin(), names.end(), name) != names.end());
    }
  }
}
