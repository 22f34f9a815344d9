// FunctionVm against a hostile guest: the traps a guest makes, played on a memory-only machine
// (test/fuzz/fuzz_machine.h) over a real example image. Addresses below the guest's user memory
// are refused, parking is a state of its own, console output stays within its limits.
#include <catch2/catch.hpp>

#include <asm/unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <unifn/abi.h>

#include "test/support/console_lines.h"
#include "test/fuzz/fuzz_machine.h"
#include "vmm/guest/function_vm.h"
#include "vmm/x86/layout.h"

using namespace unifn;
using namespace std::chrono_literals;
using fuzz::FuzzMachine;
using vmm::GuestAddr;
using vmm::Stop;
using vmm::StopKind;

namespace {

constexpr std::uint64_t kLow = vmm::layout::kUserLow;

// A guest whose runs are C++ functions: each run() of the machine plays the next one.
struct Guest : test::ConsoleLines {  // with what reached the console sink
  using Run = std::function<Stop(Guest&, FuzzMachine&)>;
  fuzz::FuzzPlatform platform;
  std::deque<Run> runs;
  unifn_boot_info bi{};

  Guest() {
    platform.program = [this](FuzzMachine& m, std::chrono::steady_clock::time_point) {
      if (runs.empty()) return Stop{StopKind::Fault, 0, "the test guest has no run left"};
      auto run = std::move(runs.front());
      runs.pop_front();
      bi = m.memory().read_obj<unifn_boot_info>(GuestAddr(vmm::layout::kBootInfo));
      return run(*this, m);
    };
  }

  vmm::FunctionVmConfig config() {
    vmm::FunctionVmConfig cfg;
    cfg.memory_bytes = 32u << 20;  // room for a 10 MiB buffer in the heap
    cfg.max_body_bytes = 64u << 10;
    cfg.init_timeout = 10s;
    cfg.platform = &platform;
    return cfg;
  }
  std::unique_ptr<vmm::FunctionVm> boot() {
    static const auto image =
        vmm::FunctionImage::load(std::string(UNIFN_FUNCTIONS_DIR) + "/hello.elf");
    return vmm::FunctionVm::boot(image, config(), [this](std::string_view l) { add(l); });
  }

  // Scratch the guest owns: its heap.
  std::uint64_t scratch(std::uint64_t off = 0) const { return bi.heap_start + off; }

