// Reading ONNX's backend node tests: model.onnx and test_data_set_0/{input,output}_N.pb.
#pragma once

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

#include "accel/onnx/tensor_proto.h"

namespace unifn::onnx_model::testing {

inline std::vector<std::byte> read_bytes(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + p.string());
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto b = reinterpret_cast<const std::byte*>(s.data());  // Safe: std::byte may alias any object
  return {b, b + s.size()};
}

// The tensors prefix_0.pb, prefix_1.pb, ... in a test's data set, in order.
inline std::vector<Tensor> read_tensors(const std::filesystem::path& set,
                                        const std::string& prefix) {
  std::vector<Tensor> out;
  for (int k = 0;; ++k) {
    auto p = set / (prefix + "_" + std::to_string(k) + ".pb");
    if (!std::filesystem::exists(p)) return out;
    auto bytes = read_bytes(p);
    onnx::TensorProto t;
    if (!t.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
      throw std::runtime_error("not a TensorProto: " + p.string());
    auto v = from_proto(t, p.string());
    if (!v) throw std::runtime_error(v.error());
    out.push_back(std::move(v.value()));
  }
}

// The tests node_tests.txt lists as passing ("node/test_relu", ...), in its order.
inline std::vector<std::string> passing_tests(const std::filesystem::path& list) {
  std::ifstream f(list);
  if (!f) throw std::runtime_error("cannot open " + list.string());
  std::vector<std::string> out;
  for (std::string line; std::getline(f, line);) {
    auto space = line.find(' ');
    if (line.empty() || line[0] == '#' || space == std::string::npos) continue;
    if (line.substr(space + 1) == "pass") out.push_back(line.substr(0, space));
  }
  return out;
}

}  // namespace unifn::onnx_model::testing
