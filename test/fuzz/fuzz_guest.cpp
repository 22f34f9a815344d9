// libFuzzer target: a hostile guest against the VMM. A FunctionVm runs a real example image
// (segments, boot info and heap laid out as in production) on a memory-only machine whose run()
// plays the input: hypercalls with argument structs anywhere, Linux system calls with any
// registers, exceptions, MMIO and port accesses, pokes into its own RAM (guest_format.h).
//
// Checked on every trap:
//   - nothing but a Stop comes out of a handler: an exception escaping one is a finding ("escaped";
//     GuestMemoryError is caught inside the hypercall handler and becomes a Fault, as documented);
//   - the console sink gets a bounded number of bytes and lines per trap and per request
//     ("console-bound": what ConsoleLimits lets through, escaped; $UNIFN_FUZZ_MAX_CONSOLE_BYTES
//     overrides the bytes per trap) and a trap takes bounded time ("trap-time",
//     $UNIFN_FUZZ_MAX_TRAP_MS, 1000 by default);
//   - console lines reach the sink without control bytes ("console-escape");
//   - the VMM writes nothing into its own pages below kUserLow (GDT, IDT, stubs, page tables) on
//     the guest's behalf ("vmm-pages"): ring 3 cannot write them itself (the program's own writes
//     stop at kUserLow), so a system call, hypercall, request hand-over or device that does would
//     be a way around their protection;
//   - the heap stays consistent ("heap"): brk in [start, mmap_low], free ranges page-aligned inside
//     [mmap_low, end) without overlaps, every page of [mmap_low, end) either handed out by mmap or
//     free (never both, never lost), no page handed out twice, mmap'd memory reads as zero; a
//     shadow LinuxSyscalls on a FakeMachine sees the same calls and must answer the same
//     ("heap-mirror");
// and on every answered request: a status of 100-599 and a content type without control bytes
// ("respond"), and a VM that answered Parked waits for the next request ("park-state"). With the
// snapshot flag the VM is snapshotted after its first answer (its heap must be the shadow's),
// restored, and reset after every request.
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fmt/format.h>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <unifn/abi.h>

#include "accel/device.h"
#include "test/fuzz/fuzz_common.h"
#include "test/fuzz/fuzz_machine.h"
#include "vmm/guest/function_vm.h"
#include "test/fuzz/guest_format.h"
#include "vmm/platform/fake/fake_machine.h"
#include "accel/reference/reference.h"
#include "vmm/x86/layout.h"

#ifndef UNIFN_FUZZ_IMAGE
#error "UNIFN_FUZZ_IMAGE must name the example image to run (build/functions/echo.elf)"
#endif

using namespace unifn;
using namespace unifn::fuzz;
namespace g = unifn::fuzz::guest;
using vmm::GuestAddr;
using vmm::Stop;
using vmm::StopKind;

