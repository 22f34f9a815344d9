// A pre-warmed function VM frozen at its first NEXT_REQUEST: RAM file, vCPU, devices, guest state.
#pragma once

#include <cstdint>
#include <vector>

#include "vmm/guest/linux_syscalls.h"
#include "vmm/fd.h"
#include "vmm/machine.h"

namespace unifn::vmm {

// Where the heap, the stack and the request/response area sit in a function VM's RAM.
// Whether it fits the plan is SnapshotStore::state_problem's question.
struct GuestLayout {
  std::uint64_t ram = 0, heap_start = 0, heap_end = 0, stack_top = 0, io_buf = 0, io_size = 0;
  bool operator==(const GuestLayout&) const = default;

  static constexpr std::uint32_t kVersion = 1;
  void write(ByteWriter& w) const;
  static GuestLayout read(ByteReader& r);
};

struct Snapshot {
  Fd ram;  // RAM contents, file-sized to the whole RAM; zero pages are holes
  CpuState cpu;
  GuestLayout layout;
  HeapState heap;
  std::uint64_t parked_at = 0;  // gpa of the unifn_hc_next the guest waits in
  std::vector<std::vector<std::uint8_t>>
      devices;  // MmioDevice::save() of each, in order (each device's encoding)
};

}  // namespace unifn::vmm
