// 16550A UART register model: transmit buffer, divisor latch, loopback, IIR priorities.
#include "vmm/devices/serial.h"

namespace unifn::vmm {

namespace {

// Register bits (16550A data sheet names).
constexpr std::uint8_t kIerRdi = 0x01, kIerThri = 0x02, kIerMask = 0x0F;
constexpr std::uint8_t kIirNoInt = 0x01, kIirThri = 0x02, kIirRdi = 0x04, kIirFifos = 0xC0;
constexpr std::uint8_t kFcrEnable = 0x01, kFcrClearRx = 0x02, kFcrKeep = 0xC9;
constexpr std::uint8_t kLcrDlab = 0x80;
constexpr std::uint8_t kMcrDtr = 0x01, kMcrRts = 0x02, kMcrOut1 = 0x04, kMcrOut2 = 0x08,
                       kMcrLoop = 0x10, kMcrMask = 0x1F;
constexpr std::uint8_t kLsrDr = 0x01, kLsrThre = 0x20, kLsrTemt = 0x40;
constexpr std::uint8_t kMsrCts = 0x10, kMsrDsr = 0x20, kMsrRi = 0x40, kMsrDcd = 0x80;

}  // namespace

void Serial16550::attach(Machine& machine, std::uint16_t base) {
  machine.on_ports(base, kPorts, [this, base](Machine&, PortAccess& a) { return access(base, a); });
}

IoResult Serial16550::access(std::uint16_t base, PortAccess& a) {
  for (std::size_t i = 0; i < a.data.size(); ++i) {
    const unsigned offset = static_cast<unsigned>(a.port - base) + static_cast<unsigned>(i);
    if (offset >= kPorts) {
      if (!a.write) a.data[i] = 0xFF;  // past the chip: an unclaimed port
      continue;
    }
    if (a.write)
      write(static_cast<std::uint8_t>(offset), a.data[i]);
    else
      a.data[i] = read(static_cast<std::uint8_t>(offset));
  }
  return IoResult::next();
}

std::uint8_t Serial16550::msr() const {
  if (r_.mcr & kMcrLoop) {
    // Loopback wires the modem outputs back to the inputs.
    return static_cast<std::uint8_t>(
        ((r_.mcr & kMcrRts) ? kMsrCts : 0) | ((r_.mcr & kMcrDtr) ? kMsrDsr : 0) |
        ((r_.mcr & kMcrOut1) ? kMsrRi : 0) | ((r_.mcr & kMcrOut2) ? kMsrDcd : 0));
  }
  return kMsrDcd | kMsrDsr | kMsrCts;  // a peer is always connected and ready
}

std::uint8_t Serial16550::iir() {
  const std::uint8_t fifos = (r_.fcr & kFcrEnable) ? kIirFifos : 0;
  if ((r_.ier & kIerRdi) && r_.rx_full) return fifos | kIirRdi;
  if ((r_.ier & kIerThri) && r_.thri_pending) {
    r_.thri_pending = 0;  // reading IIR acknowledges the transmitter-empty interrupt
    return fifos | kIirThri;
  }
  return fifos | kIirNoInt;
}

std::uint8_t Serial16550::read(std::uint8_t offset) {
  const bool dlab = r_.lcr & kLcrDlab;
  switch (offset) {
    case kData:
      if (dlab) return r_.dll;
      r_.rx_full = 0;
      return r_.rbr;
    case kIer:
      return dlab ? r_.dlm : r_.ier;
    case kIir:
      return iir();
    case kLcr:
      return r_.lcr;
    case kMcr:
      return r_.mcr;
    case kLsr:
      return static_cast<std::uint8_t>(kLsrThre | kLsrTemt | (r_.rx_full ? kLsrDr : 0));
    case kMsr:
      return msr();
    case kScr:
      return r_.scr;
    default:
      return 0xFF;
  }
}

void Serial16550::write(std::uint8_t offset, std::uint8_t value) {
  const bool dlab = r_.lcr & kLcrDlab;
  switch (offset) {
    case kData:
      if (dlab) {
        r_.dll = value;
      } else {
        transmit(value);
        r_.thri_pending = 1;  // the byte left at once: the holding register is empty again
      }
      break;
    case kIer:
      if (dlab) {
        r_.dlm = value;
      } else {
        // Enabling the transmitter-empty interrupt while the holding register is empty raises it.
        if (!(r_.ier & kIerThri) && (value & kIerThri)) r_.thri_pending = 1;
        r_.ier = value & kIerMask;
      }
      break;
    case kIir:  // FCR on writes
      if (value & kFcrClearRx) r_.rx_full = 0;
      r_.fcr = value & kFcrKeep;
      break;
    case kLcr:
      r_.lcr = value;
      break;
    case kMcr:
      r_.mcr = value & kMcrMask;
      break;
    case kScr:
      r_.scr = value;
      break;
    default:
      break;  // LSR and MSR are read-only (writes are a factory test mode)
  }
}

void Serial16550::transmit(std::uint8_t byte) {
  if (r_.mcr & kMcrLoop) {
    r_.rbr = byte;  // loopback: what is sent is received, nothing leaves the chip
    r_.rx_full = 1;
    return;
  }
  ++transmitted_;
  out_.push_back(static_cast<char>(byte));
  if (byte == '\n' || out_.size() >= kMaxBuffered) flush();
}

void Serial16550::flush() {
  if (out_.empty()) return;
  if (sink_) sink_(out_);
  out_.clear();
}

}  // namespace unifn::vmm