namespace {

constexpr std::uint64_t kPage = 4096;
constexpr std::size_t kRam = g::kRam;
constexpr std::size_t kMaxBody = g::kMaxBody;
constexpr int kMaxRequests = 8;

std::uint64_t env_or(const char* name, std::uint64_t def) {
  const char* e = std::getenv(name);
  return e && *e ? std::strtoull(e, nullptr, 0) : def;
}
// What the sink may see (each line counts its bytes and one for its end). One trap hands over at
// most ConsoleLimits::kPerCall bytes, which escaping makes at most 4 times as long, in at most the
// rate's burst of lines, plus a few lines of the VMM's own; one request shows kPerRequest bytes,
// in the burst of lines and what the rate adds while it runs (its deadline is a second).
using vmm::ConsoleLimits;
constexpr std::uint64_t kOwnLines =
    4096;  // "[unifn] ..." lines: the request's limits, an unknown system call
const std::uint64_t kMaxConsolePerTrap =
    env_or("UNIFN_FUZZ_MAX_CONSOLE_BYTES",
           4 * ConsoleLimits::kPerCall + ConsoleLimits::kBurstLines + kOwnLines);
constexpr std::uint64_t kMaxLinesPerTrap = ConsoleLimits::kBurstLines + 4;
constexpr std::uint64_t kMaxLinesPerRequest =
    ConsoleLimits::kBurstLines + 2 * ConsoleLimits::kLinesPerSecond + 8;
constexpr std::uint64_t kMaxConsolePerRequest =
    4 * ConsoleLimits::kPerRequest + kMaxLinesPerRequest + kOwnLines;
const std::uint64_t kMaxTrapMs = env_or("UNIFN_FUZZ_MAX_TRAP_MS", 1000);
// $UNIFN_FUZZ_TRACE=1: every trap, its outcome and every answer on stderr (to read a seed or a
// crash).
const bool kTrace = env_or("UNIFN_FUZZ_TRACE", 0) != 0;

const char* op_name(unsigned op) {
  static const char* names[] = {"poke", "hypercall", "syscall", "exception",
                                "mmio", "port",      "stop"};
  return op < std::size(names) ? names[op] : "?";
}

// What ring 3 can write itself: RAM from kUserLow up. The VMM's pages below it (GDT, IDT, stubs,
// ring-0 stack, page tables) are supervisor-only on KVM, and the sandbox's guest has no mapping of
// them.
bool user_range(const vmm::GuestMemory& mem, std::uint64_t addr, std::uint64_t len) {
  return addr >= vmm::layout::kUserLow && mem.contains(GuestAddr(addr), len);
}

// Where in [0, kUserLow) a byte is not zero (nothing the fuzz platform does writes there: on KVM
// start_user() fills these pages, and no guest action may change them), or -1.
std::int64_t vmm_pages_written(const vmm::GuestMemory& mem) {
  const auto low = mem.span(GuestAddr(0), vmm::layout::kUserLow);
  for (std::size_t i = 0; i < low.size(); ++i)
    if (low[i]) return static_cast<std::int64_t>(i);
  return -1;
}

bool is_err(std::uint64_t ret) {
  return static_cast<std::int64_t>(ret) < 0 && static_cast<std::int64_t>(ret) > -4096;
}

// What the console sink saw.
struct ConsoleSeen {
  std::uint64_t bytes = 0, lines = 0;
};
ConsoleSeen g_console;

void console_sink(std::string_view line) {
  g_console.bytes += line.size() + 1;
  ++g_console.lines;
  for (std::size_t i = 0; i < line.size(); ++i)
    if (auto c = static_cast<unsigned char>(line[i]); (c < 0x20 && c != '\t') || c == 0x7F) {
      finding("console-escape",
              fmt::format("a console line reached the sink with control byte {:#04x} at offset {}",
                          c, i));
      return;
    }
}

// One input: the program, the guest's layout, the shadow heap and the page model.
class Run {
 public:
  Run(const std::uint8_t* data, std::size_t size) : r_(data, size) {}

  void go();

 private:
  Stop play(FuzzMachine& m);
  std::optional<Stop> op(FuzzMachine& m, unsigned kind, std::string& what);
  std::uint64_t value(std::uint32_t code) const;
  void heap_call(std::uint64_t nr, const vmm::GuestRegs& before, std::uint64_t ret, FuzzMachine& m);
  void check_heap(const char* after);
  void check_answer(const vmm::Outcome& out, int request);

