// Linux system calls for musl: console writes, brk/mmap over the guest heap, clocks, randomness.
#include "vmm/guest/linux_syscalls.h"

#include <asm/unistd.h>
#include <sys/random.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <fmt/format.h>

namespace unifn::vmm {

namespace {
constexpr std::uint64_t kPage = 4096;
constexpr std::uint64_t page_up(std::uint64_t v) { return (v + kPage - 1) & ~(kPage - 1); }

constexpr std::uint64_t kMapAnonymous = 0x20, kMapFixed = 0x10;
constexpr std::uint64_t kArchSetFs = 0x1002, kArchGetFs = 0x1003;
constexpr std::size_t kMaxReported = 64;        // unknown system call numbers named in the log
constexpr std::uint64_t kMaxRandom = 1u << 20;  // bytes one getrandom fills (about a millisecond)
// Memory the heap calls zero between two looks at the clock: over a snapshot full of data, about 50
// ms.
constexpr std::uint64_t kZeroChunk = 16u << 20;
}  // namespace

LinuxSyscalls::LinuxSyscalls(std::uint64_t heap_start, std::uint64_t heap_end, Console& console)
    : console_(console) {
  heap_.start = heap_.brk = page_up(heap_start);
  heap_.end = heap_.mmap_low = heap_end & ~(kPage - 1);
}

void HeapState::write(ByteWriter& w) const {
  w.pod(kVersion);
  w.u64(start);
  w.u64(end);
  w.u64(brk);
  w.u64(mmap_low);
  w.u64(free.size());
  for (auto [at, len] : free) {
    w.u64(at);
    w.u64(len);
  }
}

HeapState HeapState::read(ByteReader& r) {
  read_version(r, kVersion, "heap state");
  HeapState h;
  h.start = r.u64();
  h.end = r.u64();
  h.brk = r.u64();
  h.mmap_low = r.u64();
  const auto n = r.u64();
  if (n > kMaxFreeRanges)
    throw std::runtime_error(
        fmt::format("heap state: {} free ranges is over the limit of {}", n, kMaxFreeRanges));
  for (std::uint64_t i = 0; i < n; ++i) {
    const auto at = r.u64();
    if (!h.free.emplace(at, r.u64()).second)
      throw std::runtime_error(
          fmt::format("heap state: the free range at {:#x} is listed twice", at));
  }
  return h;
}

std::optional<std::string> LinuxSyscalls::check(const State& h, std::uint64_t start,
                                                std::uint64_t end) {
  auto hex = [](std::uint64_t v) { return fmt::format("{:#x}", v); };
  auto aligned = [](std::uint64_t v) { return v % kPage == 0; };
  if (h.start != start || h.end != end)
    return fmt::format("[{}, {}) is not the layout's heap [{}, {})", hex(h.start), hex(h.end),
                       hex(start), hex(end));
  if (h.brk < h.start || h.brk > h.mmap_low || h.mmap_low > h.end || !aligned(h.mmap_low))
    return fmt::format("the break {} and the lowest mapping {} are not ordered inside [{}, {})",
                       hex(h.brk), hex(h.mmap_low), hex(h.start), hex(h.end));
  std::uint64_t prev_end = h.mmap_low;
  for (const auto& [at, len] : h.free) {
    if (!aligned(at) || !aligned(len) || len == 0 || at < prev_end || at > h.end ||
        len > h.end - at)
      return fmt::format(
          "the free range at {} of {} bytes is not page-aligned, apart from the others and inside "
          "[{}, {})",
          hex(at), len, hex(h.mmap_low), hex(h.end));
    prev_end = at + len;
  }
  return std::nullopt;
}

static_assert(Persist<LinuxSyscalls>);

void LinuxSyscalls::restore(const State& h) {
  if (auto bad = check(h, heap_.start, heap_.end)) throw std::invalid_argument("heap: " + *bad);
  heap_ = h;
}

void LinuxSyscalls::zero(Machine& m, std::uint64_t addr, std::uint64_t len) {
  for (std::uint64_t off = 0; off < len; off += kZeroChunk) {
    // Past the deadline or cancelled, the guest runs no further instruction before its VM is reset
    // or dropped.
    if (off && out_of_time && out_of_time()) return;
    m.memory().zero(GuestAddr(addr + off), std::min(kZeroChunk, len - off));
  }
}

std::int64_t LinuxSyscalls::sys_brk(Machine& m, std::uint64_t addr) {
  if (addr >= heap_.start && addr <= heap_.mmap_low) {
    // Pages the break gives back read as zero when it grows over them again, as on Linux.
    const std::uint64_t keep = page_up(addr), had = page_up(heap_.brk);
    if (keep < had) zero(m, keep, had - keep);
    heap_.brk = addr;
  }
  return static_cast<std::int64_t>(heap_.brk);  // Linux answers the current break on failure
}

std::int64_t LinuxSyscalls::sys_mmap(Machine& m, std::uint64_t addr, std::uint64_t len,
                                     std::uint64_t, std::uint64_t flags, std::int64_t fd) {
  if (!(flags & kMapAnonymous) || fd != -1) return -ENODEV;  // no files in a unikernel
  if (flags & kMapFixed) return addr ? -EINVAL : -EINVAL;
  if (len == 0 || len > heap_.end) return -EINVAL;
  len = page_up(len);
  for (auto it = heap_.free.begin(); it != heap_.free.end(); ++it) {
    if (it->second < len) continue;
    std::uint64_t at = it->first, rest = it->second - len;
    heap_.free.erase(it);
    if (rest) heap_.free[at + len] = rest;
    zero(m, at, len);  // mmap'd memory reads as zero
    return static_cast<std::int64_t>(at);
  }
  if (heap_.mmap_low - heap_.brk < len) return -ENOMEM;
  heap_.mmap_low -= len;
  zero(m, heap_.mmap_low, len);  // may hold bytes of a brk heap given back
  return static_cast<std::int64_t>(heap_.mmap_low);
}

std::int64_t LinuxSyscalls::sys_munmap(Machine& m, std::uint64_t addr, std::uint64_t len) {
  len = page_up(len);
  if (addr % kPage || len == 0 || addr < heap_.mmap_low || addr > heap_.end ||
      len > heap_.end - addr)
    return -EINVAL;
  zero(m, addr, len);
  // Merge [addr, end) with every free range it overlaps or touches, so no page is listed twice.
  std::uint64_t lo = addr, hi = addr + len;
  auto it = heap_.free.lower_bound(lo);
  if (it != heap_.free.begin() && std::prev(it)->first + std::prev(it)->second >= lo) --it;
  while (it != heap_.free.end() && it->first <= hi) {
    lo = std::min(lo, it->first);
    hi = std::max(hi, it->first + it->second);
    it = heap_.free.erase(it);
  }
  if (lo == heap_.mmap_low) {
    heap_.mmap_low = hi;  // the lowest free range goes back to brk
  } else {
    heap_.free[lo] = hi - lo;
  }
  return 0;
}

std::int64_t LinuxSyscalls::sys_write(Machine& m, std::uint64_t fd, std::uint64_t buf,
                                      std::uint64_t len) {
  if (fd != 1 && fd != 2) return -EBADF;
  if (!m.memory().user_contains(GuestAddr(buf), len))
    return -EFAULT;  // the whole range, as Linux's access_ok
  // A short count past ConsoleLimits::kPerCall: musl's stdio writes the rest in its next call.
  return static_cast<std::int64_t>(console_.write(
      m.memory().span(GuestAddr(buf), std::min<std::uint64_t>(len, ConsoleLimits::kPerCall))));
}

std::int64_t LinuxSyscalls::sys_writev(Machine& m, std::uint64_t fd, std::uint64_t iov,
                                       std::uint64_t cnt) {
  if (fd != 1 && fd != 2) return -EBADF;
  if (cnt > 1024) return -EINVAL;
  if (!m.memory().user_contains(GuestAddr(iov), cnt * 16)) return -EFAULT;
  // At most ConsoleLimits::kPerCall bytes in all, however many iovecs name the same buffer.
  std::uint64_t total = 0;
  for (std::uint64_t i = 0; i < cnt && total < ConsoleLimits::kPerCall; ++i) {
    auto base = m.memory().read_obj<std::uint64_t>(GuestAddr(iov + 16 * i));
    auto len = m.memory().read_obj<std::uint64_t>(GuestAddr(iov + 16 * i + 8));
    if (!m.memory().user_contains(GuestAddr(base), len))
      return total ? static_cast<std::int64_t>(total) : -EFAULT;
    total += console_.write(
        m.memory().span(GuestAddr(base), std::min(len, ConsoleLimits::kPerCall - total)));
  }
  return static_cast<std::int64_t>(total);
}

LinuxSyscalls::Outcome LinuxSyscalls::handle(Machine& m, GuestRegs& r) {
  ++count_;
  std::uint64_t a0 = r.rdi, a1 = r.rsi, a2 = r.rdx, a3 = r.r10, a4 = r.r8;
  auto& mem = m.memory();
  switch (r.rax) {
    case __NR_read:
      return {a0 == 0 ? 0 : -EBADF};
    case __NR_write:
      return {sys_write(m, a0, a1, a2)};
    case __NR_writev:
      return {sys_writev(m, a0, a1, a2)};
    case __NR_brk:
      return {sys_brk(m, a0)};
    case __NR_mmap:
      return {sys_mmap(m, a0, a1, a2, a3, static_cast<std::int64_t>(a4))};
    case __NR_munmap:
      return {sys_munmap(m, a0, a1)};
    case __NR_mremap:
      return {-ENOMEM};  // musl falls back to malloc + copy
    case __NR_mprotect:
    case __NR_madvise:
    case __NR_rt_sigprocmask:
    case __NR_rt_sigaction:
    case __NR_sched_yield:
    case __NR_close:
      return {0};
    case __NR_ioctl:
      return {-ENOTTY};  // no terminals: stdout is fully buffered
    case __NR_lseek:
      return {-ESPIPE};
    case __NR_open:
    case __NR_openat:
      return {-ENOENT};
    case __NR_getpid:
    case __NR_gettid:
    case __NR_set_tid_address:
      return {1};
    case __NR_getuid:
    case __NR_geteuid:
    case __NR_getgid:
    case __NR_getegid:
      return {0};
    case __NR_arch_prctl: {
      if (a0 == kArchSetFs) {
        r.fs_base = a1;
        return {0};
      }
      if (a0 == kArchGetFs) {
        if (!mem.user_contains(GuestAddr(a1), 8)) return {-EFAULT};
        mem.write_obj<std::uint64_t>(GuestAddr(a1), r.fs_base);
        return {0};
      }
      return {-EINVAL};
    }
    case __NR_clock_gettime: {
      timespec ts{};
      switch (static_cast<std::int64_t>(a0)) {
        // Wall and monotonic clocks are the host's to share; nothing else of the host's is.
        case CLOCK_REALTIME:
        case CLOCK_MONOTONIC:
        case CLOCK_MONOTONIC_RAW:
        case CLOCK_REALTIME_COARSE:
        case CLOCK_MONOTONIC_COARSE:
        case CLOCK_BOOTTIME:
          clock_gettime(static_cast<clockid_t>(a0), &ts);
          break;
        case CLOCK_PROCESS_CPUTIME_ID:  // the guest's own CPU time (musl's clock()), never a host
                                        // process's
        case CLOCK_THREAD_CPUTIME_ID: {
          const std::uint64_t ns = guest_cpu_ns ? guest_cpu_ns() : 0;
          ts.tv_sec = static_cast<time_t>(ns / 1000000000);
          ts.tv_nsec = static_cast<long>(ns % 1000000000);
          break;
        }
        default:
          return {
              -EINVAL};  // other host clocks, and the CPU clocks of other processes (negative ids)
      }
      if (!mem.user_contains(GuestAddr(a1), 16)) return {-EFAULT};
      std::int64_t v[2] = {ts.tv_sec, ts.tv_nsec};
      mem.write_obj(GuestAddr(a1), v);
      return {0};
    }
    case __NR_gettimeofday: {
      timespec ts{};
      clock_gettime(CLOCK_REALTIME, &ts);
      if (a0) {
        if (!mem.user_contains(GuestAddr(a0), 16)) return {-EFAULT};
        std::int64_t v[2] = {ts.tv_sec, ts.tv_nsec / 1000};
        mem.write_obj(GuestAddr(a0), v);
      }
      return {0};
    }
    case __NR_getrandom: {
      if (a1 > kMaxRandom) a1 = kMaxRandom;  // a short count, as Linux answers past its own limit
      if (!mem.user_contains(GuestAddr(a0), a1)) return {-EFAULT};
      auto out = mem.span(GuestAddr(a0), a1);
      std::size_t done = 0;
      while (done < out.size()) {
        ssize_t n = getrandom(out.data() + done, out.size() - done, 0);
        if (n <= 0) return {-EIO};
        done += static_cast<std::size_t>(n);
      }
      return {static_cast<std::int64_t>(a1)};
    }
    case __NR_exit:
    case __NR_exit_group:
      console_.flush();
      return {0, Stop{StopKind::Exited, static_cast<int>(a0),
                      fmt::format("the guest exited with status {}", static_cast<int>(a0))}};
    default:
      // The first kMaxReported numbers, then one line: a guest calling every number cannot grow the
      // set or flood the log.
      if (reported_.size() < kMaxReported && reported_.insert(r.rax).second && on_unknown)
        on_unknown(reported_.size() < kMaxReported
                       ? fmt::format("system call {} is not implemented (answered ENOSYS)", r.rax)
                       : fmt::format("system call {} is not implemented (answered ENOSYS); {} "
                                     "unknown system calls reported, "
                                     "no more will be",
                                     r.rax, kMaxReported));
      return {-ENOSYS};
  }
}

}  // namespace unifn::vmm
