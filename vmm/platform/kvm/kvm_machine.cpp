// The KVM run loop (one switch over exit reasons) and the ring-0 stub traps of unifn guests.
#include "vmm/platform/kvm/kvm_machine.h"

#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <system_error>
#include <unifn/abi.h>
#include <utility>

#include "vmm/platform/kvm/kick_signal.h"
#include "vmm/platform/kvm/kvm_cpu_state.h"
#include "vmm/snapshot/byte_io.h"
#include "vmm/x86/cpu.h"
#include "vmm/x86/layout.h"
#include "vmm/x86/long_mode.h"

namespace unifn::vmm {

namespace {

constexpr std::uint16_t kHypercallPorts = 0x100;  // UNIFN_HC_BASE .. +0xFF belong to hypercalls

bool has_error_code(unsigned v) {
  return v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21 || v == 29 || v == 30;
}

GuestRegs from_kvm(const kvm_regs& r, std::uint64_t fs_base) {
  GuestRegs g;
  g.rax = r.rax, g.rbx = r.rbx, g.rcx = r.rcx, g.rdx = r.rdx, g.rsi = r.rsi, g.rdi = r.rdi,
  g.rsp = r.rsp, g.rbp = r.rbp;
  g.r8 = r.r8, g.r9 = r.r9, g.r10 = r.r10, g.r11 = r.r11, g.r12 = r.r12, g.r13 = r.r13,
  g.r14 = r.r14, g.r15 = r.r15;
  g.rip = r.rip, g.rflags = r.rflags, g.fs_base = fs_base;
  return g;
}

kvm_regs to_kvm(const GuestRegs& g) {
  kvm_regs r{};
  r.rax = g.rax, r.rbx = g.rbx, r.rcx = g.rcx, r.rdx = g.rdx, r.rsi = g.rsi, r.rdi = g.rdi,
  r.rsp = g.rsp, r.rbp = g.rbp;
  r.r8 = g.r8, r.r9 = g.r9, r.r10 = g.r10, r.r11 = g.r11, r.r12 = g.r12, r.r13 = g.r13,
  r.r14 = g.r14, r.r15 = g.r15;
  r.rip = g.rip, r.rflags = g.rflags;
  return r;
}

}  // namespace

KvmMachine::KvmMachine(const Kvm& kvm, std::unique_ptr<GuestMemory> memory, bool track_writes)
    : Machine(std::move(memory)), vm_(kvm) {
  install_kick_handler();
  vm_.map_memory(this->memory(), track_writes);
  vcpu_ = vm_.create_vcpu(0);
}

KvmMachine::~KvmMachine() {
  if (timer_) timer_delete(static_cast<timer_t>(timer_));
}

void KvmMachine::arm_deadline(std::chrono::steady_clock::time_point deadline) {
  int tid = static_cast<int>(::syscall(SYS_gettid));
  if (timer_ && timer_tid_ != tid) {
    timer_delete(static_cast<timer_t>(timer_));
    timer_ = nullptr;
  }
  if (!timer_) {
    sigevent sev{};
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = kick_signal();
    sev._sigev_un._tid = tid;
    timer_t t;
    if (timer_create(CLOCK_MONOTONIC, &sev, &t) != 0)
      throw std::system_error(errno, std::generic_category(), "timer_create for the vCPU deadline");
    timer_ = t;
    timer_tid_ = tid;
  }
  auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
  itimerspec spec{};
  spec.it_value.tv_sec = ns / 1000000000;
  spec.it_value.tv_nsec = ns % 1000000000;
  if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) spec.it_value.tv_nsec = 1;
  // steady_clock is CLOCK_MONOTONIC on Linux, so the absolute time carries over.
  timer_settime(static_cast<timer_t>(timer_), TIMER_ABSTIME, &spec, nullptr);
}

void KvmMachine::disarm_deadline() {
  itimerspec off{};
  timer_settime(static_cast<timer_t>(timer_), 0, &off, nullptr);
}

