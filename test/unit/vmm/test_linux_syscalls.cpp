// LinuxSyscalls driven directly: brk/mmap/munmap bookkeeping over the guest heap, writes, unknown
// calls, exit.
#include <catch2/catch.hpp>

#include <asm/unistd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <ctime>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "vmm/devices/console.h"
#include "vmm/guest/linux_syscalls.h"
#include "vmm/machine.h"
#include "vmm/platform/fake/fake_machine.h"
#include "vmm/x86/layout.h"

using namespace unifn::vmm;

namespace {
constexpr std::uint64_t kPage = 4096;
constexpr std::uint64_t kRam = 16ull << 20;
constexpr std::uint64_t kHeapStart = 4ull << 20, kHeapEnd = 12ull << 20;

struct Fixture {
  std::vector<std::string> lines;
  std::vector<std::string> unknown;
  Console console{[this](std::string_view l) { lines.emplace_back(l); }};
  FakeMachine machine;
  LinuxSyscalls sys{kHeapStart, kHeapEnd, console};
  explicit Fixture(std::unique_ptr<GuestMemory> ram = std::make_unique<GuestMemory>(kRam))
      : machine(std::move(ram)) {
    sys.on_unknown = [this](std::string_view what) { unknown.emplace_back(what); };
  }

  LinuxSyscalls::Outcome call(std::uint64_t nr, std::uint64_t a0 = 0, std::uint64_t a1 = 0,
                              std::uint64_t a2 = 0, std::uint64_t a3 = 0, std::uint64_t a4 = 0,
                              std::uint64_t a5 = 0) {
    GuestRegs r{};
    r.rax = nr;
    r.rdi = a0;
    r.rsi = a1;
    r.rdx = a2;
    r.r10 = a3;
    r.r8 = a4;
    r.r9 = a5;
    return sys.handle(machine, r);
  }
  std::int64_t mmap(std::uint64_t len) {
    return call(__NR_mmap, 0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                static_cast<std::uint64_t>(-1), 0)
        .ret;
  }
  std::int64_t munmap(std::uint64_t addr, std::uint64_t len) {
    return call(__NR_munmap, addr, len).ret;
  }
  std::int64_t brk(std::uint64_t addr) { return call(__NR_brk, addr).ret; }
  GuestMemory& mem() { return machine.memory(); }
};

struct Range {
  std::uint64_t start, len;
};

// mmap'd ranges must be page-aligned, inside the heap above the break, and never overlap.
void check_ranges(const std::vector<Range>& ranges, std::uint64_t brk) {
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    const auto& a = ranges[i];
    INFO("range " << i << " at " << std::hex << a.start << " of " << a.len);
    CHECK(a.start % kPage == 0);
    CHECK(a.start >= kHeapStart);
    CHECK(a.start >= brk);
    CHECK(a.start + a.len <= kHeapEnd);
    for (std::size_t j = i + 1; j < ranges.size(); ++j) {
      const auto& b = ranges[j];
      INFO("and range " << j << " at " << std::hex << b.start << " of " << b.len);
      CHECK((a.start + a.len <= b.start || b.start + b.len <= a.start));
    }
  }
}
}  // namespace

TEST_CASE("mmap returns page-aligned, distinct ranges inside the heap, zero-filled") {
  Fixture f;
  std::vector<Range> got;
  for (std::uint64_t len : {1ull, 4096ull, 4097ull, 3 * 4096ull, 100ull, 65536ull}) {
    auto r = f.mmap(len);
    REQUIRE(r > 0);
    got.push_back({static_cast<std::uint64_t>(r), (len + kPage - 1) / kPage * kPage});
  }
  check_ranges(got, f.brk(0));
  for (const auto& r : got) {
    CHECK(f.mem().read_obj<std::uint8_t>(GuestAddr(r.start)) == 0);
    CHECK(f.mem().read_obj<std::uint8_t>(GuestAddr(r.start + r.len - 1)) == 0);
  }
  CHECK(f.sys.heap().mmap_low == got.back().start);
}

