// The small set of Linux system calls that musl needs, served by the VMM for unifn guests.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "vmm/devices/console.h"
#include "vmm/machine.h"
#include "vmm/snapshot/persist.h"

namespace unifn::vmm {

// The guest's heap: brk grows up from start, anonymous mmap takes pages down from end.
struct HeapState {
  std::uint64_t start = 0;
  std::uint64_t end = 0;
  std::uint64_t brk = 0;
  std::uint64_t mmap_low = 0;                   // lowest page handed out by mmap
  std::map<std::uint64_t, std::uint64_t> free;  // munmapped ranges above mmap_low: start -> len
  bool operator==(const HeapState&) const = default;

  // Versioned: 1. read() refuses more free ranges than kMaxFreeRanges.
  static constexpr std::uint32_t kVersion = 1;
  static constexpr std::uint64_t kMaxFreeRanges = 1u << 20;
  void write(ByteWriter& w) const;
  static HeapState read(ByteReader& r);
};

class LinuxSyscalls {
 public:
  LinuxSyscalls(std::uint64_t heap_start, std::uint64_t heap_end, Console& console);

  // Serves the system call in regs (rax = number, rdi, rsi, rdx, r10, r8, r9) and returns
  // the value for rax, or a Stop when the guest exits.
  struct Outcome {
    std::int64_t ret = 0;
    std::optional<Stop> stop;
  };
  Outcome handle(Machine& m, GuestRegs& regs);  // arch_prctl sets regs.fs_base

  const HeapState& heap() const { return heap_; }

  // Snapshot state (Persist): the heap. check() says what is wrong with a heap for a VM whose heap
  // the layout puts at [start, end): start and end as the VMM sets them, start <= brk <= mmap_low
  // <= end, free ranges page-aligned, inside [mmap_low, end) and apart; nullopt if nothing.
  // restore() throws std::invalid_argument with that sentence, the heap unchanged, when it fails.
  using State = HeapState;
  State save() const { return heap_; }
  static std::optional<std::string> check(const State& h, std::uint64_t start, std::uint64_t end);
  void restore(const State& h);
  std::uint64_t count() const { return count_; }
  // Called with the name of a system call the VMM does not implement, once per number (the first 64
  // numbers).
  std::function<void(std::string_view)> on_unknown;
  // The guest's own CPU time in ns, for CLOCK_PROCESS_CPUTIME_ID and CLOCK_THREAD_CPUTIME_ID.
  std::function<std::uint64_t()> guest_cpu_ns;
  // Whether the call is over (deadline passed, cancelled): long work inside one exit stops early.
  std::function<bool()> out_of_time;

 private:
  // Makes [addr, addr+len) read as zero, in chunks with a look at out_of_time between them.
  void zero(Machine& m, std::uint64_t addr, std::uint64_t len);
  std::int64_t sys_brk(Machine& m, std::uint64_t addr);
  std::int64_t sys_mmap(Machine& m, std::uint64_t addr, std::uint64_t len, std::uint64_t prot,
                        std::uint64_t flags, std::int64_t fd);
  std::int64_t sys_munmap(Machine& m, std::uint64_t addr, std::uint64_t len);
  std::int64_t sys_write(Machine& m, std::uint64_t fd, std::uint64_t buf, std::uint64_t len);
  std::int64_t sys_writev(Machine& m, std::uint64_t fd, std::uint64_t iov, std::uint64_t cnt);

  HeapState heap_;
  Console& console_;
  std::set<std::uint64_t> reported_;
  std::uint64_t count_ = 0;
};

}  // namespace unifn::vmm
