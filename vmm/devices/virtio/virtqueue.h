// A split virtqueue read from guest memory: checked ring layout, descriptor chains validated as
// they are popped.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "vmm/memory/guest_memory.h"

namespace unifn::vmm::virtio {

// One buffer of a chain, copied out of the descriptor table (the guest cannot change it
// afterwards).
struct Descriptor {
  std::uint64_t addr = 0;
  std::uint32_t len = 0;
  bool writable = false;  // device-writable (VIRTQ_DESC_F_WRITE)
};

// A descriptor chain as the device found it. When error is set the chain must be refused; when it
// is also complete (its end was found), its last descriptor may still carry a status answer.
struct Chain {
  std::uint16_t head = 0;
  std::vector<Descriptor> descs;  // in chain order, as far as the walk got
  bool complete = false;          // the walk reached a descriptor without NEXT
  std::string error;              // why the chain is malformed; empty when it is well-formed
  bool ok() const { return error.empty(); }
  // Where a status byte may be written even for a refused chain: the chain's last descriptor when
  // the chain is complete and that descriptor is device-writable, at least a byte long and in RAM.
  std::optional<Descriptor> status_slot(const GuestMemory& mem) const;
};

// The driver's ring setup and the device's progress: all a queue needs for a snapshot.
struct QueueState {
  std::uint16_t num = 0;         // queue size the driver chose (QueueNum)
  std::uint16_t ready = 0;       // QueueReady
  std::uint16_t last_avail = 0;  // next available-ring slot the device reads (free-running)
  std::uint16_t used_idx = 0;    // the device's used index (free-running)
  std::uint64_t desc = 0;        // gpa of the descriptor table
  std::uint64_t avail = 0;       // gpa of the available ring (QueueDriver)
  std::uint64_t used = 0;        // gpa of the used ring (QueueDevice)
  bool operator==(const QueueState&) const = default;
};

// Thrown by pop() when the available ring itself is corrupt (the device must stop using the queue).
class QueueError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class SplitQueue {
 public:
  explicit SplitQueue(std::uint16_t num_max) : num_max_(num_max) {}
  std::uint16_t num_max() const { return num_max_; }
  QueueState& state() { return s_; }
  const QueueState& state() const { return s_; }
  void reset() { s_ = {}; }

  // Why the rings as configured cannot be used (size, alignment, outside RAM), or "" when they can.
  std::string check_layout(const GuestMemory& mem) const;

  // The next chain the driver made available, validated; nullopt when none is pending.
  // Throws QueueError when the available ring is corrupt.
  std::optional<Chain> pop(const GuestMemory& mem);
  // Hands a chain back to the driver with the number of bytes written into it.
  void push_used(GuestMemory& mem, std::uint16_t head, std::uint32_t len);

 private:
  Chain walk(const GuestMemory& mem, std::uint16_t head) const;
  std::uint16_t num_max_;
  QueueState s_;
};

}  // namespace unifn::vmm::virtio