TEST_CASE("munmap then mmap reuses the freed range, zeroed again") {
  Fixture f;
  auto a = f.mmap(2 * kPage), b = f.mmap(kPage);
  REQUIRE(a > 0);
  REQUIRE(b > 0);
  f.mem().fill(GuestAddr(static_cast<std::uint64_t>(a)), 0x5A, 2 * kPage);
  CHECK(f.munmap(static_cast<std::uint64_t>(a), 2 * kPage) == 0);
  CHECK(f.sys.heap().free.size() == 1);
  auto c = f.mmap(2 * kPage);
  CHECK(c == a);
  CHECK(f.mem().read_obj<std::uint8_t>(GuestAddr(static_cast<std::uint64_t>(c))) == 0);
  CHECK(f.mem().read_obj<std::uint8_t>(GuestAddr(static_cast<std::uint64_t>(c) + 2 * kPage - 1)) ==
        0);
  CHECK(f.sys.heap().free.empty());
}

TEST_CASE("munmap of the lowest mapping gives its pages back to brk, merging free neighbours") {
  Fixture f;
  auto a = f.mmap(kPage), b = f.mmap(kPage), c = f.mmap(kPage);  // c lowest
  REQUIRE(c > 0);
  CHECK(f.munmap(static_cast<std::uint64_t>(b), kPage) == 0);
  CHECK(f.sys.heap().mmap_low == static_cast<std::uint64_t>(c));
  CHECK(f.munmap(static_cast<std::uint64_t>(c), kPage) == 0);  // c and b merge and go back
  CHECK(f.sys.heap().mmap_low == static_cast<std::uint64_t>(a));
  CHECK(f.sys.heap().free.empty());
  CHECK(f.munmap(static_cast<std::uint64_t>(a), kPage) == 0);
  CHECK(f.sys.heap().mmap_low == kHeapEnd);
  CHECK(f.brk(kHeapEnd) == static_cast<std::int64_t>(kHeapEnd));  // the whole heap is brk's again
}

TEST_CASE("brk grows and shrinks inside the heap but never into mmap'd memory") {
  Fixture f;
  CHECK(f.brk(0) == static_cast<std::int64_t>(kHeapStart));
  CHECK(f.brk(kHeapStart + 10 * kPage) == static_cast<std::int64_t>(kHeapStart + 10 * kPage));
  CHECK(f.brk(kHeapStart + 5 * kPage) == static_cast<std::int64_t>(kHeapStart + 5 * kPage));
  CHECK(f.brk(kHeapStart - 1) ==
        static_cast<std::int64_t>(kHeapStart + 5 * kPage));  // below start: refused
  CHECK(f.brk(kHeapEnd + kPage) ==
        static_cast<std::int64_t>(kHeapStart + 5 * kPage));  // past the end: refused

  auto m = f.mmap(kPage);
  REQUIRE(m > 0);
  const auto before = f.brk(0);
  CHECK(f.brk(static_cast<std::uint64_t>(m) + 1) == before);  // into the mapping: refused
  CHECK(f.brk(kHeapEnd) == before);
  CHECK(f.brk(static_cast<std::uint64_t>(m)) == m);  // right up to it: fine
  // Now that the break touches the mapping, mmap has no room left below it.
  CHECK(f.mmap(kPage) == -ENOMEM);
}

TEST_CASE("pages the break gives up read as zero when mmap or brk hands them out again") {
  Fixture f;
  const std::uint64_t top = kHeapStart + 8 * kPage;
  REQUIRE(f.brk(top) == static_cast<std::int64_t>(top));
  f.mem().fill(GuestAddr(kHeapStart), 0x77, 8 * kPage);                 // the guest uses its heap
  REQUIRE(f.brk(kHeapStart) == static_cast<std::int64_t>(kHeapStart));  // and shrinks it (sbrk(-n))
  REQUIRE(f.brk(kHeapStart + 2 * kPage) == static_cast<std::int64_t>(kHeapStart + 2 * kPage));
  CHECK(f.mem().read_obj<std::uint8_t>(GuestAddr(kHeapStart)) ==
        0);  // Linux: new break memory is zero
  CHECK(f.mem().read_obj<std::uint8_t>(GuestAddr(kHeapStart + 2 * kPage - 1)) == 0);
  // mmap down to the break: fresh anonymous memory must be zero (musl's calloc relies on it).
  auto m = f.mmap(kHeapEnd - (kHeapStart + 2 * kPage));
  REQUIRE(m == static_cast<std::int64_t>(kHeapStart + 2 * kPage));
  CHECK(f.mem().read_obj<std::uint8_t>(GuestAddr(static_cast<std::uint64_t>(m))) == 0);
  CHECK(f.mem().read_obj<std::uint8_t>(GuestAddr(top - 1)) == 0);
}