std::string KvmMachine::where() {
  try {
    auto r = vcpu_->regs();
    auto s = vcpu_->sregs();
    return fmt::format("rip {:#x} (cpl {})", r.rip, s.cs.selector & 3);
  } catch (const std::exception&) {
    return "rip unknown";
  }
}

Stop KvmMachine::fault(std::string what) {
  return Stop{StopKind::Fault, 0, fmt::format("{} at {}", what, where())};
}

void KvmMachine::kick() {
  // Its handler sets immediate_exit, so KVM_RUN returns EINTR now or on its next entry.
  if (int tid = running_tid_.load(); tid > 0) ::syscall(SYS_tgkill, ::getpid(), tid, kick_signal());
}

Stop KvmMachine::run(std::chrono::steady_clock::time_point deadline) {
  kvm_run& r = vcpu_->run_state();
  r.immediate_exit = 0;
  set_kick_target(&r);
  running_tid_.store(static_cast<int>(::gettid()));
  arm_deadline(deadline);
  struct Cleanup {
    KvmMachine* m;
    ~Cleanup() {
      m->running_tid_.store(-1);
      m->disarm_deadline();
      set_kick_target(nullptr);
    }
  } cleanup{this};
  const auto stopped_by_cancel = [this] {
    return Stop{StopKind::Cancelled, 0,
                fmt::format("the call was cancelled, stopped at {}", where())};
  };
  if (cancelled()) return stopped_by_cancel();  // before running_tid_ was set: no kick came

  for (;;) {
    const bool exited = vcpu_->enter();
    // KVM finished the previous exit inside that KVM_RUN; this one may be pending in turn.
    exit_pending_ = exited && exit_completes_on_next_run(r.exit_reason);
    if (!exited) {
      if (cancelled()) return stopped_by_cancel();
      if (std::chrono::steady_clock::now() >= deadline)
        return Stop{StopKind::Timeout, 0,
                    fmt::format("the guest ran past its deadline, stopped at {}", where())};
      r.immediate_exit = 0;  // a stray kick from an earlier deadline: keep going
      continue;
    }
    count_exit();
    std::optional<Stop> stop;
    switch (r.exit_reason) {
      case KVM_EXIT_IO:
        stop = handle_io(r);
        break;
      case KVM_EXIT_MMIO:
        stop = handle_mmio(r);
        break;
      case KVM_EXIT_HLT:
        return Stop{StopKind::Halted, 0, fmt::format("the guest halted at {}", where())};
      case KVM_EXIT_SHUTDOWN:
        return fault("triple fault (the guest's exception handling failed)");
      case KVM_EXIT_INTR:
        break;  // a signal: the deadline check happens on the next EINTR
      case KVM_EXIT_FAIL_ENTRY:
        return fault(fmt::format("VM entry failed (hardware reason {:#x})",
                                 r.fail_entry.hardware_entry_failure_reason));
      case KVM_EXIT_INTERNAL_ERROR:
        return fault(
            fmt::format("KVM internal error, suberror {}{}", r.internal.suberror,
                        r.internal.suberror == KVM_INTERNAL_ERROR_EMULATION
                            ? " (an instruction KVM could not emulate, such as SSE in ring 0)"
                            : ""));
      case KVM_EXIT_SYSTEM_EVENT:
        return Stop{StopKind::Exited, 0, "the guest asked for a reset or power-off"};
      default:
        return fault(fmt::format("unhandled VM exit reason {}", r.exit_reason));
    }
    if (stop) return std::move(*stop);
  }
}

std::optional<Stop> KvmMachine::handle_io(kvm_run& r) {
  const std::uint16_t port = r.io.port;
  if (unifn_guest_ && (port == layout::kSyscallPort || (port >= layout::kExceptionPortBase &&
                                                        port < layout::kExceptionPortBase + 32)))
    return stub_port(port);
  // Safe: KVM places size*count bytes of port data at data_offset inside the kvm_run mapping.
  auto* data = reinterpret_cast<std::uint8_t*>(&r) + r.io.data_offset;
  for (std::uint32_t i = 0; i < r.io.count; ++i) {
    PortAccess a{port, r.io.direction == KVM_EXIT_IO_OUT,
                 std::span(data + i * r.io.size, r.io.size)};
    if (auto stop = port_access(a)) return stop;
  }
  return std::nullopt;
}