  template <typename T>
  static void put(FuzzMachine& m, std::uint64_t at, const T& v) {
    m.guest_write(
        at, std::span(reinterpret_cast<const std::uint8_t*>(&v), sizeof v));  // Safe: POD as bytes.
  }
  // NEXT_REQUEST with its struct at `at` naming `buf` (the request area by default).
  std::optional<Stop> park_at(FuzzMachine& m, std::uint64_t at, std::uint64_t buf = 0) {
    unifn_hc_next next{};
    next.buf = buf ? buf : bi.io_buf;
    next.buf_cap = bi.io_buf_size / 2;
    if (m.memory().user_contains(GuestAddr(at), sizeof next)) put(m, at, next);
    return m.out32(UNIFN_HC_BASE + UNIFN_HC_NEXT_REQUEST, static_cast<std::uint32_t>(at));
  }
  Stop park(FuzzMachine& m) {
    return park_at(m, bi.stack_top - 4096).value_or(Stop{StopKind::Fault, 0, "did not park"});
  }
  // RESPOND 200 with `body` and content type text/plain, from wherever the caller says.
  std::optional<Stop> respond(FuzzMachine& m, std::uint64_t body_at, std::uint64_t body_len,
                              std::uint64_t arg_at, std::uint64_t type_at) {
    static const char type[] = "text/plain";
    if (m.memory().user_contains(GuestAddr(type_at), sizeof type - 1))
      m.guest_write(type_at, std::span(reinterpret_cast<const std::uint8_t*>(type),
                                       sizeof type - 1));  // Safe: chars as bytes.
    unifn_hc_respond r{};
    r.status = 200;
    r.content_type_len = sizeof type - 1;
    r.content_type = type_at;
    r.body = body_at;
    r.body_len = body_len;
    r.next = bi.stack_top - 4096;
    unifn_hc_next next{};
    next.buf = bi.io_buf;
    next.buf_cap = bi.io_buf_size / 2;
    put(m, r.next, next);
    if (m.memory().user_contains(GuestAddr(arg_at), sizeof r)) put(m, arg_at, r);
    return m.out32(UNIFN_HC_BASE + UNIFN_HC_RESPOND, static_cast<std::uint32_t>(arg_at));
  }
  Stop respond_ok(FuzzMachine& m) {
    return respond(m, scratch(0x100), 2, scratch(0x200), scratch(0x300))
        .value_or(Stop{StopKind::Fault, 0, "did not park"});
  }
  std::optional<Stop> hypercall_buf(FuzzMachine& m, unsigned nr, std::uint64_t arg_at,
                                    std::uint64_t data, std::uint64_t len) {
    if (m.memory().user_contains(GuestAddr(arg_at), sizeof(unifn_hc_buf)))
      put(m, arg_at, unifn_hc_buf{data, len});
    return m.out32(static_cast<std::uint16_t>(UNIFN_HC_BASE + nr),
                   static_cast<std::uint32_t>(arg_at));
  }
  static std::uint64_t syscall(FuzzMachine& m, std::uint64_t nr, std::uint64_t a0,
                               std::uint64_t a1 = 0, std::uint64_t a2 = 0) {
    vmm::GuestRegs r = m.regs();
    r.rax = nr;
    r.rdi = a0;
    r.rsi = a1;
    r.rdx = a2;
    if (auto s = m.deliver_syscall(r)) FAIL("the system call stopped the guest: " << s->message);
    m.set_regs(r);
    return r.rax;
  }

  vmm::Outcome invoke(vmm::FunctionVm& vm, std::chrono::steady_clock::time_point deadline =
                                               std::chrono::steady_clock::now() + 10s) {
    const std::string body = "hi";
    return vm.invoke(std::span(reinterpret_cast<const std::uint8_t*>(body.data()), body.size()),
                     "text/plain",  // Safe: chars as bytes.
                     deadline);
  }
  // 10 MiB of 1024-byte lines in the guest's heap.
  std::uint64_t flood_buffer(FuzzMachine& m) {
    const std::string line = std::string(1023, 'f') + "\n";
    for (std::uint64_t off = 0; off < kFlood; off += line.size())
      m.guest_write(scratch(0x10000) + off,
                    std::span(reinterpret_cast<const std::uint8_t*>(line.data()),
                              line.size()));  // Safe: chars as bytes.
    return scratch(0x10000);
  }
  static constexpr std::uint64_t kFlood = 10u << 20;
};

bool low_pages_zero(vmm::FunctionVm& vm) {
  const auto low = vm.machine().memory().span(GuestAddr(0), kLow);
  return std::all_of(low.begin(), low.end(), [](std::uint8_t b) { return b == 0; });
}

}  // namespace

TEST_CASE(
    "NEXT_REQUEST below the guest's user memory is refused: at gpa 0, in the VMM's pages, or "
    "naming a buffer there") {
  struct Case {
    std::uint64_t at, buf;
    const char* what;
  };
  // buf 0: the request area; at 0 with a buffer: the struct in the guest's heap.
  for (auto c : {Case{0, 0, "guest address 0x0 (NEXT_REQUEST argument"},
                 Case{0x3000, 0, "guest address 0x3000 (NEXT_REQUEST argument"},
                 Case{kLow - 8, 0, "guest address 0xfff8 (NEXT_REQUEST argument"},
                 Case{0, 0x1000, "guest address 0x1000 (NEXT_REQUEST's request buffer"}}) {
    INFO("NEXT_REQUEST at " << std::hex << c.at << " buffer " << c.buf);
    Guest g;
    g.runs.push_back([c](Guest& gg, FuzzMachine& m) {
      auto s = c.buf ? gg.park_at(m, gg.scratch(), c.buf) : gg.park_at(m, c.at);
      return s.value_or(Stop{StopKind::Fault, 0, "went on"});
    });
    try {
      g.boot();
      FAIL("the guest booted");
    } catch (const vmm::BootError& e) {
      CHECK(e.stop.kind == StopKind::Fault);
      CHECK_THAT(e.stop.message, Catch::Contains(c.what) &&
                                     Catch::Contains("below the guest's user memory 0x10000"));
    }
  }
}

