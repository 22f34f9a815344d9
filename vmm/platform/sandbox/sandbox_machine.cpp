// The sandbox run loop: a ptrace-supervised guest process, its system calls emulated through
// PTRACE_SYSEMU, its hypercalls (#GP on `out`) and device accesses (#PF in the MMIO window)
// decoded and served, its writes tracked with userfaultfd write-protection and PAGEMAP_SCAN.
#include "vmm/platform/sandbox/sandbox_machine.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <system_error>

#include "vmm/platform/sandbox/helper_image.h"
#include "vmm/platform/sandbox/sandbox_abi.h"
#include "vmm/platform/sandbox/x86_decode.h"
#include "vmm/x86/layout.h"

namespace unifn::vmm {

namespace {

constexpr std::uint64_t kPage = 4096;
constexpr unsigned kNobody = 65534;

[[noreturn]] void fail(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// PAGEMAP_SCAN (Linux 6.7): Debian 12's headers predate it, so the ABI is spelled out here.
struct PageRegion {
  std::uint64_t start, end, categories;
};
struct PmScanArg {
  std::uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages, category_inverted,
      category_mask, category_anyof_mask, return_mask;
};
constexpr unsigned long kPagemapScan = _IOWR('f', 16, PmScanArg);
constexpr std::uint64_t kPmScanWpMatching = 1, kPmScanCheckWpAsync = 2, kPageIsWritten = 2;

GuestRegs to_guest(const user_regs_struct& u) {
  GuestRegs g;
  g.rax = u.rax, g.rbx = u.rbx, g.rcx = u.rcx, g.rdx = u.rdx, g.rsi = u.rsi, g.rdi = u.rdi,
  g.rsp = u.rsp, g.rbp = u.rbp;
  g.r8 = u.r8, g.r9 = u.r9, g.r10 = u.r10, g.r11 = u.r11, g.r12 = u.r12, g.r13 = u.r13,
  g.r14 = u.r14, g.r15 = u.r15;
  g.rip = u.rip, g.rflags = u.eflags, g.fs_base = u.fs_base;
  return g;
}

void from_guest(const GuestRegs& g, user_regs_struct& u) {
  u.rax = g.rax, u.rbx = g.rbx, u.rcx = g.rcx, u.rdx = g.rdx, u.rsi = g.rsi, u.rdi = g.rdi,
  u.rsp = g.rsp, u.rbp = g.rbp;
  u.r8 = g.r8, u.r9 = g.r9, u.r10 = g.r10, u.r11 = g.r11, u.r12 = g.r12, u.r13 = g.r13,
  u.r14 = g.r14, u.r15 = g.r15;
  u.rip = g.rip, u.eflags = g.rflags, u.fs_base = g.fs_base;
}

// The child side of spawning, between clone and exec: async-signal-safe calls only.
[[noreturn]] void exec_helper(int go, int spec, int ram, int helper) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);  // dies with the tracer thread, even before ptrace holds it
  char byte;
  if (read(go, &byte, 1) != 1) _exit(126);  // the supervisor has seized us once this arrives
  if (byte == 'u') {
    // Become the user namespace's 0, which the supervisor mapped to nobody: before exec, while
    // this process still has its capabilities there. Raw system calls: glibc's would try to
    // reach threads this copy of the daemon does not have.
    if (syscall(SYS_setgroups, 0, nullptr) != 0 || syscall(SYS_setresgid, 0, 0, 0) != 0 ||
        syscall(SYS_setresuid, 0, 0, 0) != 0)
      _exit(125);
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // a change of credentials cleared it
  }
  // Move every descriptor out of the way first, so the dup2s below cannot clobber one another.
  spec = fcntl(spec, F_DUPFD, 100);
  ram = fcntl(ram, F_DUPFD, 100);
  helper = fcntl(helper, F_DUPFD, 100);
  int null = open("/dev/null", O_RDWR);
  if (spec < 0 || ram < 0 || helper < 0 || null < 0) _exit(126);
  if (dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0 ||
      dup2(spec, UNIFN_SANDBOX_SPEC_FD) < 0 || dup2(ram, UNIFN_SANDBOX_RAM_FD) < 0 ||
      dup3(helper, 5, O_CLOEXEC) < 0)
    _exit(126);
  syscall(SYS_close_range, 6, ~0u, 0);  // nothing else of the daemon's reaches the guest
  char name[] = "unifn-sandbox";
  char* argv[] = {name, nullptr};
  char* envp[] = {nullptr};
  syscall(SYS_execveat, 5, "", argv, envp, AT_EMPTY_PATH);
  _exit(127);
}

// The helper program in a sealed memfd, made once per process and exec'd for every guest.
int helper_fd() {
  static const int fd = [] {
    int f = memfd_create("unifn-sandbox", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (f < 0) fail("memfd_create for the sandbox helper");
    auto image = sandbox_helper_image();
    for (std::size_t done = 0; done < image.size();) {
      ssize_t n = write(f, image.data() + done, image.size() - done);
      if (n <= 0) fail("writing the sandbox helper");
      done += static_cast<std::size_t>(n);
    }
    fcntl(f, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
    return f;
  }();
  return fd;
}

pid_t clone_process(unsigned flags) {
  // fork semantics (no CLONE_VM): the child gets a copy of this thread only, and execs at once.
  return static_cast<pid_t>(
      syscall(SYS_clone, flags | SIGCHLD, nullptr, nullptr, nullptr, nullptr));
}

bool write_proc(pid_t pid, const char* file, const std::string& text) {
  Fd f(open(fmt::format("/proc/{}/{}", pid, file).c_str(), O_WRONLY | O_CLOEXEC));
  return f && write(f.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size());
}

// Maps uid and gid 0 of the child's user namespace to nobody outside (needs CAP_SETUID and
// CAP_SETGID here); false when this daemon may not, and the child stays the daemon's uid.
bool map_to_nobody(pid_t pid) {
  static std::atomic<bool> refused{false};
  if (refused.load()) return false;
  const auto line = fmt::format("0 {} 1\n", kNobody);
  if (write_proc(pid, "gid_map", line) && write_proc(pid, "uid_map", line)) return true;
  refused.store(true);
  return false;
}

SandboxIsolation probe_isolation() {
  SandboxIsolation iso;
  const unsigned all = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWIPC;
  const unsigned tries[] = {all, all & ~CLONE_NEWUSER, CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWNS,
                            0};
  for (unsigned flags : tries) {
    int hold[2];
    if (pipe2(hold, O_CLOEXEC) != 0) fail("pipe for the sandbox probe");
    pid_t pid = clone_process(flags);
    if (pid == 0) {  // waits until the parent has tried its uid map, then goes
      char byte;
      close(hold[1]);
      (void)!read(hold[0], &byte, 1);
      _exit(0);
    }
    close(hold[0]);
    if (pid > 0 && (flags & CLONE_NEWUSER)) iso.nobody = map_to_nobody(pid);
    close(hold[1]);
    if (pid < 0) continue;
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    iso.clone_flags = flags;
    break;
  }
  const std::pair<unsigned, const char*> names[] = {{CLONE_NEWUSER, "user"},
                                                    {CLONE_NEWPID, "PID"},
                                                    {CLONE_NEWNET, "network"},
                                                    {CLONE_NEWNS, "mount"},
                                                    {CLONE_NEWIPC, "IPC"}};
  for (auto [flag, name] : names)
    if (!(iso.clone_flags & flag)) iso.missing.emplace_back(name);
  iso.drop_uid = geteuid() == 0 && !(iso.clone_flags & CLONE_NEWUSER);
  iso.nobody = iso.nobody || iso.drop_uid;
  return iso;
}

// Page-granular rights for the guest process: image segments as their flags say, the rest of
// RAM read-write data; never writable and executable at once.
std::vector<unifn_sandbox_region> plan_regions(const MachineSpec& spec) {
  const std::uint64_t first = layout::kUserLow / kPage, pages = spec.ram_bytes / kPage;
  enum : std::uint8_t { R = 1, W = 2, X = 4, Set = 8 };
  std::vector<std::uint8_t> rights(pages, 0);
  for (const auto& r : spec.regions) {
    if (r.size == 0) continue;
    for (std::uint64_t p = r.gpa / kPage; p < (r.gpa + r.size + kPage - 1) / kPage && p < pages;
         ++p) {
      rights[p] |= static_cast<std::uint8_t>(Set | R | (r.write ? W : 0) | (r.exec ? X : 0));
      if ((rights[p] & W) && (rights[p] & X))
        throw std::runtime_error(fmt::format(
            "the page at {:#x} would be writable and executable (an image segment shares "
            "it with writable data), which the sandbox platform never maps",
            p * kPage));
    }
  }
  std::vector<unifn_sandbox_region> out;
  auto prot_of = [&](std::uint64_t p) -> std::uint32_t {
    if (!(rights[p] & Set)) return PROT_READ | PROT_WRITE;
    return PROT_READ | ((rights[p] & W) ? PROT_WRITE : 0u) | ((rights[p] & X) ? PROT_EXEC : 0u);
  };
  for (std::uint64_t p = first; p < pages;) {
    std::uint64_t q = p + 1;
    while (q < pages && prot_of(q) == prot_of(p)) ++q;
    unifn_sandbox_region r{};
    r.gpa = p * kPage;
    r.size = (q - p) * kPage;
    r.prot = prot_of(p);
    r.track = (r.prot & PROT_WRITE) ? 1 : 0;
    out.push_back(r);
    p = q;
  }
  if (out.size() > UNIFN_SANDBOX_MAX_REGIONS)
    throw std::runtime_error(
        fmt::format("the image needs {} mappings; the sandbox platform takes {} at most",
                    out.size(), UNIFN_SANDBOX_MAX_REGIONS));
  return out;
}

// The TSC's rate against CLOCK_MONOTONIC over 1 ms, once per process: each end pairs a TSC read
// with a clock read taken between two TSC reads, so the error is tens of ns in 1 ms.
std::uint64_t calibrated_tsc_khz() {
  static const std::uint64_t khz = [] {
    auto sample = [] {
      const auto c0 = __rdtsc();
      const auto t = std::chrono::steady_clock::now();
      const auto c1 = __rdtsc();
      return std::pair{t, c0 / 2 + c1 / 2};
    };
    const auto [t0, c0] = sample();
    while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(1)) {
    }
    const auto [t1, c1] = sample();
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
    return static_cast<std::uint64_t>(static_cast<double>(c1 - c0) * 1e6 / static_cast<double>(ns));
  }();
  return khz;
}

std::string signal_name(int sig) {
  const char* n = sigabbrev_np(sig);
  return n ? fmt::format("SIG{}", n) : fmt::format("signal {}", sig);
}

}  // namespace

namespace {
std::atomic<bool> g_probed{false};
}  // namespace

const SandboxIsolation& SandboxMachine::isolation() {
  static const SandboxIsolation iso = [] {
    auto i = probe_isolation();
    g_probed.store(true);
    return i;
  }();
  return iso;
}

SandboxMachine::SandboxMachine(std::unique_ptr<GuestMemory> memory, const MachineSpec& spec)
    : Machine(std::move(memory)) {
  if (this->memory().shared_fd() < 0)
    throw std::invalid_argument("the sandbox platform needs shared guest RAM");
  tracer_.call([&] { spawn(spec); });
}

SandboxMachine::~SandboxMachine() {
  try {
    tracer_.call([this] { reap(); });
  } catch (...) {
  }
}

int SandboxMachine::reap() {
  if (pid_ <= 0 || !alive_) return 0;
  kill(pid_, SIGKILL);  // no effect on one that is dead already: its status says how it died
  int st = 0;
  while (waitpid(pid_, &st, __WALL) < 0 && errno == EINTR) {
  }
  alive_ = false;
  return st;
}

void SandboxMachine::spawn(const MachineSpec& spec) {
  // Every namespace is tried first; the probe (a clone of its own, about a millisecond here)
  // runs only when that fails, or when someone asked what the sandbox isolates.
  constexpr unsigned kAllNamespaces =
      CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWIPC;
  unsigned flags = g_probed.load() ? isolation().clone_flags : kAllNamespaces;
  auto drop_uid = [&] { return geteuid() == 0 && !(flags & CLONE_NEWUSER); };
  unifn_sandbox_spec s{};
  s.magic = UNIFN_SANDBOX_MAGIC;
  auto regions = plan_regions(spec);
  s.region_count = static_cast<std::uint32_t>(regions.size());
  std::copy(regions.begin(), regions.end(), s.regions);
  s.flags = UNIFN_SANDBOX_TRACK_WRITES;
  s.uid = s.gid = kNobody;
  s.rlimit_as = spec.ram_bytes + (256ull << 20);
  // The helper page lives in the RAM memfd past the end of RAM, where the guest cannot reach it
  // as RAM and the daemon's mapping does not cover it.
  s.helper_offset = spec.ram_bytes;
  unsigned char page[kPage];
  unifn_sandbox_fill_helper_page(page);
  if (ftruncate(memory().shared_fd(), static_cast<off_t>(spec.ram_bytes + kPage)) != 0 ||
      pwrite(memory().shared_fd(), page, kPage, static_cast<off_t>(spec.ram_bytes)) !=
          static_cast<ssize_t>(kPage))
    fail("writing the sandbox helper page");

  int go[2], sp[2];
  if (pipe2(go, O_CLOEXEC) != 0) fail("pipe for the sandbox process");
  if (pipe2(sp, O_CLOEXEC) != 0) {
    close(go[0]), close(go[1]);
    fail("pipe for the sandbox process");
  }
  Fd go_r(go[0]), go_w(go[1]), spec_r(sp[0]), spec_w(sp[1]);
  const int helper = helper_fd();
  pid_t pid = clone_process(flags);
  if (pid == 0) exec_helper(go_r.get(), spec_r.get(), memory().shared_fd(), helper);
  if (pid < 0 && flags != isolation().clone_flags) {
    flags = isolation().clone_flags;
    pid = clone_process(flags);
    if (pid == 0) exec_helper(go_r.get(), spec_r.get(), memory().shared_fd(), helper);
  }
  if (drop_uid()) s.flags |= UNIFN_SANDBOX_DROP_UID;
  if (pid < 0) fail("clone of the sandbox process");
  pid_ = pid;
  alive_ = true;
  auto give_up = [&](const std::string& why) -> std::runtime_error {
    kill(pid_, SIGKILL);
    int st;
    while (waitpid(pid_, &st, __WALL) < 0 && errno == EINTR) {
    }
    alive_ = false;
    return std::runtime_error(fmt::format("cannot start the sandbox process: {}", why));
  };
  if (ptrace(PTRACE_SEIZE, pid_, nullptr, PTRACE_O_EXITKILL | PTRACE_O_TRACESYSGOOD) != 0)
    throw give_up(fmt::format("ptrace: {}", std::strerror(errno)));
  // In its own user namespace the process is still the daemon's uid (root, often) until it
  // changes uid there: map the namespace's 0 to nobody, and the helper becomes that 0.
  const bool as_nobody = (flags & CLONE_NEWUSER) && map_to_nobody(pid_);
  go_r = Fd();
  spec_r = Fd();
  // Safe: the spec is a plain C struct; the pipe is ours.
  if (write(go_w.get(), as_nobody ? "u" : "g", 1) != 1 ||
      write(spec_w.get(), &s, sizeof s) != static_cast<ssize_t>(sizeof s))
    throw give_up("cannot hand it its spec");
  spec_w = Fd();
  for (;;) {  // the helper sets itself up and stops at its int3
    int st = 0;
    if (waitpid(pid_, &st, __WALL) < 0) {
      if (errno == EINTR) continue;
      throw give_up(std::strerror(errno));
    }
    if (WIFEXITED(st)) {
      alive_ = false;
      const int code = WEXITSTATUS(st);
      throw std::runtime_error(
          fmt::format("cannot start the sandbox process: {} (exit status {})",
                      code == 127 || code == 126 ? "the helper could not be executed"
                      : code == 125 ? "it could not become nobody in its user namespace"
                                    : unifn_sandbox_exit_reason(code),
                      code));
    }
    if (WIFSIGNALED(st)) {
      alive_ = false;
      throw std::runtime_error(fmt::format("cannot start the sandbox process: it was killed by {}",
                                           signal_name(WTERMSIG(st))));
    }
    if (WIFSTOPPED(st) && WSTOPSIG(st) == SIGTRAP && (st >> 16) == 0) break;
    ptrace(PTRACE_CONT, pid_, nullptr, nullptr);  // an event of the exec, or a stop: go on
  }
  fetch_regs();
  tracking_ = (uregs_.rax & UNIFN_SANDBOX_HAVE_TRACKING) != 0;
  pagemap_ = Fd(open(fmt::format("/proc/{}/pagemap", pid_).c_str(), O_RDONLY | O_CLOEXEC));
  if (!pagemap_) throw give_up(fmt::format("cannot open its pagemap: {}", std::strerror(errno)));
  for (const auto& r : regions)
    if (r.track) tracked_.emplace_back(r.gpa, r.gpa + r.size);
}

void SandboxMachine::fetch_regs() {
  if (ptrace(PTRACE_GETREGS, pid_, nullptr, &uregs_) != 0)
    fail("PTRACE_GETREGS on the sandbox process");
  last_rip_.store(uregs_.rip);
}

void SandboxMachine::flush_regs() {
  if (regs_dirty_ && ptrace(PTRACE_SETREGS, pid_, nullptr, &uregs_) != 0)
    fail("PTRACE_SETREGS on the sandbox process");
  if (fpregs_dirty_ && ptrace(PTRACE_SETFPREGS, pid_, nullptr, &fpregs_) != 0)
    fail("PTRACE_SETFPREGS on the sandbox process");
  regs_dirty_ = fpregs_dirty_ = false;
}

std::string SandboxMachine::where() { return fmt::format("rip {:#x} (cpl 3)", last_rip_.load()); }

void SandboxMachine::kick() {
  if (running_.load() && alive_) kill(pid_, SIGSTOP);  // a ptrace stop the loop notices
}

Stop SandboxMachine::run(std::chrono::steady_clock::time_point deadline) {
  if (!alive_) return Stop{StopKind::Fault, 0, "the sandbox process is gone"};
  if (cancelled())
    return Stop{StopKind::Cancelled, 0,
                fmt::format("the call was cancelled, stopped at {}", where())};
  Stop result;
  running_.store(true);
  struct Done {
    std::atomic<bool>& flag;
    ~Done() { flag.store(false); }
  } done{running_};
  try {
    tracer_.call([&] { result = loop(deadline); }, deadline, [this] { kick(); });
  } catch (const std::system_error& e) {
    // ptrace refused: the process died under us (killed from outside), or worse. This instance
    // is over, not the daemon.
    int status = 0;
    tracer_.call([&] { status = reap(); });
    if (e.code().value() == ESRCH && (WIFSIGNALED(status) || WIFEXITED(status)))
      return died(status);
    return Stop{StopKind::Fault, 0,
                fmt::format("the sandbox process could not be run: {}", e.what())};
  }
  return result;
}

Stop SandboxMachine::loop(std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    flush_regs();
    if (ptrace(PTRACE_SYSEMU, pid_, nullptr, nullptr) != 0) fail("resuming the sandbox process");
    int st = 0;
    while (waitpid(pid_, &st, __WALL) < 0)
      if (errno != EINTR) fail("waiting for the sandbox process");
    count_exit();
    if (WIFEXITED(st) || WIFSIGNALED(st)) return died(st);
    if (!WIFSTOPPED(st)) continue;
    std::optional<Stop> stop;
    const int sig = WSTOPSIG(st);
    if (sig == (SIGTRAP | 0x80)) {
      stop = on_syscall_stop();
    } else if ((st >> 16) == 0) {
      stop = on_signal(sig);
    }  // else a ptrace event stop: nothing to deliver
    if (stop) return std::move(*stop);
    if (cancelled())
      return Stop{StopKind::Cancelled, 0,
                  fmt::format("the call was cancelled, stopped at {}", where())};
    if (std::chrono::steady_clock::now() >= deadline)
      return Stop{StopKind::Timeout, 0,
                  fmt::format("the guest ran past its deadline, stopped at {}", where())};
  }
}

