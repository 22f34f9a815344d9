// Device scratch buffers that ops borrow one at a time: grown on demand up to a cap, trimmed after
// each op.
#pragma once

#include <cstddef>
#include <functional>
#include <span>
#include <vector>

#include "accel/backend.h"

namespace unifn::accel {

// The CUDA backend copies guest buffers into these; the policy is plain C++ so that it is tested
// without a GPU. Not thread-safe: its user holds the resource's turn (FairGate) around each op.
class ScratchPool {
 public:
  struct Limits {
    std::size_t max_bytes = std::size_t{8} << 30;  // one op may hold at most this much at once
    std::size_t keep_bytes = std::size_t{256}
                             << 20;  // what stays held between ops, for the next one
  };
  // How buffers are made and freed (cudaMalloc and cudaFree); alloc returns nullptr on failure.
  struct Allocator {
    std::function<void*(std::size_t)> alloc;
    std::function<void(void*)> free;
  };

  ScratchPool(std::size_t slots, Limits limits, Allocator allocator);
  ~ScratchPool();
  ScratchPool(const ScratchPool&) = delete;
  ScratchPool& operator=(const ScratchPool&) = delete;

  // Makes slot i hold at least bytes[i] for the op about to run (0: not needed) and puts its
  // address in out[i]. Fails, naming the sizes, when they add up to more than max_bytes or the
  // allocator fails; the op must not run then.
  Result acquire(std::span<const std::size_t> bytes, std::span<void*> out);
  // After the op: frees buffers, largest first, until at most keep_bytes stay held.
  void trim();

  std::size_t held_bytes() const;
  const Limits& limits() const { return limits_; }

 private:
  struct Buf {
    void* ptr = nullptr;
    std::size_t size = 0;
  };
  void release(Buf& b);

  Limits limits_;
  Allocator allocator_;
  std::vector<Buf> bufs_;
};

}  // namespace unifn::accel
