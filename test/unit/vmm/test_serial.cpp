// 16550 UART registers (transmit, DLAB, IER/IIR, loopback, scratch) and its snapshot state round
// trip.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "vmm/devices/serial.h"

using unifn::vmm::Serial16550;
using R = Serial16550::Reg;

namespace {

struct Captured {
  std::string text;
  int calls = 0;
  Serial16550::Sink sink() {
    return [this](std::string_view s) {
      text.append(s);
      ++calls;
    };
  }
};

void send(Serial16550& u, std::string_view s) {
  for (char c : s) u.write(R::kData, static_cast<std::uint8_t>(c));
}

}  // namespace

TEST_CASE("the transmitter always reads empty, so polling kernels never wait", "[serial]") {
  Serial16550 u;
  CHECK(u.read(R::kLsr) == 0x60);
  send(u, "x");
  CHECK(u.read(R::kLsr) == 0x60);
}

TEST_CASE("transmitted bytes reach the sink a line at a time, and flush sends the rest",
          "[serial]") {
  Captured c;
  Serial16550 u(c.sink());
  send(u, "hello");
  CHECK(c.text.empty());
  send(u, "\nworld");
  CHECK(c.text == "hello\n");
  u.flush();
  CHECK(c.text == "hello\nworld");
  CHECK(u.bytes_transmitted() == 11);
  u.flush();
  CHECK(c.calls == 2);  // nothing left: no empty call
}

TEST_CASE("with DLAB set, ports 0 and 1 are the divisor latch and transmit nothing", "[serial]") {
  Captured c;
  Serial16550 u(c.sink());
  u.write(R::kIer, 0x05);
  u.write(R::kLcr, 0x80);
  u.write(R::kData, 0x01);
  u.write(R::kIer, 0x02);
  CHECK(u.read(R::kData) == 0x01);
  CHECK(u.read(R::kIer) == 0x02);
  CHECK(u.read(R::kLcr) == 0x80);
  u.write(R::kLcr, 0x03);
  CHECK(u.read(R::kLcr) == 0x03);
  CHECK(u.read(R::kIer) == 0x05);  // IER kept its value behind the latch
  u.flush();
  CHECK(c.text.empty());
  CHECK(u.registers().dll == 0x01);
  CHECK(u.registers().dlm == 0x02);
}

TEST_CASE("IER keeps its four bits, IIR reports FIFOs and a transmitter-empty interrupt once",
          "[serial]") {
  Serial16550 u;
  u.write(R::kIer, 0xFF);
  CHECK(u.read(R::kIer) == 0x0F);
  CHECK(u.read(R::kIir) == 0x02);  // enabling THRI with the holding register empty raises it
  CHECK(u.read(R::kIir) == 0x01);  // reading IIR acknowledged it
  u.write(R::kIir, 0xC7);          // FCR: enable and clear the FIFOs
  CHECK(u.read(R::kIir) == 0xC1);
  send(u, "a");
  CHECK(u.read(R::kIir) == 0xC2);
  CHECK(u.read(R::kIir) == 0xC1);
  u.write(R::kIir, 0x00);
  CHECK(u.read(R::kIir) == 0x01);
}

TEST_CASE("scratch, line and modem control registers read back", "[serial]") {
  Serial16550 u;
  u.write(R::kScr, 0x5A);
  CHECK(u.read(R::kScr) == 0x5A);
  u.write(R::kLcr, 0x1B);
  CHECK(u.read(R::kLcr) == 0x1B);
  u.write(R::kMcr, 0xFF);
  CHECK(u.read(R::kMcr) == 0x1F);
  u.write(R::kMcr, 0x0B);
  CHECK(u.read(R::kMsr) == 0xB0);  // carrier, data set ready, clear to send
  u.write(R::kLsr, 0x00);          // read-only: ignored
  CHECK(u.read(R::kLsr) == 0x60);
}

TEST_CASE("loopback mode turns sent bytes into received ones and wires MCR to MSR", "[serial]") {
  Captured c;
  Serial16550 u(c.sink());
  u.write(R::kMcr, 0x10 | 0x0A);  // loop, OUT2, RTS: what Linux's probe writes
  CHECK((u.read(R::kMsr) & 0xF0) == 0x90);
  u.write(R::kData, 'Q');
  CHECK(u.read(R::kLsr) == 0x61);
  CHECK(u.read(R::kData) == 'Q');
  CHECK(u.read(R::kLsr) == 0x60);
  u.flush();
  CHECK(c.text.empty());
  CHECK(u.bytes_transmitted() == 0);
}

TEST_CASE("port accesses map to registers, wider accesses cover the next ports", "[serial]") {
  Captured c;
  Serial16550 u(c.sink());
  std::vector<std::uint8_t> buf{'h', 'i'};
  unifn::vmm::PortAccess w{0x3F8, true, std::span(buf.data(), 1)};
  CHECK(!u.access(0x3F8, w).stop);
  std::uint8_t lsr = 0;
  unifn::vmm::PortAccess r{0x3FD, false, std::span(&lsr, 1)};
  u.access(0x3F8, r);
  CHECK(lsr == 0x60);
  std::uint8_t two[2] = {0, 0};
  unifn::vmm::PortAccess wide{0x3FE, false, std::span(two, 2)};
  u.write(R::kScr, 0x77);
  u.access(0x3F8, wide);
  CHECK(two[0] == 0xB0);
  CHECK(two[1] == 0x77);
  std::uint8_t past[2] = {0, 0};
  unifn::vmm::PortAccess over{0x3FF, false, std::span(past, 2)};
  u.access(0x3F8, over);
  CHECK(past[1] == 0xFF);  // beyond the chip
  u.flush();
  CHECK(c.text == "h");
}