std::optional<Stop> KvmMachine::handle_mmio(kvm_run& r) {
  MmioAccess a{r.mmio.phys_addr, r.mmio.is_write != 0,
               std::span(r.mmio.data, std::min<std::uint32_t>(r.mmio.len, 8))};
  return mmio_access(a);
}

void KvmMachine::start_user(std::uint64_t rip, std::uint64_t rsp, std::uint64_t arg) {
  write_ring3_structures(memory());
  enter_ring3(*vcpu_, rip, rsp, arg);
  unifn_guest_ = true;
}

GuestRegs KvmMachine::regs() { return from_kvm(vcpu_->regs(), vcpu_->sregs().fs.base); }

void KvmMachine::set_regs(const GuestRegs& g) {
  kvm_sregs s = vcpu_->sregs();
  if (s.fs.base != g.fs_base) {
    s.fs.base = g.fs_base;
    vcpu_->set_sregs(s);
  }
  vcpu_->set_regs(to_kvm(g));
}

CpuState KvmMachine::capture() {
  // On VT-x and SVM the `out` that parked the guest completes only on the next KVM_RUN: without
  // this, the state would hold rip at the `out` and every restored instance would run it again.
  return CpuState{PlatformKind::Kvm,
                  KvmCpuState::capture(*vcpu_, std::exchange(exit_pending_, false)).to_bytes()};
}

void KvmMachine::apply(const CpuState& state) {
  auto cpu = KvmCpuState::from_state(state);
  if (!unifn_guest_) {
    // A restore: RAM came from a snapshot. Its VMM pages must be this VMM's (supervisor-only,
    // layout.h), or ring 3 could rewrite a stub: a snapshot from an older unifnd is refused.
    if (auto why = ring3_structures_differ(memory()))
      throw std::runtime_error(
          fmt::format("the snapshot's VMM pages are not the ones this unifnd writes ({}): it comes "
                      "from an older unifnd or was altered; remove it to have it rebuilt",
                      *why));
    vcpu_->set_cpuid(guest_cpuid(*vcpu_));  // the CPUID a restored guest booted with
  }
  unifn_guest_ = true;
  cpu.apply(*vcpu_, std::exchange(exit_pending_, false));
}

std::vector<std::uint64_t> KvmMachine::take_dirty_pages() { return vm_.take_dirty_log(); }

std::uint64_t KvmMachine::tsc_khz() { return vmm::tsc_khz(*vcpu_); }

void KvmMachine::calibrate_tsc() {
  auto before = __rdtsc();
  auto m = vcpu_->msrs({msr::kTsc});
  auto after = __rdtsc();
  if (m.size() == 1) tsc_offset_ = static_cast<std::int64_t>(m[0].data - (before / 2 + after / 2));
  tsc_calibrated_ = true;
}

std::uint64_t KvmMachine::guest_tsc_now() {
  if (!tsc_calibrated_) calibrate_tsc();
  return __rdtsc() + static_cast<std::uint64_t>(tsc_offset_);
}

// --- the ring-0 stubs of a unifn guest -----------------------------------------------------

std::optional<Stop> KvmMachine::stub_port(std::uint16_t port) {
  kvm_regs r = vcpu_->regs();
  if (port == layout::kSyscallPort) {
    if (r.rip < layout::kSyscallStub || r.rip > layout::kSyscallStub + 2)
      return Stop{StopKind::Fault, 0,
                  fmt::format("the guest wrote to the VMM's syscall port at rip {:#x}", r.rip)};
    return serve_syscall(r, r.rsp);
  }
  return on_exception_stub(port - layout::kExceptionPortBase);
}

