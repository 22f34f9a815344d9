// A guest that floods its console and hands the VMM addresses below its user memory, on each
// platform: writes answer short counts, the log gets at most its limits and says once what it
// dropped, a guest printing forever is stopped at its deadline, and low addresses are refused.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "test/support/console_lines.h"
#include "vmm/devices/console.h"
#include "vmm/guest/function_vm.h"
#include "test/integration/helpers.h"

using namespace unifn;
using namespace unifn::itest;
using namespace std::chrono_literals;
using vmm::ConsoleLimits;

namespace {

struct Flood : test::ConsoleLines {
  std::unique_ptr<vmm::FunctionVm> vm;

  Flood() {
    vm = vmm::FunctionVm::boot(vmm::FunctionImage::load(guest("console_flood")), {},
                               [this](std::string_view l) { add(l); });
  }
  vmm::Outcome call(const std::string& body, std::chrono::milliseconds timeout = 20s) {
    return vm->invoke(std::span(reinterpret_cast<const std::uint8_t*>(body.data()), body.size()),
                      "text/plain",  // Safe: chars as bytes.
                      std::chrono::steady_clock::now() + timeout);
  }
};

}  // namespace

TEST_CASE(
    "a guest writing 64 MiB gets 64 KiB per write, and the log 1 MiB of it and one line saying "
    "what was dropped") {
  Flood f;
  auto out = f.call("flood");
  REQUIRE(out.ok());
  CHECK(out.body == "calls=1024 bytes=67108864 max=65536\n");
  CHECK(f.guest_bytes() <=
        ConsoleLimits::kPerRequest + 1);  // + the newline counted for the last, unfinished line
  CHECK(f.guest_bytes() > ConsoleLimits::kPerRequest - 1000);
  CHECK(f.said("console output over 1048576 bytes in one request: 66060288 bytes dropped") == 1);
  CHECK(f.said("console output over") == 1);
  f.lines.clear();
  auto next = f.call("other");
  CHECK(next.ok());
  CHECK(next.body == "ok\n");
  CHECK(f.said("console output over") == 0);
}

TEST_CASE("a guest printing forever is stopped at its call's deadline, its log within the limits") {
  Flood f;
  const auto t0 = std::chrono::steady_clock::now();
  auto out = f.call("forever", 2s);
  const auto took = std::chrono::steady_clock::now() - t0;
  CHECK(out.stop.kind == vmm::StopKind::Timeout);
  CHECK(took < 4s);
  CHECK(f.guest_bytes() <= ConsoleLimits::kPerRequest + 1);
  CHECK(f.lines.size() <= ConsoleLimits::kBurstLines + 4 * ConsoleLimits::kLinesPerSecond + 4);
  CHECK(f.said("console output over 1048576 bytes in one request") == 1);
  CHECK(f.said("console output over 262144 bytes or 1000 lines a second") <= 1);
}

TEST_CASE("one CONSOLE_WRITE of 8 MiB shows 64 KiB and says what it dropped") {
  Flood f;
  auto out = f.call("putflood");
  REQUIRE(out.ok());
  CHECK(out.body == "put\n");
  CHECK(f.guest_bytes() ==
        ConsoleLimits::kPerCall + ConsoleLimits::kPerCall / 4096);  // 16 lines of 4096 bytes
  CHECK(f.said("console output over 65536 bytes in one call: 8323072 bytes dropped") == 1);
}

TEST_CASE(
    "system calls naming memory below 0x10000 answer EFAULT, and the function keeps serving") {
  Flood f;
  auto out = f.call("low");
  REQUIRE(out.ok());
  CHECK(out.body ==
        "write=-14\nwritev=-14\nclock_gettime=-14\ngettimeofday=-14\ngetrandom=-14\narch_prctl=-"
        "14\n");
  auto next = f.call("other");
  CHECK(next.ok());
  CHECK(next.body == "ok\n");
}

TEST_CASE(
    "a hypercall naming memory below 0x10000 fails its call with the address, and nothing is "
    "answered") {
  struct Case {
    const char* body;
    const char* says;
  };
  for (auto c : {Case{"low-hc",
                      "guest address 0x1000 (CONSOLE_WRITE argument, 16 bytes) is below the "
                      "guest's user memory 0x10000"},
                 Case{"low-park", "guest address 0x2000 (NEXT_REQUEST argument"}}) {
    INFO(c.body);
    Flood f;
    auto out = f.call(c.body);
    CHECK(out.stop.kind == vmm::StopKind::Fault);
    CHECK_THAT(out.stop.message,
               Catch::Contains(c.says) && Catch::Contains("below the guest's user memory 0x10000"));
    CHECK_FALSE(f.vm->parked());
  }
}