  Reader r_;
  std::uint8_t flags_ = 0;
  FuzzPlatform platform_;
  bool booting_ = true;
  unifn_boot_info bi_{};
  std::uint64_t last_mmap_ = 0;
  // The shadow: the same heap calls on a FakeMachine of the fake platform.
  vmm::Console shadow_console_;
  std::unique_ptr<vmm::LinuxSyscalls> shadow_;
  std::vector<std::uint8_t> live_;  // per page: handed out by mmap and not unmapped since
};

vmm::FakeMachine& shadow_machine() {
  static vmm::FakeMachine m(std::make_unique<vmm::GuestMemory>(kRam));
  return m;
}

std::uint64_t Run::value(std::uint32_t code) const {
  const std::uint64_t off = code & 0x0FFFFFFF;
  const std::uint64_t brk = shadow_ ? shadow_->heap().brk : bi_.heap_start;
  switch (code >> 28) {
    case g::kSmall:
      return off & 0xFFFF;
    case g::kNegative:
      return static_cast<std::uint64_t>(-static_cast<std::int64_t>(off & 0xFFFF));
    case g::kScratch:
      return bi_.heap_start + off;
    case g::kIoBuf:
      return bi_.io_buf + off;
    case g::kHeap:
      return (bi_.heap_start + off) & ~(kPage - 1);
    case g::kHeapEnd:
      return bi_.heap_end - off;
    case g::kRamEnd:
      return bi_.ram_bytes - off;
    case g::kRaw:
      return off;
    case g::kPages:
      return off * kPage;
    case g::kPow2:
      return std::uint64_t{1} << (off & 63);
    case g::kHuge:
      return ~std::uint64_t{0} - off;
    case g::kLastMmap:
      return last_mmap_ + off;
    case g::kBrk:
      return brk + off;
    case g::kWide:
      return off << 32 | off;
    case g::kLow:
      return vmm::layout::kBootInfo + off;
    default:
      return UNIFN_IMAGE_MIN_GPA + off;
  }
}

void Run::check_heap(const char* after) {
  const auto& h = shadow_->heap();
  auto bad = [&](const std::string& why) {
    finding(
        "heap",
        fmt::format("after {}: {} (start {:#x} brk {:#x} mmap_low {:#x} end {:#x}, {} free ranges)",
                    after, why, h.start, h.brk, h.mmap_low, h.end, h.free.size()));
  };
  if (!(h.start <= h.brk && h.brk <= h.mmap_low && h.mmap_low <= h.end && h.end <= bi_.ram_bytes))
    return bad("start <= brk <= mmap_low <= end <= RAM does not hold");
  if (h.start % kPage || h.mmap_low % kPage || h.end % kPage)
    return bad("start, mmap_low or end is not page-aligned");
  std::vector<std::uint8_t> free_page(live_.size(), 0);
  std::uint64_t prev_end = h.mmap_low;
  for (auto [start, len] : h.free) {
    if (len == 0 || start % kPage || len % kPage)
      return bad(fmt::format("free range {:#x}+{:#x} is empty or unaligned", start, len));
    if (start < prev_end)
      return bad(fmt::format(
          "free range {:#x}+{:#x} overlaps the one before or lies below mmap_low", start, len));
    if (len > h.end - start)
      return bad(fmt::format("free range {:#x}+{:#x} runs past the heap end", start, len));
    prev_end = start + len;
    for (std::uint64_t p = start / kPage; p < (start + len) / kPage; ++p) free_page[p] = 1;
  }
  for (std::uint64_t p = 0; p < live_.size(); ++p) {
    const std::uint64_t a = p * kPage;
    const bool in_mmap_area = a >= h.mmap_low && a < h.end;
    if (live_[p] && !in_mmap_area)
      return bad(fmt::format(
          "page {:#x} handed out by mmap lies outside [mmap_low, end): the heap lost it", a));
    if (live_[p] && free_page[p])
      return bad(fmt::format("page {:#x} is both mapped and on the free list", a));
    if (in_mmap_area && !live_[p] && !free_page[p])
      return bad(
          fmt::format("page {:#x} of the mmap area is neither mapped nor free: it leaked", a));
  }
}

void Run::heap_call(std::uint64_t nr, const vmm::GuestRegs& before, std::uint64_t ret,
                    FuzzMachine& m) {
  vmm::GuestRegs shadow_regs = before;
  const auto shadow_out = shadow_->handle(shadow_machine(), shadow_regs);
  if (static_cast<std::uint64_t>(shadow_out.ret) != ret)
    finding("heap-mirror",
            fmt::format("system call {} answered {:#x} in the VM and {:#x} on the shadow", nr, ret,
                        static_cast<std::uint64_t>(shadow_out.ret)));
  const auto page_up = [](std::uint64_t v) { return (v + kPage - 1) & ~(kPage - 1); };
  if (nr == 9 && !is_err(ret)) {  // mmap
    const std::uint64_t len = page_up(before.rsi);
    last_mmap_ = ret;
    if (ret % kPage || ret > bi_.ram_bytes || len > bi_.ram_bytes - ret)
      return finding("heap",
                     fmt::format("mmap of {:#x} bytes answered {:#x}, outside RAM or unaligned",
                                 before.rsi, ret));
    for (std::uint64_t p = ret / kPage; p < (ret + len) / kPage; ++p) {
      if (live_[p])
        return finding("heap", fmt::format("mmap handed out page {:#x} a second time", p * kPage));
      live_[p] = 1;
    }
    auto bytes = m.memory().span(GuestAddr(ret), len);
    if (std::any_of(bytes.begin(), bytes.end(), [](std::uint8_t b) { return b != 0; }))
      return finding(
          "heap",
          fmt::format("mmap'd memory at {:#x} ({:#x} bytes) does not read as zero", ret, len));
  } else if (nr == 11 && ret == 0) {  // munmap
    const std::uint64_t len = page_up(before.rsi);
    for (std::uint64_t p = before.rdi / kPage; p < (before.rdi + len) / kPage && p < live_.size();
         ++p)
      live_[p] = 0;
  }
  check_heap(nr == 9 ? "mmap" : nr == 11 ? "munmap" : nr == 12 ? "brk" : "mremap");
}

std::optional<Stop> Run::op(FuzzMachine& m, unsigned kind, std::string& what) {
  auto& mem = m.memory();
  switch (kind) {
    case g::kPoke: {
      const auto addr = value(r_.take<std::uint32_t>());
      const auto n = r_.take<std::uint8_t>();
      const auto bytes = r_.bytes(n);
      what = fmt::format("poke {} bytes at {:#x}", bytes.size(), addr);
      // Safe: input bytes viewed as bytes.
      if (user_range(mem, addr, bytes.size()))
        m.guest_write(addr, {reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()});
      return std::nullopt;
    }
    case g::kHypercall: {
      const auto nr = r_.take<std::uint8_t>();
      const auto access = r_.take<std::uint8_t>();
      const auto where = value(r_.take<std::uint32_t>());
      std::uint32_t f[7];
      for (auto& v : f) v = r_.take<std::uint32_t>();
      std::vector<std::uint8_t> arg;
      auto as_bytes = [&](const auto& s) {
        arg.resize(sizeof s);
        std::memcpy(arg.data(), &s, sizeof s);
      };
      switch (nr) {
        case UNIFN_HC_CONSOLE_WRITE:
        case UNIFN_HC_ABORT:
          as_bytes(unifn_hc_buf{value(f[0]), value(f[1])});
          break;
        case UNIFN_HC_LOG:
          as_bytes(unifn_hc_log{f[2], 0, value(f[0]), value(f[1])});
          break;
        case UNIFN_HC_NEXT_REQUEST: {
          unifn_hc_next n{};
          n.buf = value(f[0]);
          n.buf_cap = value(f[1]);
          as_bytes(n);
          break;
        }
        case UNIFN_HC_RESPOND:
          as_bytes(unifn_hc_respond{f[2], f[3], value(f[4]), value(f[0]), value(f[1]), f[5],
                                    f[6] ? value(f[6]) : 0});
          break;
        case UNIFN_HC_EXIT:
          as_bytes(unifn_hc_exit{static_cast<std::int32_t>(f[0]), 0});
          break;
        default:
          as_bytes(f);
          break;
      }
      if (user_range(mem, where, arg.size())) m.guest_write(where, arg);
      std::uint8_t data[4];
      const auto gpa = static_cast<std::uint32_t>(where);
      std::memcpy(data, &gpa, 4);
      const std::size_t size = access & g::kAccessShort ? (access & 4 ? 1 : 2) : 4;
      vmm::PortAccess a{static_cast<std::uint16_t>(UNIFN_HC_BASE + nr), !(access & g::kAccessRead),
                        std::span(data, size)};
      what = fmt::format("hypercall {} ({}-byte {}) with gpa {:#x}, fields {:#x}", nr, size,
                         a.write ? "out" : "in", gpa, fmt::join(f, " "));
      return m.deliver_port(a);
    }
    case g::kSyscall: {
      const auto sel = r_.take<std::uint16_t>();
      vmm::GuestRegs regs = m.regs();
      regs.rax = sel < 0x8000    ? g::kSyscalls[sel % std::size(g::kSyscalls)]
                 : sel == 0xFFFF ? ~std::uint64_t{0}
                                 : sel & 0x7FFF;
      std::uint64_t* args[6] = {&regs.rdi, &regs.rsi, &regs.rdx, &regs.r10, &regs.r8, &regs.r9};
      for (auto* a : args) *a = value(r_.take<std::uint32_t>());
      const vmm::GuestRegs before = regs;
      what = fmt::format("system call {} ({:#x}, {:#x}, {:#x}, {:#x}, {:#x}, {:#x})", regs.rax,
                         regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9);
      auto s = m.deliver_syscall(regs);
      m.set_regs(regs);
      if (!s && (before.rax == 9 || before.rax == 11 || before.rax == 12 || before.rax == 25))
        heap_call(before.rax, before, regs.rax, m);
      return s;
    }
    case g::kException: {
      vmm::GuestException e;
      e.vector = r_.take<std::uint8_t>();
      const auto which = r_.take<std::uint8_t>();
      const auto err = value(r_.take<std::uint32_t>()), rip = value(r_.take<std::uint32_t>()),
                 addr = value(r_.take<std::uint32_t>());
      if (which & 1) e.error_code = err;
      if (which & 2) e.rip = rip;
      if (which & 4) e.address = addr;
      what = fmt::format("exception {}", e.vector);
      return m.deliver_exception(e);
    }
    case g::kMmio: {
      static constexpr std::size_t sizes[] = {1, 2, 4, 8};
      const auto size = sizes[r_.take<std::uint8_t>() & 3];
      const bool write = r_.take<std::uint8_t>() & 1;
      const auto code = r_.take<std::uint32_t>();
      const std::uint64_t addr =
          code & 0x80000000u ? vmm::kMmioWindowBase + (code & 0x1FFFFF) : value(code);
      std::uint64_t v = r_.take<std::uint32_t>();
      std::uint8_t data[8];
      std::memcpy(data, &v, 8);
      vmm::MmioAccess a{addr, write, std::span(data, size)};
      what = fmt::format("mmio {}-byte {} at {:#x} value {:#x}", size, write ? "write" : "read",
                         addr, v);
      return m.deliver_mmio(a);
    }
    case g::kPort: {
      const auto port = r_.take<std::uint16_t>();
      static constexpr std::size_t sizes[] = {1, 2, 4, 4};
      const auto size = sizes[r_.take<std::uint8_t>() & 3];
      const bool write = r_.take<std::uint8_t>() & 1;
      std::uint32_t v = r_.take<std::uint32_t>();
      std::uint8_t data[4];
      std::memcpy(data, &v, 4);
      vmm::PortAccess a{port, write, std::span(data, size)};
      what = fmt::format("port {:#x} {}-byte {} value {:#x}", port, size, write ? "out" : "in", v);
      return m.deliver_port(a);
    }
    default: {
      static constexpr StopKind kinds[] = {StopKind::Timeout, StopKind::Cancelled,
                                           StopKind::Halted,  StopKind::Fault,
                                           StopKind::Exited,  StopKind::Aborted};
      const auto k = kinds[r_.take<std::uint8_t>() % std::size(kinds)];
      what = "stop";
      return Stop{k, 0, fmt::format("the fuzz program stopped the run ({})", vmm::to_string(k))};
    }
  }
}

Stop Run::play(FuzzMachine& m) {
  if (booting_) {
    // The runtime's first NEXT_REQUEST: a real struct on the stack, the request area as its buffer.
    booting_ = false;
    bi_ = m.memory().read_obj<unifn_boot_info>(GuestAddr(vmm::layout::kBootInfo));
    unifn_hc_next next{};
    next.buf = bi_.io_buf;
    next.buf_cap = bi_.io_buf_size / 2;
    const std::uint64_t at = bi_.stack_top - kPage;
    m.guest_write(at, std::span(reinterpret_cast<const std::uint8_t*>(&next),
                                sizeof next));  // Safe: POD as bytes.
    auto s = m.out32(UNIFN_HC_BASE + UNIFN_HC_NEXT_REQUEST, static_cast<std::uint32_t>(at));
    return s ? *s : Stop{StopKind::Fault, 0, "the first NEXT_REQUEST did not park"};
  }
  if (auto at = vmm_pages_written(m.memory()); at >= 0) {
    finding(
        "vmm-pages",
        fmt::format(
            "handing over a request made the VMM write into its own pages below {:#x} (first byte "
            "at {:#x}): the guest parked there or named a request buffer there",
            vmm::layout::kUserLow, at));
    m.memory().fill(GuestAddr(0), 0, vmm::layout::kUserLow);
  }
  while (r_.more()) {
    const unsigned kind = r_.take<std::uint8_t>() % g::kOpCount;
    std::string what;
    const auto bytes0 = g_console.bytes, lines0 = g_console.lines;
    const auto t0 = std::chrono::steady_clock::now();
    std::optional<Stop> s;
    try {
      s = op(m, kind, what);
    } catch (...) {
      finding("escaped", fmt::format("an exception escaped the handler of a {} ({}): {}",
                                     op_name(kind), what, describe(std::current_exception())));
      return Stop{StopKind::Fault, 0, "an exception escaped a handler"};
    }
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    if (g_console.bytes - bytes0 > kMaxConsolePerTrap ||
        g_console.lines - lines0 > kMaxLinesPerTrap)
      finding("console-bound",
              fmt::format("one {} ({}) put {} bytes in {} lines on the console (bounds {} and {})",
                          op_name(kind), what, g_console.bytes - bytes0, g_console.lines - lines0,
                          kMaxConsolePerTrap, kMaxLinesPerTrap));
    if (auto at = vmm_pages_written(m.memory()); at >= 0) {
      finding("vmm-pages", fmt::format("one {} ({}) made the VMM write into its own pages below "
                                       "{:#x} (first byte at {:#x}), "
                                       "which ring 3 cannot write itself",
                                       op_name(kind), what, vmm::layout::kUserLow, at));
      m.memory().fill(GuestAddr(0), 0,
                      vmm::layout::kUserLow);  // tolerated: report once, look for others
    }
    if (static_cast<std::uint64_t>(ms) > kMaxTrapMs)
      finding("trap-time", fmt::format("one {} ({}) took {} ms (bound {} ms)", op_name(kind), what,
                                       ms, kMaxTrapMs));
    if (kTrace)
      std::fprintf(stderr, "  %s: %s\n", what.c_str(),
                   s ? fmt::format("stops: {} ({})", vmm::to_string(s->kind), s->message).c_str()
                     : "goes on");
    if (s) return *s;
  }
  return Stop{StopKind::Fault, 0, "the fuzz program ended"};
}

void Run::check_answer(const vmm::Outcome& out, int request) {
  if (out.too_large) {
    if (out.stop.kind != StopKind::Parked || out.status != 413)
      finding("respond", fmt::format("request {}: a body too large answered {} with stop {}",
                                     request, out.status, vmm::to_string(out.stop.kind)));
    return;
  }
  if (out.stop.kind != StopKind::Parked) return;
  if (out.status < 100 || out.status > 599)
    finding("respond", fmt::format("request {}: answered with status {}", request, out.status));
  for (std::size_t i = 0; i < out.content_type.size(); ++i)
    if (auto c = static_cast<unsigned char>(out.content_type[i]);
        (c < 0x20 && c != '\t') || c == 0x7F)
      finding("respond",
              fmt::format("request {}: the content type holds control byte {:#04x} at offset {}",
                          request, c, i));
}

void Run::go() {
  static const auto image = vmm::FunctionImage::load(UNIFN_FUZZ_IMAGE);
  static const std::shared_ptr<accel::Backend> reference = accel::reference::make_backend();
  flags_ = r_.take<std::uint8_t>();
  platform_.program = [this](FuzzMachine& m, std::chrono::steady_clock::time_point) {
    return play(m);
  };

  vmm::FunctionVmConfig cfg;
  cfg.memory_bytes = kRam;
  cfg.max_body_bytes = kMaxBody;
  cfg.cmdline = "fuzz";
  cfg.env = {{"FUZZ", "1"}};
  cfg.init_timeout = std::chrono::milliseconds(1000);
  cfg.platform = &platform_;
  if (flags_ & g::kFlagAccel) {
    accel::DeviceOptions opts;
    opts.max_sessions = 4;
    opts.limits.max_sgemm_madds = std::uint64_t{1} << 22;
    cfg.devices.push_back(accel::device_factory(reference, opts));
    cfg.device_key = "accel:reference";
  }
  static const std::string bodies[] = {std::string(16, 'b'), std::string(4096, 'c'), std::string(),
                                       std::string(70000, 'd')};
  const std::string& body = bodies[(flags_ >> g::kBodyShift) & 3];
  const auto body_bytes = std::span(reinterpret_cast<const std::uint8_t*>(body.data()),
                                    body.size());  // Safe: chars as bytes.

  std::unique_ptr<vmm::FunctionVm> vm;
  try {
    vm = vmm::FunctionVm::boot(image, cfg, console_sink);
  } catch (...) {
    return finding("escaped", "booting the example image on the fuzz platform threw: " +
                                  describe(std::current_exception()));
  }
  shadow_ = std::make_unique<vmm::LinuxSyscalls>(bi_.heap_start, bi_.heap_end, shadow_console_);
  live_.assign(bi_.ram_bytes / kPage, 0);
  check_heap("boot");

  std::shared_ptr<vmm::Snapshot> snap;
  vmm::HeapState snap_heap;
  std::vector<std::uint8_t> snap_live;
  for (int i = 1; i <= kMaxRequests && r_.more(); ++i) {
    vmm::Outcome out;
    const auto seen0 = g_console;
    try {
      out = vm->invoke(body_bytes, "text/plain",
                       std::chrono::steady_clock::now() + std::chrono::seconds(1));
    } catch (...) {
      return finding("escaped",
                     fmt::format("invoke {} threw: {}", i, describe(std::current_exception())));
    }
    if (g_console.bytes - seen0.bytes > kMaxConsolePerRequest ||
        g_console.lines - seen0.lines > kMaxLinesPerRequest)
      finding("console-bound",
              fmt::format("request {} put {} bytes in {} lines on the console (bounds {} and {})",
                          i, g_console.bytes - seen0.bytes, g_console.lines - seen0.lines,
                          kMaxConsolePerRequest, kMaxLinesPerRequest));
    if (kTrace)
      std::fprintf(stderr, "request %d: %s %s, status %u, %zu bytes of %s\n", i,
                   std::string(vmm::to_string(out.stop.kind)).c_str(), out.stop.message.c_str(),
                   out.status, out.body.size(), out.content_type.c_str());
    check_answer(out, i);
    if (out.stop.kind != StopKind::Parked) return;  // the VM is finished
    if (!vm->parked())
      return finding(
          "park-state",
          fmt::format("request {}: the guest answered and parked, but the VM does not count as "
                      "waiting for a request (parked at gpa 0?), so its next call fails",
                      i));
    try {
      if (snap) {
        vm->reset();  // per-request isolation: back to the snapshot, heap included
        shadow_->restore(snap_heap);
        live_ = snap_live;
      } else if ((flags_ & g::kFlagSnapshot) && out.ok()) {
        vmm::Fd ram(memfd_create("fuzz-snapshot", MFD_CLOEXEC));
        snap = vm->snapshot(std::move(ram));
        if (!(snap->heap == shadow_->heap()))
          finding(
              "heap-mirror",
              fmt::format(
                  "the snapshot's heap (brk {:#x}, mmap_low {:#x}, {} free) is not the shadow's "
                  "(brk {:#x}, mmap_low {:#x}, {} free)",
                  snap->heap.brk, snap->heap.mmap_low, snap->heap.free.size(), shadow_->heap().brk,
                  shadow_->heap().mmap_low, shadow_->heap().free.size()));
        snap_heap = snap->heap;
        snap_live = live_;
        vm.reset();
        vm = vmm::FunctionVm::restore(snap, image, cfg, console_sink);
      }
    } catch (...) {
      return finding("escaped", fmt::format("snapshot, restore or reset after request {} threw: {}",
                                            i, describe(std::current_exception())));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  g_console = {};
  Run(data, size).go();
  return 0;
}
