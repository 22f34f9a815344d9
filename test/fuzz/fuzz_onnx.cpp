// fuzz_onnx: model bytes as a hostile guest would hand them over, through load(); a model that
// loads is then run on zeros of its declared input shapes. Every refusal must be a sentence, and
// nothing may throw past load() or run().
#include <cstddef>
#include <cstdint>
#include <exception>
#include <span>
#include <vector>

#include "accel/onnx/model.h"
#include "accel/onnx/run.h"
#include "test/fuzz/fuzz_common.h"

using namespace unifn::onnx_model;
using unifn::fuzz::describe;
using unifn::fuzz::finding;

namespace {

// Zeros of each input's declared shape (unknown sizes as 1), or nothing when they would be large.
bool zero_inputs(const Graph& g, std::vector<Tensor>& out) {
  std::int64_t total = 0;
  for (int id : g.inputs) {
    const Value& v = g.values[static_cast<std::size_t>(id)];
    std::vector<std::int64_t> dims;
    for (const Dim& d : v.dims) dims.push_back(d.value >= 0 ? d.value : 1);
    std::int64_t n = element_count(dims);
    if (n < 0 || (total += n) > (1 << 16)) return false;
    Tensor t;
    t.type = v.type;
    t.dims = dims;
    if (v.type == DType::Float)
      t.f.resize(static_cast<std::size_t>(n));
    else
      t.i.resize(static_cast<std::size_t>(n));
    out.push_back(std::move(t));
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Safe: std::byte may alias the fuzzer's bytes.
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    auto m = load(bytes);
    if (!m) {
      if (m.error().empty())
        finding("onnx-silent-refusal", "load() refused a model without saying why");
      return 0;
    }
    const Graph& g = *m.value();
    std::vector<Tensor> inputs;
    if (!zero_inputs(g, inputs)) return 0;
    auto out = run(g, inputs);
    if (!out && out.error().empty())
      finding("onnx-silent-run-failure", "run() failed without saying why");
    if (out && out->size() != g.outputs.size())
      finding("onnx-output-count",
              "run() answered a different number of outputs than the model has");
  } catch (...) {
    finding("onnx-throws",
            "an exception escaped load() or run(): " + describe(std::current_exception()));
  }
  return 0;
}
