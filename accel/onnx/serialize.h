// A loaded graph as bytes and back, so that a graph parsed where the ONNX library is can run where
// it is not (the standalone GPU test). Not a model format for guests: the reader checks every
// count, id and size, but the bytes come from the build, never from a tenant.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "accel/onnx/expected.h"
#include "accel/onnx/model.h"
#include "accel/onnx/tensor.h"

namespace unifn::onnx_model {

// Appends fixed-width little-endian fields (the x86-64 and aarch64 hosts' own order).
class ByteWriter {
 public:
  void u64(std::uint64_t v);
  void i64(std::int64_t v) { u64(static_cast<std::uint64_t>(v)); }
  void f32(float v);
  void str(const std::string& s);
  void ints(const std::vector<std::int64_t>& v);
  void tensor(const Tensor& t);
  void graph(const Graph& g);
  const std::vector<std::byte>& bytes() const { return out_; }

 private:
  std::vector<std::byte> out_;
};

// Reads what ByteWriter wrote; each read throws std::runtime_error with a sentence on bytes that
// end early or hold a count, id or size that cannot be right.
class ByteReader {
 public:
  explicit ByteReader(std::span<const std::byte> in) : in_(in) {}
  std::uint64_t u64();
  std::int64_t i64() { return static_cast<std::int64_t>(u64()); }
  float f32();
  std::string str();
  std::vector<std::int64_t> ints();
  Tensor tensor();
  Graph graph();
  bool done() const { return at_ == in_.size(); }

 private:
  std::size_t count(std::size_t each_bytes);  // a count of items of at least that size each
  std::span<const std::byte> take(std::size_t n);
  std::span<const std::byte> in_;
  std::size_t at_ = 0;
};

std::vector<std::byte> serialize(const Graph& g);
Expected<Graph> deserialize(std::span<const std::byte> bytes);

}  // namespace unifn::onnx_model
