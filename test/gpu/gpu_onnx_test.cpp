// Standalone GPU check of the ONNX executor: each case of onnx_gpu_cases (graphs parsed and run on
// the CPU executor where Debian's libraries are) run on CUDA, with cuDNN and cuBLAS where they load
// and again on unifn's own kernels, compared with the CPU's outputs; per-operator results, then
// throughput. Needs no Debian package at run time. Exit: 0 all match, 1 a mismatch, 77 no GPU.
// Usage: gpu_onnx_test [CASES_FILE]   (default: the build's onnx_gpu_cases.bin). On a machine
// lent with only the build folder's files: build/gpu_onnx_test build/onnx_gpu_cases.bin
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include "accel/cuda/onnx/run_cuda.h"
#include "test/gpu/onnx_cases.h"

using namespace unifn::onnx_model;

namespace {

// ONNX's backend-test relative tolerance; the absolute one allows for the GPU's other summation
// order on results near zero.
constexpr float kRtol = 1e-3f, kAtol = 1e-5f;

std::vector<std::byte> read_file(const char* path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(std::string("cannot open ") + path);
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto b = reinterpret_cast<const std::byte*>(s.data());  // Safe: std::byte may alias any object
  return {b, b + s.size()};
}

// "" when the CUDA run agrees with the CPU's outputs, else why not.
std::string check(const gpu_cases::Case& c, CudaRunOptions o) {
  auto out = run_on_cuda(c.graph, c.inputs, o);
  if (!out) return out.error();
  if (out->size() != c.expected.size()) return "the run gave a different number of outputs";
  for (std::size_t k = 0; k < out->size(); ++k)
    if (auto d = gpu_cases::difference(out.value()[k], c.expected[k], kRtol, kAtol); !d.empty())
      return "output " + std::to_string(k) + ": " + d;
  return "";
}

}  // namespace

int main(int argc, char** argv) try {
  if (auto why = cuda_unavailable_reason(); !why.empty()) {
    std::printf("no GPU: %s\n", why.c_str());
    return 77;
  }
  std::printf("CUDA: %s\n", cuda_detail().c_str());
  auto cases = gpu_cases::read_cases(read_file(argc > 1 ? argv[1] : UNIFN_ONNX_GPU_CASES));
  int failures = 0;
  std::map<std::string, std::pair<int, int>> per_op;  // operator: cases passed, cases run
  for (const auto& c : cases) {
    std::string libs = check(c, {}), own = check(c, {.cudnn = false, .cublas = false});
    bool ok = libs.empty() && own.empty();
    std::set<std::string> ops;
    for (const Node& n : c.graph.nodes) ops.insert(std::string(to_string(n.op)));
    std::string op_list;
    for (const auto& op : ops) {
      op_list += (op_list.empty() ? "" : ",") + op;
      per_op[op].first += ok, per_op[op].second += 1;
    }
    std::printf("%s %s [%s]%s%s%s%s\n", ok ? "ok  " : "FAIL", c.name.c_str(), op_list.c_str(),
                libs.empty() ? "" : " libraries: ", libs.c_str(),
                own.empty() ? "" : " own kernels: ", own.c_str());
    failures += !ok;
  }
  std::printf("\nper operator (cases passed / run):\n");
  for (const auto& [op, n] : per_op) std::printf("  %-20s %d/%d\n", op.c_str(), n.first, n.second);

  // Throughput: the case with the most multiply-adds' worth of data (the CNN when it is there).
  const gpu_cases::Case* big = nullptr;
  std::size_t most = 0;
  for (const auto& c : cases) {
    std::size_t weights = 0;
    for (const auto& [id, t] : c.graph.initializers) weights += t.f.size();
    for (const auto& t : c.inputs) weights += t.f.size();
    if (!big || weights > most) big = &c, most = weights;
  }
  if (big) {
    for (bool own : {false, true}) {
      CudaRunOptions o{.cudnn = !own, .cublas = !own};
      run_on_cuda(big->graph, big->inputs, o);  // warm-up: libraries' first calls
      int runs = 0;
      auto start = std::chrono::steady_clock::now();
      double seconds = 0;
      while (seconds < 2) {
        if (!run_on_cuda(big->graph, big->inputs, o)) break;
        ++runs;
        seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      }
      std::printf("throughput %s (%s): %.1f runs/s, %.3f ms per run (inputs up, outputs down)\n",
                  big->name.c_str(), own ? "own kernels" : "cuDNN/cuBLAS where loaded",
                  runs / seconds, 1e3 * seconds / std::max(runs, 1));
    }
  }
  std::printf("\n%zu cases, %d failed\n", cases.size(), failures);
  return failures ? 1 : 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "gpu_onnx_test: %s\n", e.what());
  return 1;
}
