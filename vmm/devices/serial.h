// A 16550A UART (COM1) for third-party kernels: transmit to a sink, registers that read back
// sensibly.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/machine.h"

namespace unifn::vmm {

// Transmits instantly and never receives from outside, so the transmitter always reads empty
// (LSR 0x60) and kernels that poll LSR before each byte never wait. No interrupt line is wired:
// IIR still reports what would be pending, so drivers that probe the chip see a 16550A.
class Serial16550 {
 public:
  static constexpr std::uint16_t kCom1 = 0x3F8;
  static constexpr std::uint16_t kPorts = 8;

  // Register offsets from the base port.
  enum Reg : std::uint8_t {
    kData = 0,
    kIer = 1,
    kIir = 2,
    kLcr = 3,
    kMcr = 4,
    kLsr = 5,
    kMsr = 6,
    kScr = 7
  };

  using Sink = std::function<void(std::string_view bytes)>;
  explicit Serial16550(Sink sink = {}) : sink_(std::move(sink)) {}

  // Claims [base, base + 8) on the machine's port bus; the device must outlive the machine's runs.
  // Every access exits to the VMM. KVM's coalesced PIO would spare the exit of each THR write, but
  // on the PVM hosts we measure on, registering the zone makes VM teardown about 10 ms slower (an
  // SRCU grace period), which costs more than it saves unless a kernel prints thousands of bytes.
  void attach(Machine& machine, std::uint16_t base = kCom1);

  // One guest access at `offset` (0..7) from the base; wider accesses go byte by byte to the
  // following registers, as on the ISA bus.
  std::uint8_t read(std::uint8_t offset);
  void write(std::uint8_t offset, std::uint8_t value);
  IoResult access(std::uint16_t base, PortAccess& a);

  // Hands buffered transmit bytes to the sink. Output is passed on a line at a time (or every
  // 4 KiB); call this when the guest stops so a last unterminated line is not lost.
  void flush();
  std::uint64_t bytes_transmitted() const { return transmitted_; }

  // No snapshot state: only multiboot and PVH kernels have a UART, and they are never snapshotted
  // (function VMs, which are, print through the hypercall console).

  // The registers.
  struct Registers {
    std::uint8_t rbr = 0;  // last received byte (only loopback writes arrive)
    std::uint8_t ier = 0;
    std::uint8_t fcr = 0;
    std::uint8_t lcr = 0;
    std::uint8_t mcr = 0;
    std::uint8_t scr = 0;
    std::uint8_t dll = 0x0C;  // 9600 baud from the 1.8432 MHz clock
    std::uint8_t dlm = 0;
    std::uint8_t rx_full = 0;       // rbr holds an unread byte
    std::uint8_t thri_pending = 0;  // "transmitter empty" interrupt waiting to be read from IIR
  };
  const Registers& registers() const { return r_; }

 private:
  void transmit(std::uint8_t byte);
  std::uint8_t msr() const;
  std::uint8_t iir();

  static constexpr std::size_t kMaxBuffered = 4096;
  Sink sink_;
  Registers r_;
  std::string out_;
  std::uint64_t transmitted_ = 0;
};

}  // namespace unifn::vmm