namespace {
// RAM as a restored VM has it: a snapshot file mapped MAP_PRIVATE, so dropping a page brings
// back the snapshot's bytes, not zeros. [from, to) holds 0x77 in the snapshot.
std::unique_ptr<GuestMemory> restored_ram(std::uint64_t from, std::uint64_t to) {
  char name[] = "/tmp/unifn-syscalls-snapshot-XXXXXX";
  const int fd = mkstemp(name);
  REQUIRE(fd >= 0);
  unlink(name);
  std::vector<std::uint8_t> snapshot(kRam, 0);
  std::fill(snapshot.begin() + static_cast<std::ptrdiff_t>(from),
            snapshot.begin() + static_cast<std::ptrdiff_t>(to), 0x77);
  REQUIRE(::write(fd, snapshot.data(), snapshot.size()) == static_cast<ssize_t>(snapshot.size()));
  auto ram = std::make_unique<GuestMemory>(kRam, fd, kRam);
  close(fd);  // the mapping keeps the file
  return ram;
}
}  // namespace

TEST_CASE(
    "in a VM restored from a snapshot, pages the break gives up read as zero when handed out "
    "again") {
  // Init had grown the break and filled the heap before the snapshot.
  Fixture f(restored_ram(kHeapStart, kHeapStart + 8 * kPage));
  const std::uint64_t top = kHeapStart + 8 * kPage;
  REQUIRE(f.brk(top) == static_cast<std::int64_t>(top));  // the break as the snapshot had it
  REQUIRE(f.mem().read_obj<std::uint8_t>(GuestAddr(kHeapStart)) == 0x77);
  REQUIRE(f.brk(kHeapStart + kPage) == static_cast<std::int64_t>(kHeapStart + kPage));  // sbrk(-n)
  REQUIRE(f.brk(kHeapStart + 4 * kPage) == static_cast<std::int64_t>(kHeapStart + 4 * kPage));
  CHECK(f.mem().read_obj<std::uint8_t>(GuestAddr(kHeapStart)) ==
        0x77);  // below the lowest break: kept
  CHECK(f.mem().read_obj<std::uint8_t>(GuestAddr(kHeapStart + kPage)) ==
        0);  // given up, then grown over
  CHECK(f.mem().read_obj<std::uint8_t>(GuestAddr(kHeapStart + 4 * kPage - 1)) == 0);
  auto m = f.mmap(kHeapEnd - (kHeapStart + 4 * kPage));  // fresh anonymous memory down to the break
  REQUIRE(m == static_cast<std::int64_t>(kHeapStart + 4 * kPage));
  CHECK(f.mem().read_obj<std::uint8_t>(GuestAddr(static_cast<std::uint64_t>(m))) == 0);
  CHECK(f.mem().read_obj<std::uint8_t>(GuestAddr(top - 1)) == 0);
}

TEST_CASE("in a VM restored from a snapshot, memory munmapped and mmapped again reads as zero") {
  // Init had mmapped the top 4 pages of the heap (a large malloc) and filled them; the snapshot
  // holds that data and the heap state. A request frees the buffer and allocates again.
  Fixture f(restored_ram(kHeapEnd - 4 * kPage, kHeapEnd));
  HeapState at_snapshot = f.sys.heap();
  at_snapshot.mmap_low = kHeapEnd - 4 * kPage;
  f.sys.restore(at_snapshot);
  REQUIRE(f.mem().read_obj<std::uint8_t>(GuestAddr(kHeapEnd - kPage)) == 0x77);
  CHECK(f.munmap(kHeapEnd - kPage, kPage) == 0);  // free the top page: it joins the free list
  auto again = f.mmap(kPage);
  REQUIRE(again == static_cast<std::int64_t>(kHeapEnd - kPage));
  CHECK(f.mem().read_obj<std::uint8_t>(GuestAddr(kHeapEnd - kPage)) == 0);  // calloc relies on this
  CHECK(f.munmap(kHeapEnd - 4 * kPage, kPage) == 0);  // the lowest page goes back to the break
  REQUIRE(f.brk(kHeapEnd - 3 * kPage) == static_cast<std::int64_t>(kHeapEnd - 3 * kPage));
  CHECK(f.mem().read_obj<std::uint8_t>(GuestAddr(kHeapEnd - 4 * kPage)) ==
        0);  // break memory is zero
}

