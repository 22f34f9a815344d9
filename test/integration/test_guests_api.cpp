// Misbehaving guests through the library API (FunctionVm::boot/invoke): each fails clearly, and the
// next VM still serves.
#include <catch2/catch.hpp>

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "vmm/guest/function_vm.h"
#include "test/integration/helpers.h"

using namespace unifn;
using namespace unifn::itest;
using namespace std::chrono_literals;

namespace {

struct Booted {
  std::vector<std::string> console;
  std::unique_ptr<vmm::FunctionVm> vm;
};

vmm::Outcome call(vmm::FunctionVm& vm, const std::string& body,
                  std::chrono::milliseconds limit = 5s) {
  return vm.invoke(std::span(reinterpret_cast<const std::uint8_t*>(body.data()), body.size()),
                   "text/plain",  // Safe: chars as bytes.
                   std::chrono::steady_clock::now() + limit);
}

std::unique_ptr<Booted> boot(const std::string& path, vmm::FunctionVmConfig cfg = {}) {
  auto b = std::make_unique<Booted>();
  auto* lines = &b->console;
  b->vm = vmm::FunctionVm::boot(vmm::FunctionImage::load(path), cfg,
                                [lines](std::string_view l) { lines->emplace_back(l); });
  return b;
}

// After any failure, a fresh VM in this process boots and answers.
void next_vm_still_serves(const std::string& after) {
  INFO("booting hello after " << after);
  auto hello = boot(example("hello"));
  auto out = call(*hello->vm, after);
  REQUIRE(out.ok());
  CHECK(out.status == 200);
  CHECK(out.body == "Hello, " + after + "!\n");
}

bool has_line(const std::vector<std::string>& lines, const std::string& text) {
  return std::any_of(lines.begin(), lines.end(),
                     [&](const std::string& l) { return l.find(text) != std::string::npos; });
}

struct HandlerCase {
  const char* guest;
  const char* body;
  vmm::StopKind kind;
  std::vector<std::string> says;  // the message contains each
  std::chrono::milliseconds limit = 5s;
};

void check_handler_failure(const HandlerCase& c) {
  INFO("guest " << c.guest << " with body '" << c.body << "'");
  auto b = boot(guest(c.guest));  // the boot itself succeeds: the handler misbehaves
  REQUIRE(b->vm->parked());
  const auto t0 = std::chrono::steady_clock::now();
  auto out = call(*b->vm, c.body, c.limit);
  const auto took = std::chrono::steady_clock::now() - t0;
  CHECK_FALSE(out.ok());
  CHECK(out.stop.kind == c.kind);
  for (const auto& s : c.says) CHECK_THAT(out.stop.message, Catch::Contains(s));
  CHECK(out.body.empty());
  CHECK(took < c.limit + 2s);
  // The broken VM is not trusted with another request.
  CHECK_FALSE(b->vm->parked());
  auto again = call(*b->vm, "again", 1s);
  CHECK_FALSE(again.ok());
  CHECK_THAT(again.stop.message, Catch::Contains("not waiting for a request"));
  b.reset();
  next_vm_still_serves(c.guest);
}

}  // namespace

TEST_CASE("a NULL read in the handler is a page fault at address 0, after the output before it") {
  check_handler_failure({"null_read",
                         "",
                         vmm::StopKind::Fault,
                         {"guest exception #PF page fault (vector 14) at rip 0x", "address 0x0"}});
  auto b = boot(guest("null_read"));
  call(*b->vm, "");
  CHECK(has_line(b->console, "reading address 0"));
}

TEST_CASE("a division by zero in the handler is a divide error") {
  check_handler_failure(
      {"divide_zero", "", vmm::StopKind::Fault, {"#DE divide error (vector 0) at rip 0x"}});
}

TEST_CASE("ud2 in the handler is an invalid opcode") {
  check_handler_failure(
      {"invalid_opcode", "", vmm::StopKind::Fault, {"#UD invalid opcode (vector 6) at rip 0x"}});
}

TEST_CASE("a handler that never returns is stopped at its deadline") {
  check_handler_failure({"spin_forever", "", vmm::StopKind::Timeout, {"deadline"}, 300ms});
}

TEST_CASE("a hypercall whose argument struct lies outside guest RAM is refused") {
  check_handler_failure(
      {"hc_outside_ram", "arg", vmm::StopKind::Fault, {"0xf0000000", "outside guest RAM"}});
}

TEST_CASE("a CONSOLE_WRITE whose buffer lies outside guest RAM is refused") {
  check_handler_failure({"hc_outside_ram",
                         "data",
                         vmm::StopKind::Fault,
                         {"console buffer", "0xf0000000", "outside guest RAM"}});
}

TEST_CASE("a RESPOND whose body length wraps past 2^64 is refused") {
  check_handler_failure({"respond_overflow",
                         "x",
                         vmm::StopKind::Fault,
                         {"response body", "18446744073709551600 bytes", "outside guest RAM"}});
}

TEST_CASE("a hypercall number the ABI does not define fails the invocation and names it") {
  // UNIFN_HC_BASE + UNIFN_HC_COUNT: a guest built for a newer ABI. It must not be mistaken for a
  // crash (#GP), nor silently ignored.
  check_handler_failure({"unknown_hypercall", "", vmm::StopKind::Fault, {"unknown hypercall 6"}});
}

TEST_CASE("unifn_abort fails the invocation with the function's reason") {
  check_handler_failure(
      {"abort_reason", "", vmm::StopKind::Aborted, {"aborted: the model file is missing"}});
}

