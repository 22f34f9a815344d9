// GuestMemory: bounds and overflow checks of every accessor, C strings, discard of anonymous and
// file-backed RAM.
#include <catch2/catch.hpp>

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "vmm/memory/guest_memory.h"
#include "vmm/x86/layout.h"

using unifn::vmm::GuestAddr;
using unifn::vmm::GuestMemory;
using unifn::vmm::GuestMemoryError;

namespace {
constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
constexpr std::size_t kRam = 1 << 20;  // 1 MiB

std::span<const std::uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// A temporary file holding `content`; removed when it goes out of scope.
struct TempFile {
  int fd = -1;
  explicit TempFile(const std::string& content) {
    char name[] = "/tmp/unifn-guest-memory-XXXXXX";
    fd = mkstemp(name);
    REQUIRE(fd >= 0);
    unlink(name);
    REQUIRE(::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
  }
  ~TempFile() { close(fd); }
};
}  // namespace

TEST_CASE("GuestMemory refuses sizes that are not whole pages") {
  CHECK_THROWS_AS(GuestMemory(0), std::invalid_argument);
  CHECK_THROWS_AS(GuestMemory(4095), std::invalid_argument);
  CHECK_THROWS_AS(GuestMemory(4096 * 3 + 1), std::invalid_argument);
  CHECK(GuestMemory(4096).size() == 4096);
}

TEST_CASE("GuestMemory bounds: addr + len wrapping past 2^64 is outside RAM") {
  GuestMemory mem(kRam);
  CHECK_FALSE(mem.contains(GuestAddr(0x1000), kMax));
  CHECK_FALSE(mem.contains(GuestAddr(0x1000), kMax - 0xFFF + 0x10));  // 0x1000 + len wraps to 0x10
  CHECK_FALSE(mem.contains(GuestAddr(kMax), 2));                      // kMax + 2 wraps to 1
  CHECK_FALSE(mem.contains(GuestAddr(kMax - 7), 8));
  CHECK_THROWS_AS(mem.check(GuestAddr(0x1000), kMax - 0xFFF + 0x10), GuestMemoryError);
  CHECK_THROWS_AS(mem.span(GuestAddr(kMax), 2), GuestMemoryError);
  std::uint8_t out[16];
  CHECK_THROWS_AS(mem.read(GuestAddr(kMax - 7), out), GuestMemoryError);
  CHECK_THROWS_AS(mem.fill(GuestAddr(0x2000), 0xAA, kMax - 0x1000), GuestMemoryError);
}

TEST_CASE("GuestMemory bounds: a length larger than RAM is outside RAM, even at address 0") {
  GuestMemory mem(kRam);
  CHECK(mem.contains(GuestAddr(0), kRam));
  CHECK_FALSE(mem.contains(GuestAddr(0), kRam + 1));
  CHECK_FALSE(mem.contains(GuestAddr(1), kRam));
  CHECK_THROWS_AS(mem.fill(GuestAddr(0), 1, kRam + 1), GuestMemoryError);
  std::vector<std::uint8_t> big(kRam + 4096);
  CHECK_THROWS_AS(mem.read(GuestAddr(0), big), GuestMemoryError);
  CHECK_THROWS_AS(mem.write(GuestAddr(0), big), GuestMemoryError);
}

TEST_CASE("GuestMemory bounds: an access that ends exactly at the end of RAM is inside") {
  GuestMemory mem(kRam);
  mem.write_obj<std::uint64_t>(GuestAddr(kRam - 8), 0x1122334455667788ull);
  CHECK(mem.read_obj<std::uint64_t>(GuestAddr(kRam - 8)) == 0x1122334455667788ull);
  CHECK(mem.span(GuestAddr(kRam - 1), 1).size() == 1);
  // One byte further is outside.
  CHECK_THROWS_AS(mem.read_obj<std::uint64_t>(GuestAddr(kRam - 7)), GuestMemoryError);
  CHECK_THROWS_AS(mem.write_obj<std::uint64_t>(GuestAddr(kRam - 4), 0), GuestMemoryError);
  CHECK_THROWS_AS(mem.span(GuestAddr(kRam), 1), GuestMemoryError);
}

TEST_CASE(
    "GuestMemory bounds: zero bytes at the end of RAM are inside, zero bytes past it are not") {
  GuestMemory mem(kRam);
  CHECK(mem.contains(GuestAddr(kRam), 0));
  CHECK(mem.span(GuestAddr(kRam), 0).empty());
  mem.read(GuestAddr(kRam), std::span<std::uint8_t>());
  mem.write(GuestAddr(kRam), std::span<const std::uint8_t>());
  mem.fill(GuestAddr(kRam), 0xFF, 0);
  CHECK_FALSE(mem.contains(GuestAddr(kRam + 1), 0));
  CHECK_FALSE(mem.contains(GuestAddr(kMax), 0));
  CHECK_THROWS_AS(mem.span(GuestAddr(kRam + 1), 0), GuestMemoryError);
}

TEST_CASE("GuestMemory errors name what was accessed, where, how much, and the RAM's bounds") {
  GuestMemory mem(kRam);
  try {
    mem.check(GuestAddr(0xF0000000), 16, "console buffer");
    FAIL("no exception");
  } catch (const GuestMemoryError& e) {
    std::string m = e.what();
    CHECK_THAT(m, Catch::Contains("console buffer") && Catch::Contains("16 bytes") &&
                      Catch::Contains("0xf0000000") && Catch::Contains("outside guest RAM") &&
                      Catch::Contains("0x100000"));
  }
}

TEST_CASE(
    "the guest's user memory runs from kUserLow to the end of RAM: below it and past it refused, "
    "overflow-safe, named") {
  GuestMemory mem(kRam);
  const std::uint64_t low = unifn::vmm::layout::kUserLow;
  CHECK(mem.user_contains(GuestAddr(low), kRam - low));
  CHECK(mem.user_contains(GuestAddr(kRam), 0));
  CHECK_FALSE(mem.user_contains(GuestAddr(0), 1));
  CHECK_FALSE(mem.user_contains(GuestAddr(0), 0));
  CHECK_FALSE(mem.user_contains(GuestAddr(low - 1), 2));  // straddles the start
  CHECK_FALSE(mem.user_contains(GuestAddr(low), kRam));   // runs past the end
  CHECK_FALSE(mem.user_contains(GuestAddr(low), kMax));   // wraps
  CHECK_FALSE(mem.user_contains(GuestAddr(kMax), 2));
  // The VMM's own accessors still reach its pages (KVM reads exception frames on the ring-0 stack).
  CHECK(mem.contains(GuestAddr(0x4000), 0x2000));
  CHECK_NOTHROW(mem.read_obj<std::uint64_t>(GuestAddr(0x5FF8)));
  try {
    (void)mem.read_user<std::uint64_t>(GuestAddr(0x1000), "RESPOND argument");
    FAIL("no exception");
  } catch (const GuestMemoryError& e) {
    CHECK_THAT(e.what(), Catch::Contains("guest address 0x1000") &&
                             Catch::Contains("RESPOND argument") &&
                             Catch::Contains("below the guest's user memory 0x10000"));
  }
  CHECK_THROWS_WITH(mem.user_span(GuestAddr(low), kRam, "console buffer"),
                    Catch::Contains("outside guest RAM"));
  CHECK_THROWS_AS(mem.write_user(GuestAddr(8), std::uint64_t{1}, "clock"), GuestMemoryError);
  CHECK(mem.read_obj<std::uint64_t>(GuestAddr(8)) == 0);
}

TEST_CASE("GuestMemory::read_cstr stops at the NUL, at max, or at the end of RAM") {
  GuestMemory mem(kRam);
  mem.write(GuestAddr(0x2000), bytes(std::string("hello\0world", 11)));
  CHECK(mem.read_cstr(GuestAddr(0x2000), 100) == "hello");
  CHECK(mem.read_cstr(GuestAddr(0x2000), 3) == "hel");  // no NUL within max
  CHECK(mem.read_cstr(GuestAddr(0x2000), 0) == "");
  // No NUL before the end of RAM: the string ends with RAM, never reads past it.
  mem.fill(GuestAddr(kRam - 5), 'z', 5);
  CHECK(mem.read_cstr(GuestAddr(kRam - 5), 4096) == "zzzzz");
  CHECK(mem.read_cstr(GuestAddr(kRam - 1), std::numeric_limits<std::size_t>::max()) == "z");
  CHECK_THROWS_AS(mem.read_cstr(GuestAddr(kRam), 10), GuestMemoryError);
  CHECK_THROWS_AS(mem.read_cstr(GuestAddr(kMax), 10), GuestMemoryError);
}

TEST_CASE("GuestMemory::discard returns anonymous RAM to zero") {
  GuestMemory mem(kRam);
  mem.fill(GuestAddr(0x3000), 0xAB, 0x3000);
  mem.discard(GuestAddr(0x4000), 0x1000);
  CHECK(mem.read_obj<std::uint8_t>(GuestAddr(0x3FFF)) == 0xAB);
  CHECK(mem.read_obj<std::uint8_t>(GuestAddr(0x4000)) == 0);
  CHECK(mem.read_obj<std::uint8_t>(GuestAddr(0x4FFF)) == 0);
  CHECK(mem.read_obj<std::uint8_t>(GuestAddr(0x5000)) == 0xAB);
  mem.discard(GuestAddr(kRam), 0);  // nothing, at the very end
  CHECK_THROWS_AS(mem.discard(GuestAddr(0x3001), 0x1000), std::invalid_argument);
  CHECK_THROWS_AS(mem.discard(GuestAddr(0x3000), 0x800), std::invalid_argument);
  CHECK_THROWS_AS(mem.discard(GuestAddr(kRam - 0x1000), 0x2000), GuestMemoryError);
  CHECK_THROWS_AS(mem.discard(GuestAddr(0x1000), kMax & ~0xFFFull), GuestMemoryError);
}

TEST_CASE(
    "GuestMemory::discard of file-backed RAM restores the file's bytes, and writes never reach the "
    "file") {
  std::string content(3 * 4096 + 100, '\0');  // the last page only partly in the file
  for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>('a' + i % 26);
  TempFile file(content);
  GuestMemory mem(8 * 4096, file.fd, content.size());
  auto at = [&](std::uint64_t a) { return mem.read_obj<std::uint8_t>(GuestAddr(a)); };
  CHECK(at(0) == 'a');
  CHECK(at(4096 + 1) == static_cast<std::uint8_t>('a' + (4096 + 1) % 26));
  CHECK(at(3 * 4096 + 99) == static_cast<std::uint8_t>('a' + (3 * 4096 + 99) % 26));
  CHECK(at(3 * 4096 + 100) == 0);  // past the file's end, inside its last page
  CHECK(at(5 * 4096) == 0);        // past the file

  mem.fill(GuestAddr(0), 0xEE, 8 * 4096);
  CHECK(at(4096 + 1) == 0xEE);
  mem.discard(GuestAddr(4096), 3 * 4096);  // pages 1..3: back to the file's bytes
  CHECK(at(0) == 0xEE);                    // page 0 was not discarded
  CHECK(at(4096 + 1) == static_cast<std::uint8_t>('a' + (4096 + 1) % 26));
  CHECK(at(3 * 4096 + 99) == static_cast<std::uint8_t>('a' + (3 * 4096 + 99) % 26));
  CHECK(at(3 * 4096 + 100) == 0);
  CHECK(at(4 * 4096) == 0xEE);
  mem.discard(GuestAddr(4 * 4096), 4 * 4096);  // pages beyond the file: back to zero
  CHECK(at(4 * 4096) == 0);
  CHECK(at(8 * 4096 - 1) == 0);

  std::string on_disk(content.size(), '\0');
  REQUIRE(::pread(file.fd, on_disk.data(), on_disk.size(), 0) ==
          static_cast<ssize_t>(on_disk.size()));
  CHECK(on_disk == content);  // MAP_PRIVATE: the guest's writes stayed private
}

TEST_CASE(
    "GuestMemory::zero over a sparse snapshot file writes only the pages the file has data for") {
  constexpr std::size_t kPages = 4096;  // 16 MiB, two data pages in it
  char name[] = "/tmp/unifn-guest-memory-XXXXXX";
  const int fd = mkstemp(name);
  REQUIRE(fd >= 0);
  unlink(name);
  REQUIRE(ftruncate(fd, kPages * 4096) == 0);
  const std::string data(4096, 'd');
  REQUIRE(pwrite(fd, data.data(), data.size(), 3 * 4096) == 4096);
  REQUIRE(pwrite(fd, data.data(), data.size(), 4000 * 4096) == 4096);
  GuestMemory mem(kPages * 4096, fd, kPages * 4096);
  close(fd);
  mem.track_host_writes(true);
  CHECK(mem.read_obj<char>(GuestAddr(3 * 4096)) == 'd');
  mem.zero(GuestAddr(0), kPages * 4096);
  CHECK(mem.take_host_dirty() ==
        std::vector<std::uint64_t>{3, 4000});  // the holes were never looked at, nor copied
  const auto all = std::as_const(mem).span(GuestAddr(0), kPages * 4096, "check");
  CHECK(std::all_of(all.begin(), all.end(), [](std::uint8_t b) { return b == 0; }));
}

TEST_CASE("GuestMemory refuses a backing file larger than RAM") {
  TempFile file(std::string(2 * 4096, 'x'));
  CHECK_THROWS_AS(GuestMemory(4096, file.fd, 2 * 4096), std::invalid_argument);
}

TEST_CASE("GuestMemory tracks the pages the host writes through it") {
  GuestMemory mem(kRam);
  mem.track_host_writes(true);
  mem.write_obj<std::uint32_t>(GuestAddr(0x1FFE), 0);  // straddles pages 1 and 2
  mem.fill(GuestAddr(0x10000), 1, 1);
  mem.fill(GuestAddr(0x20000), 1, 0);                       // zero bytes dirty nothing
  (void)std::as_const(mem).span(GuestAddr(0x30000), 4096);  // a read-only view dirties nothing
  CHECK(mem.take_host_dirty() == std::vector<std::uint64_t>{1, 2, 0x10});
  CHECK(mem.take_host_dirty().empty());
}

TEST_CASE("GuestMemory::private_bytes counts the pages written, not the snapshot's shared pages") {
  constexpr std::uint64_t kPage = 4096;
  SECTION("private RAM over a snapshot file (KVM's): reading shares, writing copies") {
    std::string content(4 * kPage, 'S');
    TempFile file(content);
    GuestMemory mem(16 * kPage, file.fd, content.size());
    CHECK(mem.private_bytes() == 0);
    for (std::uint64_t p = 0; p < 4; ++p) CHECK(mem.read_obj<std::uint8_t>(GuestAddr(p * kPage)));
    CHECK(mem.private_bytes() == 0);                        // the file's pages, shared
    mem.write_obj(GuestAddr(kPage), std::uint8_t{1});       // a copy of a file page
    mem.write_obj(GuestAddr(10 * kPage), std::uint8_t{2});  // an anonymous page past the file
    CHECK(mem.private_bytes() == 2 * kPage);
    mem.discard(GuestAddr(0), 16 * kPage);
    CHECK(mem.private_bytes() == 0);
  }
  SECTION("shared RAM (the sandbox's memfd): the pages it holds, the snapshot's copy included") {
    std::string content(3 * kPage, 'S');
    TempFile file(content);
    REQUIRE(::ftruncate(file.fd, 16 * kPage) == 0);  // a RAM file is as big as RAM, holes after
    auto mem = GuestMemory::shared(16 * kPage, file.fd);
    CHECK(mem->private_bytes() == 3 * kPage);
    mem->fill(GuestAddr(8 * kPage), 7, 2 * kPage);
    CHECK(mem->private_bytes() == 5 * kPage);
    mem->discard(GuestAddr(8 * kPage), 2 * kPage);
    CHECK(mem->private_bytes() == 3 * kPage);
  }
}