TEST_CASE("mmap never hands out pages below the break") {
  Fixture f;
  CHECK(f.brk(kHeapEnd - 4 * kPage) == static_cast<std::int64_t>(kHeapEnd - 4 * kPage));
  CHECK(f.mmap(4 * kPage) == static_cast<std::int64_t>(kHeapEnd - 4 * kPage));
  CHECK(f.mmap(kPage) == -ENOMEM);
  CHECK(f.mmap(kHeapEnd) == -ENOMEM);
}

TEST_CASE("mmap and munmap refuse what a unikernel heap cannot do") {
  Fixture f;
  CHECK(f.mmap(0) == -EINVAL);
  CHECK(f.mmap(~0ull) == -EINVAL);
  CHECK(f.mmap(~0ull - 100) == -EINVAL);  // page_up would wrap
  CHECK(f.call(__NR_mmap, 0, kPage, PROT_READ, MAP_PRIVATE, 3, 0).ret == -ENODEV);  // a file
  CHECK(f.call(__NR_mmap, kHeapStart, kPage, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
               static_cast<std::uint64_t>(-1), 0)
            .ret == -EINVAL);
  auto m = static_cast<std::uint64_t>(f.mmap(kPage));
  CHECK(f.munmap(m + 1, kPage) == -EINVAL);       // unaligned
  CHECK(f.munmap(m, 0) == -EINVAL);               // empty
  CHECK(f.munmap(kHeapStart, kPage) == -EINVAL);  // brk's memory, not mmap's
  CHECK(f.munmap(kHeapEnd, kPage) == -EINVAL);    // past the heap (the stack)
  CHECK(f.munmap(m, ~0ull - 100) == -EINVAL);     // page_up of the length wraps
  CHECK(f.munmap(m, kHeapEnd) == -EINVAL);        // runs past the heap
  CHECK(f.munmap(0xFFFFFFFFFFFFF000ull, kPage) == -EINVAL);
  CHECK(f.sys.heap().mmap_low == m);  // nothing changed
  CHECK(f.sys.heap().free.empty());
}

TEST_CASE("munmap of overlapping ranges never lets mmap hand out the same page twice") {
  Fixture f;
  auto a = static_cast<std::uint64_t>(f.mmap(2 * kPage));
  auto b = static_cast<std::uint64_t>(f.mmap(kPage));  // keeps a from being the lowest mapping
  REQUIRE(b < a);
  CHECK(f.munmap(a, 2 * kPage) == 0);
  CHECK(f.munmap(a + kPage, kPage) == 0);  // already unmapped: Linux answers 0 and changes nothing
  CHECK(f.munmap(a, kPage) == 0);
  std::vector<Range> got{{b, kPage}};
  for (std::uint64_t len : {2 * kPage, kPage, kPage}) {
    auto r = f.mmap(len);
    REQUIRE(r > 0);
    got.push_back({static_cast<std::uint64_t>(r), len});
  }
  check_ranges(got, f.brk(0));
}

TEST_CASE("a heap state survives restore, as a snapshot restores it") {
  Fixture f;
  f.mmap(kPage);
  auto a = static_cast<std::uint64_t>(f.mmap(3 * kPage));
  f.mmap(kPage);
  f.munmap(a, 3 * kPage);
  f.brk(kHeapStart + kPage);
  HeapState saved = f.sys.heap();
  f.mmap(2 * kPage);
  f.brk(kHeapStart + 8 * kPage);
  CHECK_FALSE(f.sys.heap() == saved);
  f.sys.restore(saved);
  CHECK(f.sys.heap() == saved);
  CHECK(f.mmap(3 * kPage) == static_cast<std::int64_t>(a));
}

