// Writes the ONNX cases the standalone GPU test runs (test/gpu/onnx_cases.h): every node test that
// node_tests.txt lists as passing, and each model named on the command line with a fixed
// pseudo-random input, each run on the CPU executor for the expected outputs.
// Usage: onnx_gpu_cases OUT TEST_DATA_DIR NODE_LIST [MODEL.onnx...]
#include <cstdio>
#include <fstream>
#include <random>

#include "accel/onnx/model.h"
#include "accel/onnx/run.h"
#include "test/gpu/onnx_cases.h"
#include "test/unit/onnx/node_test_data.h"

namespace fs = std::filesystem;
using namespace unifn::onnx_model;

namespace {

// The CPU executor's outputs for `inputs`, or the case left out with the reason on stderr.
bool add(std::vector<gpu_cases::Case>& cases, std::string name, const Graph& g,
         std::vector<Tensor> inputs) {
  auto out = run(g, inputs);
  if (!out) {
    std::fprintf(stderr, "onnx_gpu_cases: %s left out: the CPU executor says %s\n", name.c_str(),
                 out.error().c_str());
    return false;
  }
  cases.push_back({std::move(name), g, std::move(inputs), std::move(out.value())});
  return true;
}

// An input of the model's declared shape (unknown dims 1) filled with values in [-1, 1).
Tensor random_input(const Value& v, std::mt19937& rng) {
  std::vector<std::int64_t> dims;
  for (const Dim& d : v.dims) dims.push_back(d.value >= 0 ? d.value : 1);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> data(static_cast<std::size_t>(element_count(dims)));
  for (float& x : data) x = u(rng);
  return Tensor::floats(dims, std::move(data));
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 4) {
    std::fprintf(stderr, "usage: onnx_gpu_cases OUT TEST_DATA_DIR NODE_LIST [MODEL.onnx...]\n");
    return 2;
  }
  fs::path data = argv[2];
  std::vector<gpu_cases::Case> cases;
  for (const std::string& name : testing::passing_tests(argv[3])) {
    auto model = load(testing::read_bytes(data / name / "model.onnx"));
    if (!model) throw std::runtime_error(name + " no longer loads: " + model.error());
    add(cases, name, *model.value(),
        testing::read_tensors(data / name / "test_data_set_0", "input"));
  }
  std::mt19937 rng(12);
  for (int k = 4; k < argc; ++k) {
    auto model = load(testing::read_bytes(argv[k]));
    if (!model) throw std::runtime_error(std::string(argv[k]) + " does not load: " + model.error());
    std::vector<Tensor> inputs;
    for (int id : model.value()->inputs)
      inputs.push_back(random_input(model.value()->values[static_cast<std::size_t>(id)], rng));
    add(cases,
        fs::path(argv[k]).parent_path().filename().string() + "/" +
            fs::path(argv[k]).stem().string(),
        *model.value(), std::move(inputs));
  }
  auto bytes = gpu_cases::write_cases(cases);
  std::ofstream f(argv[1], std::ios::binary);
  // Safe: std::byte may alias any object; write() takes the bytes as chars.
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error(std::string("cannot write ") + argv[1]);
  std::printf("onnx_gpu_cases: %zu cases, %zu bytes in %s\n", cases.size(), bytes.size(), argv[1]);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "onnx_gpu_cases: %s\n", e.what());
  return 1;
}