Stop SandboxMachine::died(int st) {
  alive_ = false;
  if (WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS)
    return Stop{
        StopKind::Fault, 0,
        fmt::format(
            "the sandbox process was killed by its seccomp filter (a system call that did not go "
            "through the supervisor), last at {}",
            where())};
  if (WIFSIGNALED(st))
    return Stop{StopKind::Fault, 0,
                fmt::format("the sandbox process was killed by {}, last at {}",
                            signal_name(WTERMSIG(st)), where())};
  return Stop{StopKind::Fault, 0,
              fmt::format("the sandbox process exited with status {}", WEXITSTATUS(st))};
}

std::vector<std::uint8_t> SandboxMachine::code_at(std::uint64_t rip) {
  const auto& mem = memory();
  if (!mem.contains(GuestAddr(rip), 1)) return {};
  auto bytes =
      mem.span(GuestAddr(rip), std::min<std::uint64_t>(15, mem.size() - rip), "instruction");
  return {bytes.begin(), bytes.end()};
}

std::optional<Stop> SandboxMachine::on_syscall_stop() {
  fetch_regs();
  GuestRegs g = to_guest(uregs_);
  g.rax = uregs_.orig_rax;
  // `int $0x80` is the 32-bit ABI with other numbers: nothing here serves it.
  auto before = uregs_.rip >= 2 ? code_at(uregs_.rip - 2) : std::vector<std::uint8_t>{};
  if (before.size() >= 2 && before[0] == 0xCD && before[1] == 0x80) {
    uregs_.rax = static_cast<std::uint64_t>(-ENOSYS);
    regs_dirty_ = true;
    return std::nullopt;
  }
  auto stop = syscall(g);
  if (stop) return stop;
  from_guest(g, uregs_);
  regs_dirty_ = true;
  return std::nullopt;
}

