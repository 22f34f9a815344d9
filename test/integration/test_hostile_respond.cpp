// A guest that answers with a content type holding CR LF (HTTP response splitting) or another
// control byte: the VMM refuses the RESPOND, the invocation is a Fault naming the byte, and its
// console line reaches the sink escaped.
#include <catch2/catch.hpp>

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

std::unique_ptr<Booted> boot_hostile() {
  auto b = std::make_unique<Booted>();
  auto* lines = &b->console;
  b->vm = vmm::FunctionVm::boot(vmm::FunctionImage::load(guest("hostile_respond")), {},
                                [lines](std::string_view l) { lines->emplace_back(l); });
  return b;
}

vmm::Outcome call(vmm::FunctionVm& vm, const std::string& body) {
  return vm.invoke(std::span(reinterpret_cast<const std::uint8_t*>(body.data()), body.size()),
                   "text/plain",  // Safe: chars as bytes.
                   std::chrono::steady_clock::now() + 5s);
}

}  // namespace

TEST_CASE(
    "a RESPOND whose content type holds CR LF is a Fault that names the byte, and nothing is "
    "answered") {
  auto b = boot_hostile();
  REQUIRE(b->vm->parked());
  auto out = call(*b->vm, "crlf");
  CHECK_FALSE(out.ok());
  CHECK(out.stop.kind == vmm::StopKind::Fault);
  CHECK(out.stop.message ==
        "RESPOND with a content type holding control bytes (byte 0x0d at offset 10)");
  CHECK(out.content_type.empty());
  CHECK(out.body.empty());
  // The broken VM is not trusted with another request.
  CHECK_FALSE(b->vm->parked());
}

TEST_CASE("a RESPOND whose content type holds LF, DEL or ESC is refused too, HTAB is allowed") {
  struct Case {
    const char* body;
    const char* says;
  };
  for (const Case c :
       {Case{"lf", "(byte 0x0a at offset 10)"}, Case{"del", "(byte 0x7f at offset 10)"},
        Case{"esc", "(byte 0x1b at offset 0)"}}) {
    INFO("body " << c.body);
    auto b = boot_hostile();
    auto out = call(*b->vm, c.body);
    CHECK(out.stop.kind == vmm::StopKind::Fault);
    CHECK(out.stop.message ==
          std::string("RESPOND with a content type holding control bytes ") + c.says);
  }
  auto b = boot_hostile();
  auto out = call(*b->vm, "tab");
  REQUIRE(out.ok());
  CHECK(out.status == 200);
  CHECK(out.content_type == "text/plain;\tcharset=utf-8");
  CHECK(out.body == "smuggled\n");
  CHECK(b->vm->parked());
}

TEST_CASE("a guest's console line reaches the sink with its control characters escaped") {
  auto b = boot_hostile();
  call(*b->vm, "tab");
  CHECK(std::find(b->console.begin(), b->console.end(), "\\x1b[2Jcleared\\rforged") !=
        b->console.end());
  for (const auto& line : b->console)
    CHECK(std::none_of(line.begin(), line.end(), [](char c) { return c == '\x1b' || c == '\r'; }));
}

TEST_CASE(
    "a response body over the limit is a Fault that names both sizes, and one at the limit is "
    "served") {
  vmm::FunctionVmConfig cfg;
  cfg.max_body_bytes = 64 * 1024;
  auto vm = vmm::FunctionVm::boot(vmm::FunctionImage::load(guest("big_respond")), cfg, {});
  auto at_limit = call(*vm, "65536");
  REQUIRE(at_limit.ok());
  CHECK(at_limit.body == std::string(65536, 'x'));
  auto over = call(*vm, "65537");
  CHECK(over.stop.kind == vmm::StopKind::Fault);
  CHECK_THAT(over.stop.message,
             Catch::Contains("RESPOND with a body of 65537 bytes, more than the 65536-byte limit"));
  CHECK(over.body.empty());
}