TEST_CASE(
    "heap state round-trips through its bytes into a fresh heap, and a damaged one is refused "
    "unchanged",
    "[snapshot]") {
  Fixture f;
  f.mmap(kPage);
  auto a = static_cast<std::uint64_t>(f.mmap(3 * kPage));
  f.mmap(kPage);
  f.munmap(a, kPage);
  f.brk(kHeapStart + 5 * kPage);
  const auto bytes = encode(f.sys.save());

  Fixture fresh;
  fresh.sys.restore(decode<HeapState>(bytes, "heap state"));
  CHECK(encode(fresh.sys.save()) == bytes);
  CHECK(fresh.mmap(kPage) == static_cast<std::int64_t>(a));  // the freed page is handed out again

  Fixture other;
  const auto before = encode(other.sys.save());
  CHECK_THROWS_WITH(decode<HeapState>(std::span(bytes).first(bytes.size() - 3), "heap state"),
                    Catch::Contains("truncated"));
  auto versioned = bytes;
  versioned[0] = 9;
  CHECK_THROWS_WITH(decode<HeapState>(versioned, "heap state"),
                    Catch::Contains("heap state: format version 9"));
  auto trailing = bytes;
  trailing.push_back(0);
  CHECK_THROWS_WITH(decode<HeapState>(trailing, "heap state"),
                    Catch::Contains("heap state: trailing bytes"));

  auto state = decode<HeapState>(bytes, "heap state");
  state.brk = state.mmap_low + kPage;  // well-formed bytes, a heap out of order
  CHECK(LinuxSyscalls::check(state, kHeapStart, kHeapEnd) ==
        std::optional<std::string>(fmt::format(
            "the break {:#x} and the lowest mapping {:#x} are not ordered inside [{:#x}, {:#x})",
            state.brk, state.mmap_low, kHeapStart, kHeapEnd)));
  CHECK_THROWS_AS(other.sys.restore(state), std::invalid_argument);
  state = decode<HeapState>(bytes, "heap state");
  state.free[kHeapEnd + kPage] = kPage;  // a free range past the heap's end
  CHECK_THROWS_WITH(other.sys.restore(state), Catch::Contains("heap: the free range at"));
  CHECK(encode(other.sys.save()) == before);
}