TEST_CASE(
    "a VM that parked is parked, and one that answered and parked again waits for the next "
    "request") {
  Guest g;
  g.runs.push_back([](Guest& gg, FuzzMachine& m) { return gg.park(m); });
  auto vm = g.boot();
  CHECK(vm->parked());
  g.runs.push_back([](Guest& gg, FuzzMachine& m) { return gg.respond_ok(m); });
  auto out = g.invoke(*vm);
  REQUIRE(out.ok());
  CHECK(out.status == 200);
  CHECK(vm->parked());
  g.runs.push_back([](Guest& gg, FuzzMachine& m) { return gg.respond_ok(m); });
  CHECK(g.invoke(*vm).ok());
  CHECK(low_pages_zero(*vm));
}

TEST_CASE(
    "hypercalls naming memory below the guest's user memory fail the call with the address, and "
    "touch nothing there") {
  struct Case {
    const char* name;
    Guest::Run run;
    const char* what;
  };
  const std::vector<Case> cases = {
      {"RESPOND argument at 0x2000",
       [](Guest& g, FuzzMachine& m) {
         return *g.respond(m, g.scratch(0x100), 2, 0x2000, g.scratch(0x300));
       },
       "guest address 0x2000 (RESPOND argument"},
      {"RESPOND body at 0x3000",
       [](Guest& g, FuzzMachine& m) {
         return *g.respond(m, 0x3000, 64, g.scratch(0x200), g.scratch(0x300));
       },
       "guest address 0x3000 (response body"},
      {"RESPOND content type at 0x1800",
       [](Guest& g, FuzzMachine& m) {
         return *g.respond(m, g.scratch(0x100), 2, g.scratch(0x200), 0x1800);
       },
       "guest address 0x1800 (content type"},
      {"CONSOLE_WRITE argument at 0x8000",
       [](Guest& g, FuzzMachine& m) {
         return *g.hypercall_buf(m, UNIFN_HC_CONSOLE_WRITE, 0x8000, g.scratch(), 4);
       },
       "guest address 0x8000 (CONSOLE_WRITE argument"},
      {"CONSOLE_WRITE data at 0x1000",
       [](Guest& g, FuzzMachine& m) {
         return *g.hypercall_buf(m, UNIFN_HC_CONSOLE_WRITE, g.scratch(), 0x1000, 4096);
       },
       "guest address 0x1000 (console buffer"},
      {"ABORT reason at 0x2000",
       [](Guest& g, FuzzMachine& m) {
         return *g.hypercall_buf(m, UNIFN_HC_ABORT, g.scratch(), 0x2000, 64);
       },
       "guest address 0x2000 (abort reason"},
      {"EXIT argument at 0x4000",
       [](Guest&, FuzzMachine& m) { return *m.out32(UNIFN_HC_BASE + UNIFN_HC_EXIT, 0x4000); },
       "guest address 0x4000 (EXIT argument"},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    Guest g;
    g.runs.push_back([](Guest& gg, FuzzMachine& m) { return gg.park(m); });
    auto vm = g.boot();
    g.runs.push_back(c.run);
    auto out = g.invoke(*vm);
    CHECK(out.stop.kind == StopKind::Fault);
    CHECK_THAT(out.stop.message,
               Catch::Contains(c.what) && Catch::Contains("below the guest's user memory 0x10000"));
    CHECK(g.lines.empty());
    CHECK(low_pages_zero(*vm));
  }
}

