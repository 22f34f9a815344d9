// Snapshot, restore and reset-in-place with real guests: isolation, randomness, crashes.
#include <catch2/catch.hpp>

#include <unistd.h>

#include "test/unit/runtime/guest_helpers.h"

using namespace unifn;
using namespace unifn::test;

namespace {
struct Restored {
  std::shared_ptr<const vmm::FunctionImage> image;
  std::shared_ptr<const vmm::Snapshot> snap;
  vmm::FunctionVmConfig cfg;
  explicit Restored(const std::string& path) : image(vmm::FunctionImage::load(path)) {
    auto vm = vmm::FunctionVm::boot(image, cfg, quiet);
    snap = vm->snapshot(memfd());
  }
  std::unique_ptr<vmm::FunctionVm> instance() {
    return vmm::FunctionVm::restore(snap, image, cfg, quiet);
  }
};
}  // namespace

TEST_CASE("counter answers 1 every time when reset after each request (per-request isolation)") {
  Restored fn(example("counter"));
  auto vm = fn.instance();
  for (int i = 0; i < 5; ++i) {
    auto out = call(*vm, "");
    REQUIRE(out.ok());
    CHECK(out.body == "1\n");
    vm->reset();
  }
}

TEST_CASE("counter counts up when the instance is reused") {
  Restored fn(example("counter"));
  auto vm = fn.instance();
  for (int i = 1; i <= 5; ++i) {
    auto out = call(*vm, "");
    REQUIRE(out.ok());
    CHECK(out.body == std::to_string(i) + "\n");
  }
}

TEST_CASE("two instances restored from one snapshot give different random bytes") {
  Restored fn(example("random"));
  auto a = fn.instance(), b = fn.instance();
  auto x = call(*a, ""), y = call(*b, "");
  REQUIRE(x.ok());
  REQUIRE(y.ok());
  CHECK(x.body.size() == 33);
  CHECK(x.body != y.body);
  a->reset();
  CHECK(call(*a, "").body != x.body);
}

TEST_CASE("reset drops what a request wrote: echo of a long body then a short one") {
  Restored fn(example("echo"));
  auto vm = fn.instance();
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  std::string big(1 << 20, 'x');
  for (std::size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>(i / 4096);
  for (const auto& body : {all, big, std::string("hi")}) {
    auto out = call(*vm, body);
    REQUIRE(out.ok());
    CHECK(out.body == body);
    vm->reset();
  }
  CHECK(vm->last_reset_pages() < 64);  // a tiny request dirties a few pages, not the VM
}

TEST_CASE("a crashing guest is reported and the next restore still serves") {
  Restored fn(guest("misbehave"));
  struct Case {
    const char* body;
    vmm::StopKind kind;
    const char* text;
  };
  for (auto c : {Case{"null", vmm::StopKind::Fault, "page fault"},
                 Case{"div0", vmm::StopKind::Fault, "divide error"},
                 Case{"ud2", vmm::StopKind::Fault, "invalid opcode"},
                 Case{"abort", vmm::StopKind::Aborted, "told to abort"},
                 Case{"exit", vmm::StopKind::Exited, "status 3"},
                 Case{"loop", vmm::StopKind::Timeout, "deadline"}}) {
    INFO(c.body);
    auto vm = fn.instance();
    auto out = call(*vm, c.body, 300);
    CHECK(out.stop.kind == c.kind);
    CHECK_THAT(out.stop.message, Catch::Contains(c.text));
    auto next = fn.instance();
    auto ok = call(*next, "fine");
    REQUIRE(ok.ok());
    CHECK(ok.body == "ok");
  }
}

TEST_CASE("a request larger than the guest's buffer is refused without touching the guest") {
  Restored fn(example("echo"));
  auto vm = fn.instance();
  auto out = call(*vm, std::string(fn.snap->layout.io_size, 'x'));
  CHECK(out.too_large);
  auto ok = call(*vm, "still here");
  REQUIRE(ok.ok());
  CHECK(ok.body == "still here");
}

TEST_CASE(
    "a restored VM that served a request and was reset is the snapshot again, page for page") {
  Restored fn(example("wordfreq"));
  auto vm = fn.instance();
  auto out = call(*vm, "one two two three three three");
  REQUIRE(out.ok());
  vm->reset();
  auto again = vm->snapshot(memfd());
  CHECK(again->cpu.platform == fn.snap->cpu.platform);
  CHECK(again->cpu.bytes == fn.snap->cpu.bytes);
  CHECK(again->heap == fn.snap->heap);
  CHECK(again->layout == fn.snap->layout);
  CHECK(again->parked_at == fn.snap->parked_at);
  std::vector<std::uint8_t> a(4096), b(4096);
  std::size_t differing = 0;
  for (std::uint64_t off = 0; off < fn.snap->layout.ram; off += 4096) {
    REQUIRE(pread(fn.snap->ram.get(), a.data(), 4096, static_cast<off_t>(off)) == 4096);
    REQUIRE(pread(again->ram.get(), b.data(), 4096, static_cast<off_t>(off)) == 4096);
    if (a != b) {
      INFO("page " << std::hex << off);
      CHECK(off == 0x17000);  // only AT_RANDOM's page, re-seeded on restore
      ++differing;
    }
  }
  CHECK(differing <= 1);
}
