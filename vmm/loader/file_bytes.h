// Bounds-checked reads from an image file's bytes, shared by the ELF and multiboot loaders.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>

namespace unifn::vmm::file_bytes {

// Whether [off, off+len) lies inside a file of total bytes, without overflowing.
inline bool fits(std::uint64_t off, std::uint64_t len, std::uint64_t total) {
  return off <= total && len <= total - off;
}

// A T copied from file at off; the caller has checked fits(off, sizeof(T), file.size()).
template <typename T>
T read_at(std::span<const std::uint8_t> file, std::uint64_t off) {
  T v;
  std::memcpy(&v, file.data() + off, sizeof(T));
  return v;
}

inline std::uint64_t align4(std::uint64_t v) { return (v + 3) & ~3ull; }

}  // namespace unifn::vmm::file_bytes
