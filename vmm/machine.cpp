// What every platform's machine shares: the port and MMIO buses, the trap handlers, cancel.
#include "vmm/machine.h"

#include <fmt/format.h>

namespace unifn::vmm {

std::string_view to_string(StopKind kind) {
  switch (kind) {
    case StopKind::Parked:
      return "parked";
    case StopKind::Exited:
      return "exited";
    case StopKind::Halted:
      return "halted";
    case StopKind::Aborted:
      return "aborted";
    case StopKind::Fault:
      return "fault";
    case StopKind::Timeout:
      return "timeout";
    case StopKind::Cancelled:
      return "cancelled";
  }
  return "unknown";
}

std::string_view to_string(PlatformKind kind) {
  switch (kind) {
    case PlatformKind::Kvm:
      return "kvm";
    case PlatformKind::Sandbox:
      return "sandbox";
    case PlatformKind::Fake:
      return "fake";
  }
  return "unknown";
}

Machine::Machine(std::unique_ptr<GuestMemory> memory) : mem_(std::move(memory)) {}

Machine::~Machine() = default;

void Machine::on_ports(std::uint16_t first, std::uint16_t count, PortHandler handler) {
  ports_[first] = PortRange{count, std::move(handler)};
}

void Machine::on_mmio(std::uint64_t base, std::uint64_t size, MmioHandler handler) {
  mmio_[base] = MmioRange{size, std::move(handler)};
}

void Machine::cancel() {
  cancel_.store(true);
  kick();
}

std::optional<Stop> Machine::port_access(PortAccess& a) {
  auto it = ports_.upper_bound(a.port);
  if (it == ports_.begin() || a.port >= std::prev(it)->first + std::prev(it)->second.count) {
    // Unclaimed ports read as all ones and ignore writes, as on real hardware.
    if (!a.write) std::fill(a.data.begin(), a.data.end(), std::uint8_t{0xFF});
    return std::nullopt;
  }
  return std::prev(it)->second.handler(*this, a).stop;
}

bool Machine::has_mmio(std::uint64_t addr) const {
  auto it = mmio_.upper_bound(addr);
  return it != mmio_.begin() && addr - std::prev(it)->first < std::prev(it)->second.size;
}

std::optional<Stop> Machine::mmio_access(MmioAccess& a) {
  if (!has_mmio(a.addr))
    return Stop{StopKind::Fault, 0,
                fmt::format("the guest {} unmapped guest-physical address {:#x} at {}",
                            a.write ? "wrote" : "read", a.addr, where())};
  return std::prev(mmio_.upper_bound(a.addr))->second.handler(*this, a).stop;
}

std::optional<Stop> Machine::syscall(GuestRegs& regs) {
  if (!syscall_)
    return Stop{
        StopKind::Fault, 0,
        fmt::format("the guest made system call {} and nothing serves system calls here, at {}",
                    regs.rax, where())};
  return syscall_(*this, regs).stop;
}

std::optional<Stop> Machine::exception(const GuestException& e) {
  if (!exception_)
    return Stop{StopKind::Fault, 0,
                fmt::format("guest exception (vector {}) at {}", e.vector, where())};
  return exception_(*this, e).stop;
}

}  // namespace unifn::vmm