TEST_CASE(
    "write and writev go to the console in lines, and bad descriptors and buffers are refused") {
  Fixture f;
  const std::string text = "first line\nsecond ";
  f.mem().write(GuestAddr(0x20000),
                std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
  CHECK(f.call(__NR_write, 1, 0x20000, text.size()).ret == static_cast<std::int64_t>(text.size()));
  CHECK(f.lines == std::vector<std::string>{"first line"});
  const std::string more = "part\n";
  f.mem().write(GuestAddr(0x21000),
                std::span(reinterpret_cast<const std::uint8_t*>(more.data()), more.size()));
  std::uint64_t iov[4] = {0x21000, more.size(), 0x20000, 5};
  f.mem().write_obj(GuestAddr(0x22000), iov);
  CHECK(f.call(__NR_writev, 2, 0x22000, 2).ret == static_cast<std::int64_t>(more.size() + 5));
  CHECK(f.lines == std::vector<std::string>{"first line", "second part"});
  f.console.flush();
  CHECK(f.lines.back() == "first");

  CHECK(f.call(__NR_write, 3, 0x20000, 4).ret == -EBADF);
  CHECK(f.call(__NR_write, 1, kRam - 4, 8).ret == -EFAULT);
  CHECK(f.call(__NR_write, 1, 0x20000, ~0ull).ret == -EFAULT);
  CHECK(f.call(__NR_write, 1, ~0ull - 2, 8).ret == -EFAULT);
  CHECK(f.call(__NR_writev, 1, kRam - 16, 2).ret == -EFAULT);
  CHECK(f.call(__NR_writev, 1, 0x22000, 1ull << 60).ret == -EINVAL);
  CHECK(f.call(__NR_getrandom, kRam - 8, 16, 0).ret == -EFAULT);
  CHECK(f.call(__NR_clock_gettime, 0 /* CLOCK_REALTIME */, kRam - 8).ret == -EFAULT);
  CHECK(f.call(__NR_clock_gettime, 1 /* CLOCK_MONOTONIC */, 0x23000).ret == 0);
  CHECK(f.mem().read_obj<std::int64_t>(GuestAddr(0x23000)) > 0);
}

TEST_CASE("an unknown system call answers -ENOSYS and is reported once per number") {
  Fixture f;
  CHECK(f.call(57 /* fork */).ret == -ENOSYS);
  CHECK(f.call(57).ret == -ENOSYS);
  CHECK(f.call(57).ret == -ENOSYS);
  REQUIRE(f.unknown.size() == 1);
  CHECK_THAT(f.unknown[0], Catch::Contains("system call 57") && Catch::Contains("ENOSYS"));
  CHECK(f.call(1000).ret == -ENOSYS);
  CHECK(f.unknown.size() == 2);
  CHECK(f.sys.count() == 4);
}

TEST_CASE("exit_group stops the guest with its status") {
  Fixture f;
  auto out = f.call(__NR_exit_group, 3);
  REQUIRE(out.stop.has_value());
  CHECK(out.stop->kind == StopKind::Exited);
  CHECK(out.stop->exit_status == 3);
  CHECK_THAT(out.stop->message, Catch::Contains("exited with status 3"));
}

TEST_CASE(
    "clock_gettime: host wall and monotonic clocks pass, the guest's CPU clocks are its own, "
    "others refused") {
  Fixture f;
  std::uint64_t cpu_ns = 1234567890123ull;
  f.sys.guest_cpu_ns = [&] { return cpu_ns; };
  auto read = [&](std::int64_t clock) {
    auto r = f.call(__NR_clock_gettime, static_cast<std::uint64_t>(clock), 0x23000).ret;
    auto v = f.mem().read_obj<std::array<std::int64_t, 2>>(GuestAddr(0x23000));
    return std::pair{r, v};
  };
  for (clockid_t id : {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW, CLOCK_REALTIME_COARSE,
                       CLOCK_MONOTONIC_COARSE, CLOCK_BOOTTIME}) {
    INFO("clock " << id);
    CHECK(read(id).first == 0);
  }
  for (clockid_t id : {CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID}) {
    auto [r, v] = read(id);
    CHECK(r == 0);
    CHECK(v[0] == 1234);
    CHECK(v[1] == 567890123);
  }
  // The CPU clock of host process 1 ((~pid << 3) | 2, as clock_getcpuclockid makes it), of this
  // process, and ids the guest has no business with.
  for (std::int64_t id :
       {std::int64_t{~1} << 3 | 2, (std::int64_t{~getpid()} << 3) | 2, std::int64_t{CLOCK_TAI},
        std::int64_t{CLOCK_BOOTTIME_ALARM}, std::int64_t{99}}) {
    INFO("clock " << id);
    CHECK(read(id).first == -EINVAL);
  }
}

TEST_CASE(
    "system calls refuse guest addresses below the guest's user memory with -EFAULT and write "
    "nothing there") {
  Fixture f;
  const std::uint64_t low = layout::kUserLow;
  const std::string text = "hello\n";
  f.mem().write(GuestAddr(0x20000), std::span(reinterpret_cast<const std::uint8_t*>(text.data()),
                                              text.size()));  // Safe: chars as bytes.
  std::uint64_t iov_low_base[2] = {0x2000, 16};
  f.mem().write_obj(GuestAddr(0x22000), iov_low_base);
  GuestRegs r{};
  r.rax = __NR_arch_prctl;
  r.rdi = 0x1003;  // ARCH_GET_FS
  r.rsi = 0x1000;
  r.fs_base = 0x123456;
  CHECK(f.sys.handle(f.machine, r).ret == -EFAULT);
  for (std::uint64_t at :
       {std::uint64_t{0}, std::uint64_t{0x1000}, std::uint64_t{0x8000}, low - 8}) {
    INFO("address " << std::hex << at);
    CHECK(f.call(__NR_write, 1, at, 16).ret == -EFAULT);
    CHECK(f.call(__NR_writev, 1, at, 1).ret == -EFAULT);
    CHECK(f.call(__NR_clock_gettime, 0 /* CLOCK_REALTIME */, at).ret == -EFAULT);
    if (at) CHECK(f.call(__NR_gettimeofday, at).ret == -EFAULT);  // NULL asks for nothing
    CHECK(f.call(__NR_getrandom, at, 16, 0).ret == -EFAULT);
  }
  CHECK(f.call(__NR_writev, 1, 0x22000, 1).ret == -EFAULT);  // an iovec whose buffer lies below
  CHECK(f.lines.empty());
  const auto below = f.mem().span(GuestAddr(0), low);
  CHECK(std::all_of(below.begin(), below.end(), [](std::uint8_t b) { return b == 0; }));
  // The first byte of user memory is the guest's own.
  CHECK(f.call(__NR_clock_gettime, 0, low).ret == 0);
  CHECK(f.call(__NR_getrandom, low + 16, 16, 0).ret == 16);
}

TEST_CASE(
    "write of 10 MiB answers a short count of 64 KiB, and writev takes 64 KiB in all however many "
    "iovecs") {
  Fixture f;
  const std::uint64_t buf = 0x100000, ten_mib = 10u << 20;
  f.mem().fill(GuestAddr(buf), 'z', ten_mib);
  CHECK(f.call(__NR_write, 1, buf, ten_mib).ret ==
        static_cast<std::int64_t>(ConsoleLimits::kPerCall));
  CHECK(f.console.bytes_written() == ConsoleLimits::kPerCall);
  // 1024 iovecs that all name the same 10 MiB.
  std::vector<std::uint64_t> iov;
  for (int i = 0; i < 1024; ++i) iov.insert(iov.end(), {buf, ten_mib});
  f.mem().write(GuestAddr(0x20000), std::span(reinterpret_cast<const std::uint8_t*>(iov.data()),
                                              iov.size() * 8));  // Safe: u64s as bytes.
  CHECK(f.call(__NR_writev, 1, 0x20000, 1024).ret ==
        static_cast<std::int64_t>(ConsoleLimits::kPerCall));
  CHECK(f.console.bytes_written() == 2 * ConsoleLimits::kPerCall);
  // Several small iovecs up to the limit: the last one is cut short.
  const std::uint64_t small[6] = {buf, 40000, buf, 40000, buf, 40000};
  f.mem().write_obj(GuestAddr(0x30000), small);
  CHECK(f.call(__NR_writev, 1, 0x30000, 3).ret ==
        static_cast<std::int64_t>(ConsoleLimits::kPerCall));
  CHECK(f.call(__NR_write, 1, buf, 100).ret == 100);
}

TEST_CASE("unknown system calls are reported for the first 64 numbers only, the last saying so") {
  Fixture f;
  for (std::uint64_t nr = 1000; nr < 1200; ++nr) CHECK(f.call(nr).ret == -ENOSYS);
  REQUIRE(f.unknown.size() == 64);
  CHECK_THAT(f.unknown.back(),
             Catch::Contains("system call 1063") && Catch::Contains("no more will be"));
}

TEST_CASE(
    "mmap zeroes a large range in chunks, and stops between them once the call is over (deadline, "
    "cancel)") {
  constexpr std::uint64_t ram = 128ull << 20, start = 1ull << 20, end = 120ull << 20,
                          len = 64ull << 20;
  for (bool over : {false, true}) {
    INFO((over ? "the call is over" : "the call goes on"));
    Console console;
    FakeMachine machine(std::make_unique<GuestMemory>(ram));
    LinuxSyscalls sys(start, end, console);
    sys.out_of_time = [over] { return over; };
    // Old bytes where the mapping will lie: in its first 16 MiB and in its last.
    machine.memory().fill(GuestAddr(end - len), 0xAA, 4096);
    machine.memory().fill(GuestAddr(end - 4096), 0xAA, 4096);
    GuestRegs r{};
    r.rax = __NR_mmap;
    r.rsi = len;
    r.rdx = PROT_READ | PROT_WRITE;
    r.r10 = MAP_PRIVATE | MAP_ANONYMOUS;
    r.r8 = static_cast<std::uint64_t>(-1);
    REQUIRE(sys.handle(machine, r).ret == static_cast<std::int64_t>(end - len));
    CHECK(machine.memory().read_obj<std::uint8_t>(GuestAddr(end - len)) ==
          0);  // the first chunk always
    // The rest only while the call goes on: past its deadline the guest runs no further
    // instruction.
    CHECK(machine.memory().read_obj<std::uint8_t>(GuestAddr(end - 4096)) == (over ? 0xAA : 0));
  }
}