TEST_CASE("exit(3) from the handler ends the VM with status 3, stdout flushed") {
  check_handler_failure({"exit_three", "", vmm::StopKind::Exited, {"exited with status 3"}});
  auto b = boot(guest("exit_three"));
  auto out = call(*b->vm, "");
  CHECK(out.stop.exit_status == 3);
  CHECK(has_line(b->console, "leaving with status 3"));
}

TEST_CASE("a handler that smashes its own stack and returns crashes cleanly") {
  check_handler_failure({"stack_smash", "", vmm::StopKind::Fault, {"guest exception"}});
}

TEST_CASE(
    "an unimplemented system call answers ENOSYS, is reported once, and the function still "
    "answers") {
  auto b = boot(guest("unknown_syscall"));
  for (int i = 0; i < 2; ++i) {
    auto out = call(*b->vm, "");
    REQUIRE(out.ok());
    CHECK(out.status == 200);
    CHECK(out.body == "fork: -1 errno 38\nfork: -1 errno 38\n");
  }
  CHECK(std::count_if(b->console.begin(), b->console.end(), [](const std::string& l) {
          return l.find("system call 57 is not implemented") != std::string::npos;
        }) == 1);
}

namespace {
struct InitCase {
  const char* guest;
  vmm::StopKind kind;
  std::vector<std::string> says;
};

void check_init_failure(const InitCase& c) {
  INFO("guest " << c.guest);
  vmm::FunctionVmConfig cfg;
  cfg.init_timeout = 300ms;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    boot(guest(c.guest), cfg);
    FAIL("the boot succeeded");
  } catch (const vmm::BootError& e) {
    CHECK(e.stop.kind == c.kind);
    CHECK_THAT(std::string(e.what()),
               Catch::Contains(guest(c.guest)) && Catch::Contains("did not initialise"));
    for (const auto& s : c.says) CHECK_THAT(std::string(e.what()), Catch::Contains(s));
  }
  CHECK(std::chrono::steady_clock::now() - t0 < 3s);
  next_vm_still_serves(c.guest);
}
}  // namespace

TEST_CASE("failures during init fail the boot with the reason, and the next VM still boots") {
  check_init_failure({"init_fault", vmm::StopKind::Fault, {"#PF page fault", "address 0x0"}});
  check_init_failure({"init_loop", vmm::StopKind::Timeout, {"deadline"}});
  check_init_failure({"init_abort", vmm::StopKind::Aborted, {"aborted: no model configured"}});
  check_init_failure({"init_hc_outside_ram",
                      vmm::StopKind::Fault,
                      {"NEXT_REQUEST argument", "0xf0000000", "outside guest RAM"}});
}

TEST_CASE("every misbehaving guest in turn, in one process, then the examples still answer") {
  // Failures must leave nothing behind (timers, signals, state) that breaks later VMs.
  for (const char* g : {"null_read", "spin_forever", "divide_zero", "stack_smash", "spin_forever",
                        "invalid_opcode"}) {
    auto b = boot(guest(g));
    CHECK_FALSE(call(*b->vm, "", 200ms).ok());
  }
  auto echo = boot(example("echo"));
  for (int i = 0; i < 3; ++i) {
    auto out = call(*echo->vm, "round " + std::to_string(i));
    REQUIRE(out.ok());
    CHECK(out.body == "round " + std::to_string(i));
    CHECK(out.content_type == "text/plain");
  }
  auto counter = boot(example("counter"));
  for (int i = 1; i <= 3; ++i) CHECK(call(*counter->vm, "").body == std::to_string(i) + "\n");
}

TEST_CASE("images that are wrong are refused by the library, naming the file") {
  SECTION("a segment beyond a 16 MiB guest's RAM") {
    auto img = vmm::FunctionImage::from_bytes("/images/far.elf", [] {
      auto s = hello_with_last_segment_at(64ull << 20);
      return std::vector<std::uint8_t>(s.begin(), s.end());
    }());
    vmm::FunctionVmConfig cfg;
    cfg.memory_bytes = 16ull << 20;
    try {
      vmm::FunctionVm::boot(img, cfg, {});
      FAIL("the boot succeeded");
    } catch (const vmm::ImageError& e) {
      CHECK_THAT(std::string(e.what()), Catch::Contains("/images/far.elf") &&
                                            Catch::Contains("segment at 0x4000000") &&
                                            Catch::Contains("does not fit in 16 MiB of guest RAM"));
    }
  }
  SECTION("more RAM than a unifn VM can have") {
    vmm::FunctionVmConfig cfg;
    cfg.memory_bytes = 4096ull << 20;
    CHECK_THROWS_WITH(vmm::FunctionVm::boot(vmm::FunctionImage::load(example("hello")), cfg, {}),
                      Catch::Contains("hello.elf") && Catch::Contains("more than the 3072 MiB"));
  }
  next_vm_still_serves("images");
}

TEST_CASE("after a snapshot restore, memory freed and calloc'd again reads as zero") {
  // The guest fills a 1 MiB malloc'd (mmap'd) buffer during init; each request frees it and callocs
  // again. musl trusts fresh mmap memory to be zero, so the VMM's mmap must give zeros, also when
  // RAM comes from a snapshot file that holds the old bytes.
  auto image = vmm::FunctionImage::load(guest("calloc_after_snapshot"));
  vmm::FunctionVmConfig cfg;
  auto booted = vmm::FunctionVm::boot(image, cfg, {});
  auto snap = booted->snapshot(vmm::Fd(memfd_create("unifn-itest", MFD_CLOEXEC)));
  CHECK(call(*booted, "").body == "zeroed\n");  // the VM that booted: anonymous RAM
  auto restored = vmm::FunctionVm::restore(snap, image, cfg, {});
  CHECK(call(*restored, "").body == "zeroed\n");
  restored->reset();
  CHECK(call(*restored, "").body == "zeroed\n");
}