TEST_CASE(
    "system calls from a running guest answer -EFAULT below the guest's user memory and write "
    "nothing there") {
  Guest g;
  g.runs.push_back([](Guest& gg, FuzzMachine& m) { return gg.park(m); });
  auto vm = g.boot();
  std::vector<std::uint64_t> answers;
  g.runs.push_back([&answers](Guest& gg, FuzzMachine& m) {
    answers.push_back(Guest::syscall(m, __NR_clock_gettime, 0, 0x2000));
    answers.push_back(Guest::syscall(m, __NR_gettimeofday, 0x6000));
    answers.push_back(Guest::syscall(m, __NR_getrandom, 0x3000, 256));
    answers.push_back(Guest::syscall(m, __NR_arch_prctl, 0x1003, 0x1000));
    answers.push_back(Guest::syscall(m, __NR_write, 1, 0x3000, 16));
    return gg.respond_ok(m);
  });
  REQUIRE(g.invoke(*vm).ok());
  for (auto a : answers) CHECK(static_cast<std::int64_t>(a) == -EFAULT);
  CHECK(low_pages_zero(*vm));
}

TEST_CASE(
    "a guest flooding its console: 64 KiB per write, 1 MiB shown per request and one line saying "
    "what was dropped") {
  using vmm::ConsoleLimits;
  Guest g;
  g.runs.push_back([](Guest& gg, FuzzMachine& m) { return gg.park(m); });
  auto vm = g.boot();
  std::vector<std::uint64_t> answers;
  g.runs.push_back([&answers](Guest& gg, FuzzMachine& m) {
    const auto buf = gg.flood_buffer(m);
    for (int i = 0; i < 40; ++i)
      answers.push_back(Guest::syscall(m, __NR_write, 1, buf, Guest::kFlood));
    return gg.respond_ok(m);
  });
  REQUIRE(g.invoke(*vm).ok());
  CHECK(std::all_of(answers.begin(), answers.end(),
                    [](std::uint64_t a) { return a == ConsoleLimits::kPerCall; }));
  CHECK(g.guest_bytes() == ConsoleLimits::kPerRequest);
  CHECK(g.said("console output over 1048576 bytes in one request: 1572864 bytes dropped") == 1);
  CHECK(g.said("console output over") == 1);
  // A CONSOLE_WRITE cannot answer a short count: what is over 64 KiB is dropped, and said.
  g.lines.clear();
  g.runs.push_back([](Guest& gg, FuzzMachine& m) {
    const auto buf = gg.flood_buffer(m);
    if (auto s = gg.hypercall_buf(m, UNIFN_HC_CONSOLE_WRITE, gg.scratch(), buf, Guest::kFlood))
      return *s;
    return gg.respond_ok(m);
  });
  REQUIRE(g.invoke(*vm).ok());
  CHECK(g.said("console output over 65536 bytes in one call: 10420224 bytes dropped") == 1);
  CHECK(g.guest_bytes() <=
        ConsoleLimits::kPerCall);  // what the rate let through of the rest, after a full request
}

TEST_CASE("console output of a call whose deadline has passed is dropped, not handed to the sink") {
  Guest g;
  g.runs.push_back([](Guest& gg, FuzzMachine& m) { return gg.park(m); });
  auto vm = g.boot();
  std::uint64_t answer = 0;
  g.runs.push_back([&answer](Guest& gg, FuzzMachine& m) {
    answer = Guest::syscall(m, __NR_write, 1, gg.flood_buffer(m), 4096);
    return gg.respond_ok(m);
  });
  // The memory-only machine plays its program whatever the deadline: the console is what checks it.
  REQUIRE(g.invoke(*vm, std::chrono::steady_clock::now() - 1s).ok());
  CHECK(answer == 4096);
  CHECK(g.lines.empty());
}