std::optional<Stop> SandboxMachine::guest_exception(unsigned vector,
                                                    std::optional<std::uint64_t> address) {
  GuestException e;
  e.vector = vector;
  e.rip = uregs_.rip;
  if (vector == 13) e.error_code = 0;
  e.address = address;
  return exception(e);
}

std::optional<Stop> SandboxMachine::on_signal(int sig) {
  if (sig == SIGSTOP)
    return std::nullopt;  // our own interrupt (deadline, cancel): the loop decides
  siginfo_t si{};
  if (ptrace(PTRACE_GETSIGINFO, pid_, nullptr, &si) != 0)
    fail("PTRACE_GETSIGINFO on the sandbox process");
  fetch_regs();
  // Safe: si_addr is the faulting address as an integer, never dereferenced here.
  const auto addr = reinterpret_cast<std::uint64_t>(si.si_addr);
  switch (sig) {
    case SIGSEGV: {
      if (si.si_code == SI_KERNEL) {  // #GP: `in`/`out` (hypercalls), privileged or non-canonical
        auto code = code_at(uregs_.rip);
        // `int $0x80` on a host kernel without 32-bit emulation (CONFIG_IA32_EMULATION off, or
        // ia32_emulation=0) is a #GP, not a system call: answered ENOSYS all the same, as where it
        // stops like `syscall` (on_syscall_stop), so a guest sees one behaviour on every host.
        if (code.size() >= 2 && code[0] == 0xCD && code[1] == 0x80) {
          uregs_.rax = static_cast<std::uint64_t>(-ENOSYS);
          uregs_.rip += 2;
          regs_dirty_ = true;
          return std::nullopt;
        }
        auto a = decode_access(code);
        if (a &&
            (a->kind == DecodedAccess::Kind::PortIn || a->kind == DecodedAccess::Kind::PortOut))
          return emulate_port(*a);
        return guest_exception(13, std::nullopt);
      }
      if (has_mmio(addr)) {
        auto a = decode_access(code_at(uregs_.rip));
        if (a &&
            (a->kind == DecodedAccess::Kind::MemRead || a->kind == DecodedAccess::Kind::MemWrite))
          return emulate_mmio(*a, addr);
        return Stop{StopKind::Fault, 0,
                    fmt::format("the guest accessed the device window at {:#x} with an instruction "
                                "the sandbox cannot "
                                "emulate, at {}",
                                addr, where())};
      }
      return guest_exception(14, addr);
    }
    case SIGBUS:
      return guest_exception(si.si_code == BUS_ADRALN ? 17 : 14, addr);
    case SIGFPE:
      return guest_exception(si.si_code == FPE_INTDIV || si.si_code == FPE_INTOVF ? 0 : 19,
                             std::nullopt);
    case SIGILL:
      return guest_exception(6, std::nullopt);
    case SIGTRAP:
      return guest_exception(si.si_code == TRAP_TRACE ? 1 : 3, std::nullopt);
    default:
      return std::nullopt;  // nothing else reaches a guest: dropped
  }
}

