// isa-debug-exit: lets test kernels written for QEMU end the VM with a status of their choosing.
#include "vmm/devices/debug_exit.h"

#include <fmt/format.h>

namespace unifn::vmm {

void DebugExit::attach(Machine& machine, std::uint16_t port) {
  machine.on_ports(port, kPorts, [](Machine&, PortAccess& a) { return access(a); });
}

IoResult DebugExit::access(PortAccess& a) {
  if (!a.write) {
    for (auto& b : a.data) b = 0;
    return IoResult::next();
  }
  std::uint32_t value = 0;
  for (std::size_t i = 0; i < a.data.size() && i < 4; ++i)
    value |= std::uint32_t(a.data[i]) << (8 * i);
  const int status = status_for(value);
  return IoResult::halt(
      Stop{StopKind::Exited, status,
           fmt::format("the guest wrote {:#x} to isa-debug-exit (port {:#x}): exit status {}",
                       value, a.port, status)});
}

}  // namespace unifn::vmm
