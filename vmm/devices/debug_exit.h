// QEMU's isa-debug-exit on port 0xF4: a guest write of v ends the run with status (v << 1) | 1.
#pragma once

#include <cstdint>

#include "vmm/machine.h"

namespace unifn::vmm {

class DebugExit {
 public:
  static constexpr std::uint16_t kPort = 0xF4;
  // QEMU's default iosize: one port, but a wider `out` is taken whole, as QEMU does.
  static constexpr std::uint16_t kPorts = 1;

  // The exit status for a written value: (v << 1) | 1, so a guest can never exit 0 this way.
  static int status_for(std::uint32_t value) { return static_cast<int>((value << 1) | 1u); }

  void attach(Machine& machine, std::uint16_t port = kPort);
  // A write stops the run with StopKind::Exited; a read returns 0, as QEMU's device does.
  static IoResult access(PortAccess& a);
};

}  // namespace unifn::vmm
