// Bounds-checked little helpers to write and read flat snapshot state.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace unifn::vmm {

class ByteWriter {
 public:
  template <typename T>
  void pod(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* p =
        reinterpret_cast<const std::uint8_t*>(&v);  // Safe: trivially copyable object as bytes.
    out_.insert(out_.end(), p, p + sizeof(T));
  }
  void u64(std::uint64_t v) { pod(v); }
  void blob(std::span<const std::uint8_t> b) {
    u64(b.size());
    out_.insert(out_.end(), b.begin(), b.end());
  }
  void str(const std::string& s) {
    blob(std::span(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()));
  }  // Safe: chars as bytes.
  std::vector<std::uint8_t> take() { return std::move(out_); }

 private:
  std::vector<std::uint8_t> out_;
};

// Every read checks the remaining length, so a truncated or hostile file throws instead of
// overrunning.
class ByteReader {
 public:
  explicit ByteReader(std::span<const std::uint8_t> in) : in_(in) {}
  template <typename T>
  T pod() {
    static_assert(std::is_trivially_copyable_v<T>);
    need(sizeof(T));
    T v;
    std::memcpy(&v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::uint64_t u64() { return pod<std::uint64_t>(); }
  std::vector<std::uint8_t> blob(std::uint64_t max) {
    auto n = u64();
    if (n > max) throw std::runtime_error("snapshot state: a field is larger than its limit");
    need(n);
    std::vector<std::uint8_t> v(in_.begin() + static_cast<std::ptrdiff_t>(pos_),
                                in_.begin() + static_cast<std::ptrdiff_t>(pos_ + n));
    pos_ += n;
    return v;
  }
  // Exactly n bytes: the rest of a payload whose length the header gave.
  std::vector<std::uint8_t> blob_rest(std::uint64_t n) {
    need(n);
    std::vector<std::uint8_t> v(in_.begin() + static_cast<std::ptrdiff_t>(pos_),
                                in_.begin() + static_cast<std::ptrdiff_t>(pos_ + n));
    pos_ += n;
    return v;
  }
  std::string str(std::uint64_t max) {
    auto b = blob(max);
    return std::string(b.begin(), b.end());
  }
  void expect_end(const char* what) const {
    if (pos_ != in_.size()) throw std::runtime_error(std::string(what) + ": trailing bytes");
  }

 private:
  void need(std::uint64_t n) const {
    if (n > in_.size() - pos_) throw std::runtime_error("snapshot state is truncated");
  }
  std::span<const std::uint8_t> in_;
  std::size_t pos_ = 0;
};

}  // namespace unifn::vmm
