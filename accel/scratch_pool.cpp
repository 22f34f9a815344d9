// ScratchPool: reuse what fits, reallocate what does not, never past the cap; trim to keep_bytes
// after each op.
#include "accel/scratch_pool.h"

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <stdexcept>
#include <string>

namespace unifn::accel {

namespace {

// No fmt here: this file is part of the standalone GPU test, which runs where no Debian library is.
std::string mib(std::size_t bytes) {
  char s[32];
  std::snprintf(s, sizeof s, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return s;
}

std::string sizes(std::span<const std::size_t> bytes) {
  std::string s;
  for (std::size_t i = 0; i < bytes.size(); ++i)
    if (bytes[i]) s += (s.empty() ? "" : " + ") + mib(bytes[i]);
  return s;
}

}  // namespace

ScratchPool::ScratchPool(std::size_t slots, Limits limits, Allocator allocator)
    : limits_(limits), allocator_(std::move(allocator)), bufs_(slots) {
  if (!allocator_.alloc || !allocator_.free)
    throw std::invalid_argument("a scratch pool needs an allocator");
  if (limits_.keep_bytes > limits_.max_bytes) limits_.keep_bytes = limits_.max_bytes;
}

ScratchPool::~ScratchPool() {
  for (auto& b : bufs_) release(b);
}

void ScratchPool::release(Buf& b) {
  if (b.ptr) allocator_.free(b.ptr);
  b = {};
}

Result ScratchPool::acquire(std::span<const std::size_t> bytes, std::span<void*> out) {
  if (bytes.size() > bufs_.size() || out.size() < bytes.size())
    throw std::logic_error("ScratchPool::acquire: more slots asked for than the pool has");
  const std::size_t need = std::accumulate(bytes.begin(), bytes.end(), std::size_t{0});
  if (need > limits_.max_bytes)
    return Result::fail(Status::Error, "the op needs " + mib(need) + " of device scratch (" +
                                           sizes(bytes) + "), more than the " +
                                           mib(limits_.max_bytes) + " one op may hold");
  // What would be held if every buffer that is big enough were kept: past the cap, start afresh.
  std::size_t kept = 0;
  for (std::size_t i = 0; i < bufs_.size(); ++i) {
    const std::size_t want = i < bytes.size() ? bytes[i] : 0;
    kept += std::max(bufs_[i].size, want);
  }
  if (kept > limits_.max_bytes)
    for (auto& b : bufs_) release(b);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    Buf& b = bufs_[i];
    if (bytes[i] == 0) {
      out[i] = nullptr;
      continue;
    }
    if (b.size < bytes[i]) {
      release(b);
      b.ptr = allocator_.alloc(bytes[i]);
      if (!b.ptr)
        return Result::fail(Status::Error, "the device could not allocate " + mib(bytes[i]) +
                                               " of scratch (" + mib(held_bytes()) +
                                               " already held)");
      b.size = bytes[i];
    }
    out[i] = b.ptr;
  }
  return Result::success();
}

void ScratchPool::trim() {
  while (held_bytes() > limits_.keep_bytes) {
    auto biggest = std::max_element(bufs_.begin(), bufs_.end(),
                                    [](const Buf& a, const Buf& b) { return a.size < b.size; });
    release(*biggest);
  }
}

std::size_t ScratchPool::held_bytes() const {
  std::size_t n = 0;
  for (const auto& b : bufs_) n += b.size;
  return n;
}

}  // namespace unifn::accel