// Serves a decoded `in`/`out` or MMIO access the way the matching exit does on KVM: the guest
// resumes after the instruction, with a load's result in its register.
std::optional<Stop> SandboxMachine::emulate(
    const DecodedAccess& a,
    const std::function<std::optional<Stop>(bool, std::span<std::uint8_t>)>& serve) {
  GuestRegs g = to_guest(uregs_);
  std::uint8_t data[8] = {};
  const bool store =
      a.kind == DecodedAccess::Kind::PortOut || a.kind == DecodedAccess::Kind::MemWrite;
  if (store) access_source(a, g, data);
  g.rip += a.length;
  from_guest(g, uregs_);
  regs_dirty_ = true;
  auto stop = serve(store, std::span(data, a.size));
  if (!store) {
    complete_load(a, g, data);
    from_guest(g, uregs_);
  }
  return stop;
}

std::optional<Stop> SandboxMachine::emulate_port(const DecodedAccess& a) {
  const std::uint16_t port =
      a.port_in_dx ? static_cast<std::uint16_t>(uregs_.rdx & 0xFFFF) : a.port;
  return emulate(a, [&](bool write, std::span<std::uint8_t> data) {
    PortAccess access{port, write, data};
    return port_access(access);
  });
}

std::optional<Stop> SandboxMachine::emulate_mmio(const DecodedAccess& a, std::uint64_t addr) {
  return emulate(a, [&](bool write, std::span<std::uint8_t> data) {
    MmioAccess access{addr, write, data};
    return mmio_access(access);
  });
}