void KvmMachine::return_to_user(kvm_regs r, std::uint64_t rip, std::uint64_t rsp,
                                std::uint64_t flags) {
  r.rip = rip;
  r.rsp = rsp;
  // IOPL 3 so that `out` can exit directly where the host honours it; RF and TF cleared.
  r.rflags = (flags & ~(rflags::kTF | (1ull << 16))) | rflags::kIopl3 | rflags::kFixed;
  kvm_sregs s = vcpu_->sregs();
  set_user_segments(s);
  vcpu_->set_sregs(s);
  vcpu_->set_regs(r);
}

std::optional<Stop> KvmMachine::serve_syscall(kvm_regs r, std::uint64_t user_rsp) {
  // The personality sees the registers as the guest left them in ring 3.
  GuestRegs g = from_kvm(r, vcpu_->sregs().fs.base);
  g.rip = r.rcx;
  g.rsp = user_rsp;
  if (auto stop = syscall(g)) return stop;
  // Back to ring 3 the way sysret would: rip from rcx, rflags from r11.
  kvm_regs back = to_kvm(g);
  kvm_sregs s = vcpu_->sregs();
  if (s.fs.base != g.fs_base) {
    s.fs.base = g.fs_base;
    vcpu_->set_sregs(s);
  }
  return_to_user(back, r.rcx, user_rsp, r.r11);
  return std::nullopt;
}

std::optional<Stop> KvmMachine::on_exception_stub(unsigned vector) {
  kvm_regs r = vcpu_->regs();
  const std::uint64_t stub = layout::kExceptionStubs + 8 * vector;
  if (r.rip < stub || r.rip > stub + 2)
    return Stop{StopKind::Fault, 0,
                fmt::format("the guest wrote to the VMM's exception port {:#x} at rip {:#x}",
                            layout::kExceptionPortBase + vector, r.rip)};
  auto& mem = memory();
  // Under PVM, `syscall` from ring 3 lands at LSTAR still in ring 3 (KVM-NOTES.md): fetching
  // the supervisor-only stub page from ring 3 raises #PF there (an older layout mapped it for
  // ring 3, and the stub's `out` raised #GP). The registers still hold the system call
  // (rcx = return rip, r11 = rflags), so serve it from here; on VT-x the port path serves it.
  // A ring-3 jump to LSTAR lands here as well: it is a system call like any other. (A #PF from
  // ring 3 with rip at LSTAR can only be the fetch there: no instruction of that page ran.)
  if ((vector == 13 || vector == 14) && mem.contains(GuestAddr(r.rsp), 48)) {
    auto f = mem.read_obj<std::array<std::uint64_t, 6>>(
        GuestAddr(r.rsp));  // error, rip, cs, rflags, rsp, ss
    if (f[1] == layout::kSyscallStub && (f[2] & 3) == 3) return serve_syscall(r, f[4]);
    // PVM also ignores IOPL, so a hypercall's `out %eax, %dx` from ring 3 raises #GP: decode it
    // and serve it as the direct port exit would have been.
    if (vector == 13 && (f[2] & 3) == 3 && f[0] == 0 && mem.contains(GuestAddr(f[1]), 1) &&
        mem.read_obj<std::uint8_t>(GuestAddr(f[1])) == 0xEF) {
      const std::uint16_t port = r.rdx & 0xFFFF;
      if (port >= UNIFN_HC_BASE && port < UNIFN_HC_BASE + kHypercallPorts) {
        return_to_user(r, f[1] + 1, f[4], f[3]);
        std::uint32_t value = static_cast<std::uint32_t>(r.rax);
        std::uint8_t bytes[4];
        std::memcpy(bytes, &value, 4);
        PortAccess a{port, true, std::span(bytes, 4)};
        return port_access(a);
      }
    }
  }
  GuestException e;
  e.vector = vector;
  std::uint64_t frame = r.rsp;
  try {
    if (has_error_code(vector)) {
      e.error_code = mem.read_obj<std::uint64_t>(GuestAddr(frame));
      frame += 8;
    }
    e.rip = mem.read_obj<std::uint64_t>(GuestAddr(frame));
  } catch (const GuestMemoryError&) {
  }
  if (vector == 14) e.address = vcpu_->sregs().cr2;
  return exception(e);
}

}  // namespace unifn::vmm