void SandboxMachine::start_user(std::uint64_t rip, std::uint64_t rsp, std::uint64_t arg) {
  user_regs_struct u = uregs_;  // keeps the segment selectors the kernel gave the process
  u.rax = u.rbx = u.rcx = u.rdx = u.rsi = u.rbp = 0;
  u.r8 = u.r9 = u.r10 = u.r11 = u.r12 = u.r13 = u.r14 = u.r15 = 0;
  u.rip = rip;
  u.rsp = rsp;
  u.rdi = arg;
  u.eflags = 0x202;
  u.fs_base = u.gs_base = 0;
  u.orig_rax = static_cast<std::uint64_t>(-1);
  uregs_ = u;
  regs_dirty_ = true;
  fpregs_ = {};
  fpregs_.cwd = 0x37F;
  fpregs_.mxcsr = 0x1F80;
  fpregs_dirty_ = true;
  last_rip_.store(rip);
}

GuestRegs SandboxMachine::regs() { return to_guest(uregs_); }

void SandboxMachine::set_regs(const GuestRegs& regs) {
  from_guest(regs, uregs_);
  regs_dirty_ = true;
}

void SandboxCpuState::write(ByteWriter& w) const {
  w.pod(kVersion);
  w.pod(regs);
  w.pod(fp);
}

SandboxCpuState SandboxCpuState::read(ByteReader& r) {
  read_version(r, kVersion, "sandbox CPU state");
  SandboxCpuState s;
  s.regs = r.pod<user_regs_struct>();
  s.fp = r.pod<user_fpregs_struct>();
  return s;
}

CpuState SandboxMachine::capture() {
  if (!fpregs_dirty_)
    tracer_.call([this] {
      if (ptrace(PTRACE_GETFPREGS, pid_, nullptr, &fpregs_) != 0)
        fail("PTRACE_GETFPREGS on the sandbox process");
    });
  return CpuState{PlatformKind::Sandbox, encode(SandboxCpuState{uregs_, fpregs_})};
}

std::optional<std::string> SandboxMachine::state_problem(const CpuState& state) {
  if (state.platform != PlatformKind::Sandbox)
    return fmt::format("a {} vCPU state cannot be applied to a sandbox process",
                       to_string(state.platform));
  try {
    decode<SandboxCpuState>(state.bytes, "sandbox CPU state");
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return std::nullopt;
}

void SandboxMachine::apply(const CpuState& state) {
  if (auto bad = state_problem(state)) throw std::invalid_argument(*bad);
  auto [u, fp] = decode<SandboxCpuState>(state.bytes, "sandbox CPU state");
  // Segment selectors are the kernel's business, not the snapshot's: keep this process's.
  u.cs = uregs_.cs, u.ss = uregs_.ss, u.ds = uregs_.ds, u.es = uregs_.es, u.fs = uregs_.fs,
  u.gs = uregs_.gs;
  u.gs_base = 0;
  uregs_ = u;
  fpregs_ = fp;
  regs_dirty_ = fpregs_dirty_ = true;
  last_rip_.store(uregs_.rip);
}

std::vector<std::uint64_t> SandboxMachine::take_dirty_pages() {
  std::vector<std::uint64_t> pages;
  if (!tracking_) {  // no write tracking here: every populated page counts (slower, still exact)
    for (auto [from, to] : memory().populated())
      for (std::uint64_t p = std::max<std::uint64_t>(from, layout::kUserLow) / kPage;
           p < (to + kPage - 1) / kPage; ++p)
        pages.push_back(p);
    return pages;
  }
  PageRegion vec[64];
  for (auto [from, to] : tracked_) {
    for (std::uint64_t start = from; start < to;) {
      PmScanArg arg{};
      arg.size = sizeof arg;
      arg.flags = kPmScanWpMatching | kPmScanCheckWpAsync;
      arg.start = start;
      arg.end = to;
      // Safe: the kernel writes at most vec_len entries into vec.
      arg.vec = reinterpret_cast<std::uint64_t>(vec);
      arg.vec_len = std::size(vec);
      arg.category_mask = arg.return_mask = kPageIsWritten;
      long n = ioctl(pagemap_.get(), kPagemapScan, &arg);
      if (n < 0) fail("PAGEMAP_SCAN of the sandbox process");
      for (long i = 0; i < n; ++i)
        for (std::uint64_t p = vec[i].start / kPage; p < vec[i].end / kPage; ++p)
          pages.push_back(p);
      if (arg.walk_end <= start) break;
      start = arg.walk_end;
    }
  }
  return pages;
}

std::uint64_t SandboxMachine::tsc_khz() { return calibrated_tsc_khz(); }

std::uint64_t SandboxMachine::guest_tsc_now() {
  return __rdtsc();
}  // the guest reads the host's TSC

}  // namespace unifn::vmm
